"""Spilled programs (``hwgen.compiler.spill``): a model whose tensors do not fit the
activation scratchpad runs in row bands (and channel slices) through external memory. In Verilog its outputs
equal ``sim.golden`` and every layer's cycles (loads + bands + stores, added up by its
counter) equal the compiler's prediction from ``mapping.timing``, for each engine kind
(convs, depthwise, pools, lookup tables, gate and same-shape multiplies, adds, channel
selects and a concatenation), both dataflows, baked and external weights (one port for both
DMAs) and a memory with latency and half bandwidth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import api
from hwgen.compiler.isa import OP_XFER, decode, xfer_layout
from mapping import timing
from mapping.arch import preset
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[3]


def _model(name: str, cls: str):
    mod = import_file(ROOT / "examples" / f"{name}.py")
    torch.manual_seed(0)
    return getattr(mod, cls)().eval()


def _xfers(prog):
    lay = xfer_layout(prog.arch)
    return [decode(lay, w) for w in prog.instructions if w & 7 == OP_XFER]


@pytest.mark.parametrize(("example", "cls", "shape", "arch"), [
    ("se_block", "SEBlock", (3, 8, 8), preset("tiny-4x4").replace(
        act_words=300, weight_store="external", ext_bandwidth=0.5, ext_latency=3)),
    ("shuffle_unit", "ShuffleUnit", (2, 6, 6), preset("edge-8x8").replace(
        act_words=300, dataflow="os", ext_latency=5)),
], ids=["se-block-tiny", "shuffle-unit-edge-os"])
def test_spilled_model_runs_bit_exact_and_cycle_exact(example, cls, shape, arch, tmp_path,
                                                      verilator, matches_golden_and_torch):
    from mapping.graph import trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower, quantize

    m = _model(example, cls)
    x = np.random.default_rng(3).standard_normal((3, *shape)).astype(np.float32)
    cm = api.compile(m, torch.zeros(1, *shape), arch=arch, calib=x, out_dir=tmp_path / "b")
    prog = cm.program
    assert cm.manifest.kind == "chain" and prog.spilled and prog.input_count == 0
    xf = _xfers(prog)
    assert xf and {f["store"] for f in xf} == {0, 1}
    if example == "se_block":  # the depthwise and pooling layers run in channel slices
        assert any(f["runs"] > 1 for f in xf)
    apw = timing.act_per_word(arch)
    for f in xf:  # every transfer inside the scratchpad, whole words
        last = f["sp"] + (f["runs"] - 1) * f["sp_stride"]
        assert 0 <= f["sp"] and last + f["words"] * apw <= arch.act_words + apw
        assert f["words"] == -(-(f["off"] + f["count"]) // apw)
    regions = sorted(prog.ext_tensors.values())
    base = len(prog.weight_image) if arch.weight_store == "external" else 0
    assert regions[0][0] >= base and prog.ext_words >= max(a + -(-n // apw) for a, n in regions)
    sim = api.simulate(cm, x)
    assert sim.bit_exact and sim.cycles_as_predicted
    q = lower(quantize(fuse_activations(fold_batchnorm(trace(m, torch.zeros(1, *shape)))), x))
    matches_golden_and_torch(m, q, x, cm, sim)


def test_a_program_that_fits_does_not_spill(tmp_path):
    m = _model("se_block", "SEBlock")
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    cm = api.compile(m, torch.zeros(1, 3, 8, 8), arch="tiny-4x4", calib=x,
                     out_dir=tmp_path / "b")
    assert not cm.program.spilled and not _xfers(cm.program)
    assert cm.program.input_count == 3 * 8 * 8


def test_a_layer_of_which_one_row_does_not_fit_is_named(tmp_path):
    m = _model("se_block", "SEBlock")
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(Exception, match=r"layer stem: the activation scratchpad "
                                        r"\(act_words=120\) cannot hold one output row .* at "
                                        r"least 148"):
        api.compile(m, torch.zeros(1, 3, 8, 8), arch=preset("tiny-4x4").replace(act_words=120),
                    calib=x, out_dir=tmp_path / "b")
