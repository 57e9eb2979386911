"""Lookup-table activations (``act`` ops): the table generator against PyTorch's float
functions, the golden model's ``act`` against a direct numpy/torch computation, and the
torch fake-quant executor against the golden model, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from act_graphs import CASES, IDS, act_graph, cnn, float_act, mlp, torch_act

from mapping import fakequant
from mapping import quant as Q
from mapping.graph import ACT_FNS
from sim import golden


def test_every_act_fn_has_a_table_function():
    assert set(Q.ACT_TABLE_FNS) == set(ACT_FNS)
    assert {c["fn"] for c in CASES} == set(ACT_FNS)


@pytest.mark.parametrize("attrs", CASES, ids=IDS)
def test_float_function_is_pytorchs(attrs):
    x = np.linspace(-9, 9, 2001)
    np.testing.assert_allclose(Q.act_float(attrs, x), torch_act(attrs, x), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("in_bits,out_bits", [(8, 8), (4, 6), (6, 4)])
@pytest.mark.parametrize("attrs", CASES, ids=IDS)
def test_table_within_half_a_step_of_the_float_function(attrs, in_bits, out_bits):
    """|table[v] * s_out - f(v * s_in)| <= s_out / 2 wherever f is inside the output range;
    outside it the entry is the range's end."""
    s_in = 7.0 / Q.qmax(in_bits)  # inputs cover [-7, 7]: every function's curved part
    v = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1))
    y = torch_act(attrs, v * s_in)
    s_out = Q.act_out_scale(attrs, float(np.abs(y).max()), out_bits)
    table = Q.act_table(attrs, s_in, in_bits, s_out, out_bits)
    assert table.dtype == np.int64 and table.shape == (1 << in_bits,)
    lo, hi = Q.qrange(out_bits)
    inside = (y / s_out >= lo - 0.5) & (y / s_out < hi + 0.5)
    err = np.abs(table * s_out - y)
    assert (err[inside] <= s_out / 2 * (1 + 1e-9)).all(), err[inside].max() / s_out
    assert (table[~inside] == np.where(y[~inside] > 0, hi, lo)).all()
    assert inside.mean() > 0.9  # the calibrated scale covers the range
    # lut() indexes it by the quantised value
    np.testing.assert_array_equal(Q.lut(v, table), table)


def test_clamp_type_scale_represents_the_bounds():
    relu6 = {"fn": "relu6", "min": 0.0, "max": 6.0}
    assert Q.act_out_scale(relu6, 6.0, 8) == 6.0 / 127
    assert Q.act_out_scale(relu6, 3.5, 8) == 6.0 / 127  # calibration reached half the bound
    assert Q.act_out_scale(relu6, 1.0, 8) == 1.0 / 127  # far below: calibrated
    s_in = 8.0 / 127
    table = Q.act_table(relu6, s_in, 8, 6.0 / 127, 8)
    v = np.arange(-128, 128)
    assert (table[v * s_in >= 6.0] == 127).all() and (table[v <= 0] == 0).all()
    ht = {"fn": "hardtanh", "min": -2.0, "max": 1.0}
    assert Q.act_out_scale(ht, 2.0, 8) == 2.0 / 127
    clamp_min = {"fn": "clamp", "min": 0.0, "max": None}  # unbounded above: calibrated
    assert Q.act_out_scale(clamp_min, 5.0, 8) == 5.0 / 127


def test_table_errors():
    with pytest.raises(Q.QuantError, match="at most 12 input bits"):
        Q.act_table({"fn": "tanh"}, 0.1, 16, 0.1, 8)
    with pytest.raises(Q.QuantError, match="'swish' is not supported; supported: relu6"):
        Q.act_table({"fn": "swish"}, 0.1, 8, 0.1, 8)


def _data(shape, seed, scale=2.0):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale).numpy()


@pytest.mark.parametrize("attrs", CASES, ids=IDS)
def test_golden_act_is_the_quantised_function(attrs, monkeypatch):
    """The golden act node's output = clamp(floor(f(x * s_in) / s_out + 0.5)) of its integer
    input, with f from torch (not the table), except on exact rounding ties."""
    float_act(monkeypatch)
    g = act_graph(mlp(), torch.zeros(1, 12), [attrs], _data((64, 12), 1))
    act = next(n for n in g.nodes() if n.op == "act")
    assert act.quant.in_scales == (g.node(act.inputs[0]).quant.scale,)
    assert act.params["qtable"].shape == (256,) and act.quant.extra["in_bits"] == 8
    x = golden.quantize_input(g, _data((32, 12), 2))
    env = golden.run(g, x, trace=True)
    q_in, q_out = env[act.inputs[0]], env[act.name]
    r = torch_act(attrs, q_in * act.quant.in_scales[0]) / act.quant.scale
    want = np.clip(np.floor(r + 0.5), *Q.qrange(act.quant.bits))
    tie = np.abs(r - np.floor(r) - 0.5) < 1e-9
    assert (q_out == want)[~tie].all()
    assert np.unique(q_out).size > 10  # the values exercise the function


@pytest.mark.parametrize("attrs", CASES, ids=IDS)
def test_fakequant_equals_golden(attrs, monkeypatch):
    float_act(monkeypatch)
    for model, example, shape in ((mlp(), torch.zeros(1, 12), (48, 12)),
                                  (cnn(), torch.zeros(1, 3, 5, 5), (16, 3, 5, 5))):
        g = act_graph(model, example, [attrs], _data(shape, 3))
        x = golden.quantize_input(g, _data(shape, 4))
        want = golden.run(g, x, trace=True)
        got = fakequant.FakeQuantModel(g)(torch.from_numpy(x), trace=True)
        for name, v in want.items():
            np.testing.assert_array_equal(got[name].numpy(), v, err_msg=name)


def test_act_bits_follow_per_layer_bits(monkeypatch):
    """A 4-bit act after an 8-bit linear: a 256-entry table of 4-bit values."""
    float_act(monkeypatch)
    from mapping.graph import trace
    from mapping.passes.quantize import quantize

    g = trace(mlp(), torch.zeros(1, 12))
    act = next(n for n in g.nodes() if n.op == "relu")
    act.op, act.attrs = "act", {"fn": "sigmoid"}
    q = quantize(g, _data((64, 12), 1), per_layer_bits={act.name: 4})
    t = q.node(act.name).params["qtable"]
    assert t.shape == (256,) and t.min() >= 0 and t.max() <= 7
