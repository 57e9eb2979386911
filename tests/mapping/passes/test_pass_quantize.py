"""quantize: errors, calibration, specs vs hand-computed values, dequantised accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from mapping.graph import trace
from mapping.passes import (
    calibration_inputs,
    fuse_activations,
    prepare,
    prepare_entry,
    quantize,
)
from mapping.quant import QuantError
from sim import golden


@pytest.fixture(scope="module")
def mlp():
    entry = models.get("mlp-digits")
    g = fuse_activations(trace(entry.load(), entry.example_input()))
    return entry, g, calibration_inputs(entry)


@pytest.mark.parametrize("bad", [0, 1, 17, 33])
@pytest.mark.parametrize("arg", ["bits", "w_bits"])
def test_bad_bit_widths(mlp, bad, arg):
    _, g, calib = mlp
    with pytest.raises(QuantError) as exc:
        quantize(g, calib[:4], **{arg: bad})
    msg = str(exc.value)
    assert f"{arg} = {bad}" in msg and "from 2 to 16" in msg


@pytest.mark.parametrize("bad", [0, 1, 17, 33])
def test_bad_per_layer_bits(mlp, bad):
    _, g, calib = mlp
    with pytest.raises(QuantError, match=rf"per_layer_bits\['fc2'\].* = {bad} .*from 2 to 16"):
        quantize(g, calib[:4], per_layer_bits={"fc2": bad})
    with pytest.raises(QuantError, match="'nope', which is not a node"):
        quantize(g, calib[:4], per_layer_bits={"nope": 8})


def test_acc_bits_errors(mlp):
    _, g, calib = mlp
    with pytest.raises(QuantError, match="acc_bits = 12 must be at least .* = 16"):
        quantize(g, calib[:4], acc_bits=12)
    with pytest.raises(QuantError, match="from 8 to 48"):
        quantize(g, calib[:4], acc_bits=64)


def test_unfolded_bn_is_an_error():
    entry = models.get("resnet-block")
    g = trace(entry.load(), entry.example_input())
    with pytest.raises(QuantError, match="node 'bn1'.*fold_batchnorm"):
        quantize(g, entry.example_input().numpy())


def test_specs_match_hand_computation(mlp):
    entry, g, calib = mlp
    before = g.copy()
    q = quantize(g, calib, bits=8)
    assert all(n.quant is None for n in g.nodes())  # input untouched
    assert [n.name for n in g.nodes()] == [n.name for n in before.nodes()]
    model = entry.load().double()
    x = torch.from_numpy(calib).double()
    with torch.no_grad():
        h1 = torch.relu(model.fc1(x))
        h2 = torch.relu(model.fc2(h1))
        out = model.fc3(h2)
    s_x, s_1, s_2, s_3 = (float(t.abs().max()) / 127 for t in (x, h1, h2, out))
    assert q.node("x").quant.scale == pytest.approx(s_x)
    assert q.node("fc1").quant.scale == pytest.approx(s_1)
    assert q.node("fc2").quant.scale == pytest.approx(s_2)
    assert q.node("fc3").quant.scale == pytest.approx(s_3)
    fc2 = q.node("fc2")
    w = model.fc2.weight.detach().numpy()
    b = model.fc2.bias.detach().numpy().astype(np.float64)
    s_w = np.maximum(np.abs(w).max(axis=1) / 127, np.abs(b) / (s_1 * 2.0**30))  # bias floor
    assert (s_w > np.abs(w).max(axis=1) / 127).sum() <= 2  # only dead channels are floored
    assert np.allclose(fc2.quant.w_scale, s_w)
    qw = np.clip(np.sign(w / s_w[:, None]) * np.floor(np.abs(w / s_w[:, None]) + 0.5), -128, 127)
    assert np.array_equal(fc2.params["qweight"], qw)
    assert fc2.quant.relu and not q.node("fc3").quant.relu
    m = s_1 * s_w / s_2
    rec = fc2.quant.mult * 2.0 ** -fc2.quant.shift.astype(float)
    normal = m >= 2.0**-48  # smaller: shift 62 and a sub-normal mult (documented)
    assert normal.sum() >= 28
    assert np.all(np.abs(rec - m)[normal] <= m[normal] * 2.0**-15 * 1.0001)
    assert np.all(fc2.quant.shift[~normal] == 62)
    assert np.all(fc2.quant.mult[~normal] == np.floor(m[~normal] * 2.0**62 + 0.5))
    assert np.abs(fc2.params["qbias"]).max() <= 2**30
    assert np.array_equal(fc2.params["qbias"], np.round(b / (s_1 * s_w)).astype(np.int64))


def test_dequantised_outputs_close_to_float():
    for name in ("mlp-digits", "cnn-digits", "jsc-mlp", "resnet-block", "tiny-transformer"):
        entry = models.get(name)
        g = prepare_entry(entry)
        calib = calibration_inputs(entry)[:64]
        with torch.no_grad():
            ref = entry.load().double()(torch.from_numpy(calib).double()).numpy()
        _, deq = golden.run_float(g, calib)
        err = np.abs(deq - ref).max() / np.abs(ref).max()
        assert err < 0.06, (name, err)


def test_host_ops_marked_and_per_layer_bits():
    entry = models.get("tiny-transformer")
    g = prepare(entry.load(), entry.example_input(), calibration_inputs(entry),
                bits=8, per_layer_bits={"fc1": (6, 4)})
    host = sorted(n.name for n in g.nodes() if n.attrs.get("host"))
    assert host == ["gelu", "norm1", "norm2", "softmax"]
    assert all(g.node(h).quant.host for h in host)
    fc1 = g.node("fc1").quant
    assert (fc1.bits, fc1.w_bits) == (6, 4) and np.abs(g.node("fc1").params["qweight"]).max() == 7
    assert g.node("gelu").quant.in_scales == (fc1.scale,)
    mm = g.node("matmul")
    assert mm.quant.in_scales == (g.node("transpose").quant.scale,
                                  g.node("transpose_3").quant.scale)
    add = g.node("add").quant
    assert len(add.mult) == 2 and add.mult.max() < 2**15


def test_every_node_quantised_resnet_block():
    g = prepare_entry(models.get("resnet-block"))
    assert all(n.quant is not None for n in g.nodes())
    x = g.node("x").quant
    add = g.node("add")
    assert add.quant.in_scales == (g.node("conv2").quant.scale, x.scale) and add.quant.relu
