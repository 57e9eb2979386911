"""Grouped and depthwise convolutions on the model side: sim.golden against torch's
F.conv2d (float64 on the quantised integers, requantised here with floor division),
fakequant == golden, lower / map_graph leave a depthwise conv off the array, grouped convs
that are not depthwise lower into dense groups with the same integers, and the compiled ELT
word / ROM rows / cycles of a DwLayer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwgen.compiler.isa import ELT_DW, OP_ELT, decode, elt_layout
from hwgen.compiler.program import DwLayer, ProgramError, compile_program
from mapping import fakequant, timing
from mapping.arch import preset
from mapping.graph import pair, trace
from mapping.mapper import map_graph
from mapping.passes.fold import fold_batchnorm
from mapping.passes.fuse import fuse_activations
from mapping.passes.lower import lower
from mapping.passes.quantize import quantize
from sim import golden

# (id, in channels, out channels, groups, kernel, stride, padding, dilation, H, W)
CASES = [
    ("dw3x3-s2-p1", 8, 8, 8, 3, 2, 1, 1, 9, 9),
    ("dw-nonsquare", 6, 6, 6, (3, 2), (1, 2), (1, 0), (2, 1), 7, 8),
    ("dw-conv1d-like", 5, 5, 5, (1, 5), 1, (0, 2), 1, 1, 12),
    ("grouped-2", 4, 6, 2, 3, 1, 1, 1, 6, 6),
    ("dw-multiplier-2", 3, 6, 3, 3, 1, 0, 1, 5, 5),
]


def _model(c, k, groups, kernel, stride, padding, dilation, seed=0):
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(k)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    return nn.Sequential(nn.Conv2d(c, k, kernel, stride, padding, dilation, groups=groups),
                         bn, nn.ReLU()).eval()


def _quantised(case, seed=0):
    _, c, k, groups, kernel, stride, padding, dilation, h, w = case
    m = _model(c, k, groups, kernel, stride, padding, dilation, seed)
    x = torch.randn(1, c, h, w)
    g = fuse_activations(fold_batchnorm(trace(m, x)))
    calib = torch.randn((32, c, h, w), generator=torch.Generator().manual_seed(seed + 1))
    return quantize(g, calib)


def _reference(g, x_int):
    """Independent: F.conv2d in float64 on the integers, wrap, floor-division requant."""
    conv = next(n for n in g.nodes() if n.op == "conv2d")
    q, a = conv.quant, conv.attrs
    acc = F.conv2d(torch.from_numpy(x_int).double(),
                   torch.from_numpy(conv.params["qweight"]).double(),
                   torch.from_numpy(conv.params["qbias"]).double(),
                   stride=pair(a["stride"]), padding=pair(a["padding"]),
                   dilation=pair(a["dilation"]), groups=a.get("groups", 1)).numpy()
    acc = acc.astype(np.int64)
    half = 1 << (q.acc_bits - 1)
    acc = (acc + half) % (2 * half) - half
    mult, shift = q.mult.reshape(1, -1, 1, 1), q.shift.reshape(1, -1, 1, 1)
    y = (acc * mult + (1 << (shift - 1))) // (1 << shift)
    lo = 0 if q.relu else -(1 << (q.bits - 1))
    return np.clip(y, lo, (1 << (q.bits - 1)) - 1)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_golden_grouped_conv_matches_torch(case):
    g = _quantised(case)
    conv = next(n for n in g.nodes() if n.op == "conv2d")
    assert conv.attrs.get("groups", 1) == case[3]
    x = torch.randn((4,) + tuple(g.node(g.inputs[0]).out_shape[1:]),
                    generator=torch.Generator().manual_seed(5)) * 2
    x_int = golden.quantize_input(g, x.numpy())
    got = golden.run(g, x_int)
    want = _reference(g, x_int)
    np.testing.assert_array_equal(got, want)
    assert np.unique(got).size > 4
    np.testing.assert_array_equal(fakequant.run(g, x_int), got)


def test_lower_keeps_depthwise_off_the_array():
    g = lower(_quantised(CASES[0]))
    dw = next(n for n in g.nodes() if n.op == "conv2d")
    assert dw.nest is None and dw not in g.compute_nodes()
    assert dw.macs == 8 * 5 * 5 * 9  # out pixels x channels x taps


def test_map_graph_skips_depthwise():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(),
                      nn.Conv2d(8, 8, 3, 2, 1, groups=8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 8, 8)
    g = lower(quantize(fuse_activations(fold_batchnorm(trace(m, x))), torch.randn(8, 3, 8, 8)))
    s = map_graph(g, preset("tiny-4x4"))
    assert [lm.layer for lm in s.layers] == [n.name for n in g.compute_nodes()]
    assert len(s.layers) == 2  # the two dense convs; the depthwise one is not mapped


@pytest.mark.parametrize("case", [CASES[3], CASES[4]], ids=["grouped-2", "multiplier-2"])
def test_grouped_conv_lowers_to_dense_groups_bit_exact(case):
    """A grouped conv that is not depthwise lowers into one dense conv per group on a channel
    select, joined by a concat named like it; the integers equal F.conv2d with groups."""
    g = _quantised(case)
    low = lower(g)
    name = next(n.name for n in g.nodes() if n.op == "conv2d")
    groups, k = case[3], case[2]
    assert low.node(name).op == "concat" and len(low.node(name).inputs) == groups
    convs = [n for n in low.compute_nodes()]
    assert len(convs) == groups and all(n.nest.K == k // groups for n in convs)
    assert all(n.nest.C == case[1] // groups for n in convs)  # no zero weights
    x = torch.randn((4,) + tuple(g.node(g.inputs[0]).out_shape[1:]),
                    generator=torch.Generator().manual_seed(5)) * 2
    x_int = golden.quantize_input(g, x.numpy())
    np.testing.assert_array_equal(golden.run(low, x_int), _reference(g, x_int))
    np.testing.assert_array_equal(fakequant.run(low, x_int), _reference(g, x_int))


def _dw_layer(C=10, H=5, W=6, kernel=(3, 2), **kw):  # noqa: N803
    rng = np.random.default_rng(0)
    kh, kwid = kernel
    return DwLayer("dw", H=H, W=W, C=C, weights=rng.integers(-128, 128, (C, 1, kh, kwid)),
                   bias=rng.integers(-999, 999, C), mult=np.full(C, 1 << 14),
                   shift=np.full(C, 20), **kw)


def test_dw_layer_program():
    arch = preset("tiny-4x4")
    x = _dw_layer(stride=(1, 2), padding=(1, 0), dilation=(2, 1))
    prog = compile_program(arch, [x])
    (li,) = prog.layers
    g = x.geometry()
    assert (g["P"], g["Q"]) == (3, 3)  # torch: (5 + 2 - 2*2 - 1)//1 + 1, (6 - 1 - 1)//2 + 1
    assert li.kind == "dwconv" and li.out_elements == 3 * 3 * 10
    groups, taps = math.ceil(10 / arch.rows), 6
    assert li.predicted_cycles == timing.dw_cycles(9, 10, taps, arch)
    assert li.predicted_cycles == timing.LAYER_SETUP + 9 * groups * taps + timing.DW_LATENCY
    assert len(prog.dw_weights) == groups * taps and len(prog.dw_params) == groups
    f = decode(elt_layout(arch), prog.instructions[0])
    assert (f["op"], f["kind"]) == (OP_ELT, ELT_DW)
    assert (f["ma"], f["mb"], f["dcol"], f["tab"], f["src2"]) == (2, 1, 10, 0, 0)
    # lane 1 of group 2, tap (1, 0): channel 9's weight w[9, 0, 1, 0]
    row = prog.dw_weights[2 * taps + 2]
    v = (row >> (1 * arch.w_bits)) & 0xFF
    assert v - 256 * (v >> 7) == x.weights[9, 0, 1, 0]


def test_dw_layer_bad_weights():
    arch = preset("tiny-4x4")
    with pytest.raises(ProgramError, match="weights must be integers of shape"):
        compile_program(arch, [_dw_layer(C=4).__class__(
            "dw", H=4, W=4, C=4, weights=np.zeros((3, 3, 3), np.int64), bias=np.zeros(4),
            mult=np.zeros(4), shift=np.ones(4))])
    with pytest.raises(ProgramError, match="signed 8-bit"):
        x = _dw_layer()
        x.weights = x.weights * 4
        compile_program(arch, [x])
