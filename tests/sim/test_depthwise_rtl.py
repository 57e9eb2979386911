"""Depthwise convolutions in RTL: torch modules with depthwise convs (BatchNorm folded) are
traced, quantised and compiled as one chain; the depthwise layers run on the element-wise
engine (not the array) and the fast engine runs them bit-exact against sim.golden with every
layer's measured cycles equal to mapping.timing (``dw_cycles`` for the depthwise layers:
docs/timing.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_accelerator import check_run, need
from torch import nn

from hwgen.build.flow import compile_model
from mapping import timing
from mapping.arch import preset
from mapping.passes.pipeline import prepare
from sim.accelerator import load_build, quantize_inputs, simulate


def _bn(c):
    bn = nn.BatchNorm2d(c)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    return bn


def mobilenet_block():
    """Conv(3x3) -> depthwise(3x3, stride 2, padding 1) + BN + ReLU6 -> pointwise Conv(1x1)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _bn(8), nn.ReLU6(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), _bn(8), nn.ReLU6(),
                         nn.Conv2d(8, 16, 1)).eval()


def odd_depthwise():
    """Depthwise with stride (1, 2), a 3x2 kernel, padding (1, 0), dilation (2, 1), a fused
    ReLU and 6 channels on 4 lanes (a partial channel group), then a pointwise conv."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 6, 1), nn.ReLU(),
                         nn.Conv2d(6, 6, (3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1),
                                   groups=6), _bn(6), nn.ReLU(),
                         nn.Conv2d(6, 5, 1)).eval()


# (id, model, input shape, arch, changes, depthwise layers)
DESIGNS = [
    ("mobilenet-block", mobilenet_block, (1, 3, 9, 9), "edge-8x8", {"dataflow": "ws"}, 1),
    ("dw-stride12-3x2-dil21", odd_depthwise, (1, 2, 7, 10), "tiny-4x4", {"dataflow": "os"}, 1),
]


def _data(shape, seed):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 1.5).numpy()


@pytest.mark.parametrize("design", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_depthwise_models_bit_and_cycle_exact(design, tmp_path):
    need("verilator")
    name, make, shape, arch_name, changes, n_dw = design
    g = prepare(make(), torch.zeros(shape), _data((48,) + shape[1:], 1))
    arch = preset(arch_name).replace(**changes)
    cm = compile_model(g, arch, tmp_path / name, model=name)
    dws = [li for li in cm.program.layers if li.kind == "dwconv"]
    assert len(dws) == n_dw and len(cm.schedule.layers) == len(cm.program.layers) - n_dw - sum(
        li.kind == "lut" for li in cm.program.layers)
    node = next(n for n in g.nodes() if n.op == "conv2d" and n.attrs.get("groups", 1) > 1)
    n_, c, p, q = node.out_shape
    taps = math.prod(node.params["weight"].shape[2:])
    for li in dws:  # the contract: fetch + decode, the pooling walk, DW_LATENCY
        assert li.predicted_cycles == timing.dw_cycles(n_ * p * q, c, taps, arch)
        assert li.predicted_cycles == (timing.LAYER_SETUP + n_ * p * q * -(-c // arch.rows)
                                       * taps + timing.DW_LATENCY)
    report = (tmp_path / name / "report.md").read_text()
    assert f"depthwise conv on the element-wise engine (not the array): {arch.rows} lanes" in report
    assert "MAC utilisation" in report
    build = load_build(tmp_path / name)
    x_int = quantize_inputs(build, _data((4,) + shape[1:], 7))
    res = simulate(build, x_int, engine="fast")
    check_run(build, res, x_int)  # bit-exact vs golden, measured == mapping.timing per layer
    idx = [i for i, li in enumerate(cm.program.layers) if li.kind == "dwconv"]
    assert (res.layer_cycles[:, idx] == [li.predicted_cycles for li in dws]).all()
    assert np.unique(res.outputs).size > 4
