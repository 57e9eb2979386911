"""Spilled programs (``hwgen.compiler.spill``): a model whose tensors do not fit the
activation scratchpad runs in row bands (and channel slices) through external memory. In Verilog its outputs
equal ``sim.golden`` and every layer's cycles (loads + bands + stores, added up by its
counter) equal the compiler's prediction from ``mapping.timing``, for each engine kind
(convs, depthwise, pools, lookup tables, gate and same-shape multiplies, adds, channel
selects and a concatenation), both dataflows, baked and external weights (one port for both
DMAs), a memory with latency and half bandwidth, and LOOPs over alike bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import api
from hwgen.compiler.isa import OP_LOOP, OP_XFER, decode, xfer_layout
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
    if example == "se_block":  # channel slices (depthwise, pooling) and LOOPs of bands
        assert any(f["runs"] > 1 for f in xf) and any(f["dsel"] for f in xf)
        assert sum(1 for w in prog.instructions if w & 7 == OP_LOOP) >= 4
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
    # the words the memory served and took (measured) = the program's transfers (+ the
    # weight bursts when the weights are external)
    rd, wr = (w // len(x) for w in sim.result.ext_words)
    assert wr == sum(li.ext_write_words for li in prog.layers)
    act_rd = sum(li.ext_read_words for li in prog.layers)
    assert rd == act_rd if arch.weight_store == "rom" else rd > act_rd
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


def _expand(prog) -> list[int]:
    """The program with every LOOP written out, as the sequencer runs it (docs/timing.md,
    "Loops"): iteration k adds k * d_a / d_b to an XFER's ext (by its dsel), k * d_row,
    d_out, d_par to a STEP's p0, out_base, par_base, k * d_wsrc to its dma_src and k * d_hp
    to a STEP's or ELT's hp0; dsel is cleared."""
    from hwgen.compiler import isa

    a, w = prog.arch, prog.instructions
    lay = {isa.OP_LOOP: isa.loop_layout(a), isa.OP_XFER: isa.xfer_layout(a),
           isa.OP_STEP: isa.step_layout(a), isa.OP_ELT: isa.elt_layout(a)}
    mask = (1 << isa.OP_BITS) - 1

    def one(x: int, k: int, f: dict) -> int:
        op = x & mask
        if op not in (isa.OP_XFER, isa.OP_STEP, isa.OP_ELT):
            return x
        g = decode(lay[op], x)
        if op == isa.OP_XFER:
            g["ext"] += k * (0, f["d_a"], f["d_b"])[g["dsel"]]
            g["dsel"] = 0
        elif op == isa.OP_STEP:
            if g["tile_en"]:
                g["p0"] += k * f["d_row"]
                g["hp0"] += k * f["d_hp"]
                g["out_base"] += k * f["d_out"]
                g["par_base"] += k * f["d_par"]
            if g["dma_en"]:
                g["dma_src"] += k * f["d_wsrc"]
        elif op == isa.OP_ELT:
            g["hp0"] += k * f["d_hp"]
        return isa.encode(lay[op], g, "expanded")

    out, i = [], 0
    while i < len(w):
        if w[i] & mask == isa.OP_LOOP:
            f = decode(lay[isa.OP_LOOP], w[i])
            body = w[i + 1:i + 1 + f["body"]]
            out += [one(x, k, f) for k in range(f["count"]) for x in body]
            i += 1 + f["body"]
        else:
            out.append(one(w[i], 0, dict.fromkeys(("d_a", "d_b", "d_row", "d_hp", "d_wsrc",
                                                   "d_out", "d_par"), 0)))
            i += 1
    return out


def test_loops_write_out_to_the_unrolled_bands(tmp_path, monkeypatch):
    """The LOOPs of a spilled program, written out by the rule of docs/timing.md, are the
    program compiled without them (word for word; a burst-only STEP's unused tile fields
    aside), and they make it shorter."""
    from hwgen.compiler import isa, spill

    m = _model("se_block", "SEBlock")
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    arch = preset("tiny-4x4").replace(act_words=300)
    looped = api.compile(m, torch.zeros(1, 3, 8, 8), arch=arch, calib=x,
                         out_dir=tmp_path / "a").program

    def unrolled(self, keys=None, tiles=None):
        bands, self.bands = self.bands or [], None
        for b in bands:
            self.words.extend(b)

    monkeypatch.setattr(spill._Code, "end_layer", unrolled)
    flat = api.compile(m, torch.zeros(1, 3, 8, 8), arch=arch, calib=x,
                       out_dir=tmp_path / "b").program
    loops = sum(1 for w in looped.instructions if w & 7 == isa.OP_LOOP)
    assert loops >= 4 and len(looped.instructions) < len(flat.instructions) - 100

    def tidy(words):  # a burst-only STEP's tile fields are not used
        lay = isa.step_layout(arch)
        out = []
        for w in words:
            if w & 7 == isa.OP_STEP and not decode(lay, w)["tile_en"]:
                g = decode(lay, w)
                g.update(p0=0, hp0=0)
                w = isa.encode(lay, g, "tidy")
            out.append(w)
        return out

    assert tidy(_expand(looped)) == tidy(flat.instructions)
    # each LOOP's own fetch and decode are in its layer's prediction
    assert sum(li.predicted_cycles for li in looped.layers) == \
        sum(li.predicted_cycles for li in flat.layers) + loops * timing.LAYER_SETUP
