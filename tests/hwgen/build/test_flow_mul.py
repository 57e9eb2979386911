"""Tensor multiplies on the accelerator: an EfficientNet / MobileNetV3-style block
(``examples/se_block.py``: the squeeze-excitation gate ``s * y``, one value per channel, and
the same-shape product of SiLU written out) is one program; in Verilog its outputs equal
``sim.golden`` and every layer's cycles equal ``mapping.timing``. Which mul shapes the
hardware takes is checked against the rule written out here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import api
from hwgen.build import flow
from hwgen.compiler.mul_layer import mul_geometry
from mapping import timing
from mapping.graph import Node
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[3]


def _block():
    mod = import_file(ROOT / "examples" / "se_block.py")
    torch.manual_seed(0)
    return mod.SEBlock().eval()


@pytest.mark.parametrize(("shapes", "out", "want"), [
    ([(1, 16, 8, 8), (1, 16, 1, 1)], (1, 16, 8, 8), (64, 16, True, 1)),  # x * s
    ([(1, 16, 1, 1), (1, 16, 8, 8)], (1, 16, 8, 8), (64, 16, True, 0)),  # s * x
    ([(1, 8), (1, 8)], (1, 8), (1, 8, False, 1)),  # same shape: one pixel of all
    ([(1, 4, 3, 3), (1, 4, 3, 3)], (1, 4, 3, 3), (1, 36, False, 1)),
    ([(1, 16, 8, 8), (1, 1, 8, 8)], (1, 16, 8, 8), None),  # a spatial gate: not supported
    ([(2, 16, 8, 8), (2, 16, 1, 1)], (2, 16, 8, 8), None),  # a gate per image of a batch
    ([(1, 16, 8, 8), (1, 16, 8, 1)], (1, 16, 8, 8), None),
])
def test_mul_geometry(shapes, out, want):
    assert mul_geometry(shapes, out) == want


def test_scalar_and_spatial_muls_are_not_program_ops():
    scalar = Node("m", "mul", ["x"], [(1, 4, 2, 2)], (1, 4, 2, 2), {"scalar": 0.5})
    spatial = Node("m", "mul", ["x", "y"], [(1, 4, 2, 2), (1, 1, 2, 2)], (1, 4, 2, 2))
    gate = Node("m", "mul", ["x", "y"], [(1, 4, 2, 2), (1, 4, 1, 1)], (1, 4, 2, 2))
    assert [flow.on_program(n) for n in (scalar, spatial, gate)] == [False, False, True]


def test_se_block_runs_bit_exact_in_rtl(tmp_path, verilator, matches_golden_and_torch):
    from mapping.graph import trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower, quantize

    m = _block()
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    cm = api.compile(m, torch.zeros(1, 3, 8, 8), arch="tiny-4x4", calib=x,
                     out_dir=tmp_path / "b")
    assert cm.manifest.kind == "chain"
    arch = cm.arch
    muls = [li for li in cm.program.layers if li.kind == "mul"]
    assert [li.name for li in muls] == ["mul", "mul_1"]
    # the contract, closed form: the gate walks 64 pixels of 16 channels, SiLU 8 elements
    assert muls[0].predicted_cycles == timing.LAYER_SETUP + 2 * 64 * -(-16 // arch.rows) \
        + timing.MUL_LATENCY
    assert muls[1].predicted_cycles == timing.LAYER_SETUP + 2 * -(-8 // arch.rows) \
        + timing.MUL_LATENCY
    gate = cm.program.tensors["hardsigmoid"]
    assert gate[1] == 16 and muls[0].in2_base == gate[0]  # s * y: the gate is the 2nd read
    notes = {p.name: p.note for p in cm.placements}
    assert "64 pixels x 16 channels times one value per channel" in notes["mul"]
    sim = api.simulate(cm, x)
    assert sim.bit_exact and sim.cycles_as_predicted
    q = lower(quantize(fuse_activations(fold_batchnorm(trace(m, torch.zeros(1, 3, 8, 8)))), x))
    matches_golden_and_torch(m, q, x, cm, sim)


def test_relu_after_a_gate_is_fused():
    """``relu(x * s)``: the relu folds into the multiply's requantisation (a scalar mul
    does not requantise: its relu stays); the float graph computes what torch does and the
    quantised gate clamps at 0."""
    from torch import nn

    from mapping.graph import trace
    from mapping.passes import fuse_activations, prepare, run_float_graph

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 4, 3, padding=1)
            self.g = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.c(x)
            s = torch.sigmoid(self.g(torch.nn.functional.adaptive_avg_pool2d(y, 1)))
            return torch.relu(y * s) + torch.relu(y * 0.5)

    torch.manual_seed(0)
    m = Gated().eval()
    x = torch.randn(1, 2, 5, 5)
    g = fuse_activations(trace(m, x))
    muls = {n.name: n for n in g.nodes() if n.op == "mul"}
    gate = next(n for n in muls.values() if "scalar" not in n.attrs)
    scalar = next(n for n in muls.values() if "scalar" in n.attrs)
    assert gate.attrs.get("fused_relu") and not scalar.attrs.get("fused_relu")
    assert [n.op for n in g.nodes()].count("relu") == 1  # the scalar mul's
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(np.asarray(run_float_graph(g, x)).reshape(want.shape), want,
                               rtol=1e-5, atol=1e-5)
    q = prepare(m, x, torch.randn(8, 2, 5, 5))
    assert next(n for n in q.nodes() if n.name == gate.name).quant.relu
