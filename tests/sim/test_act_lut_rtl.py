"""Lookup-table activations in RTL: small models with ``act`` nodes (graphs built by hand:
traced with ``nn.ReLU`` placeholders turned into ``act``) compile as one chain, and the fast
engine runs them bit-exact against sim.golden with every layer's measured cycles equal to
mapping.timing (``lut_cycles`` for the lookup layers: docs/timing.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_accelerator import check_run, need

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mapping"))
from act_graphs import act_graph, cnn, float_act, mlp  # noqa: E402

from hwgen.build.flow import compile_model  # noqa: E402
from mapping import timing  # noqa: E402
from mapping.arch import preset  # noqa: E402
from sim.accelerator import load_build, quantize_inputs, simulate  # noqa: E402

SIGMOID, HARDSWISH, TANH = {"fn": "sigmoid"}, {"fn": "hardswish"}, {"fn": "tanh"}
RELU6 = {"fn": "relu6", "min": 0.0, "max": 6.0}

# (id, model, example input, acts, bits, arch, changes)
DESIGNS = [
    ("linear-sigmoid-linear", lambda: mlp(12, 16, 6), (1, 12), [SIGMOID], 8,
     "tiny-4x4", {"dataflow": "ws"}),
    # two tables in one lookup ROM; 150 elements on 8 lanes (a partial last group)
    ("conv-hardswish-conv-tanh", lambda: _cnn2(), (1, 3, 5, 5), [HARDSWISH, TANH], 8,
     "edge-8x8", {"dataflow": "os"}),
    # 6-bit model on an 8-bit array: a 64-entry table; 18 elements on 4 lanes
    ("linear-relu6-linear-6bit", lambda: mlp(10, 18, 5, seed=1), (1, 10), [RELU6], 6,
     "tiny-4x4", {"dataflow": "os", "weight_store": "external", "ext_latency": 3}),
]


def _cnn2():
    torch.manual_seed(2)
    return torch.nn.Sequential(cnn(3, 6, 5), torch.nn.ReLU()).eval()


def _data(shape, seed):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 2).numpy()


@pytest.mark.parametrize("design", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_lut_models_bit_and_cycle_exact(design, tmp_path, monkeypatch):
    need("verilator")
    float_act(monkeypatch)
    name, make, shape, acts, bits, arch_name, changes = design
    g = act_graph(make(), torch.zeros(shape), acts, _data((48,) + shape[1:], 1), bits=bits)
    arch = preset(arch_name).replace(**changes)
    cm = compile_model(g, arch, tmp_path / name, model=name)
    luts = [li for li in cm.program.layers if li.kind == "lut"]
    assert len(luts) == len(acts)
    assert len(cm.program.luts) == len(acts) << bits  # one 2**bits table per act
    for li in luts:  # the contract: fetch + decode, one read of `rows` per cycle, latency
        assert li.predicted_cycles == timing.lut_cycles(li.out_elements, arch)
        assert li.predicted_cycles == (timing.LAYER_SETUP + -(-li.out_elements // arch.rows)
                                       + timing.ELT_LATENCY)
    report = (tmp_path / name / "report.md").read_text()
    assert f"lookup table of {1 << bits} entries" in report
    build = load_build(tmp_path / name)
    x_int = quantize_inputs(build, _data((4,) + shape[1:], 7))
    res = simulate(build, x_int, engine="fast", x_check=(name == DESIGNS[0][0]))
    check_run(build, res, x_int)  # bit-exact vs golden, measured == mapping.timing per layer
    lut_idx = [i for i, li in enumerate(cm.program.layers) if li.kind == "lut"]
    assert (res.layer_cycles[:, lut_idx] == [li.predicted_cycles for li in luts]).all()
    assert np.unique(res.outputs).size > 4
