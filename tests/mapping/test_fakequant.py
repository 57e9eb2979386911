"""mapping.fakequant (torch path) agrees bit for bit with sim.golden (numpy path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import models
from mapping import fakequant
from mapping.graph import GraphError, trace
from mapping.passes import calibration_inputs, prepare, prepare_entry
from sim import golden


def _test_split(entry):
    ds = entry.dataset()
    return np.array(ds.x_test, dtype=np.float32).reshape((-1,) + entry.input_shape[1:])


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_digits_all_test_samples_identical(name, bits):
    entry = models.get(name)
    g = prepare_entry(entry, bits=bits)
    x = _test_split(entry)
    assert len(x) == 360
    xq = golden.quantize_input(g, x)
    assert np.array_equal(fakequant.quantize_input(g, x).numpy(), xq)
    assert np.array_equal(fakequant.run(g, xq), golden.run(g, xq))


@pytest.mark.parametrize("name", ["jsc-mlp", "resnet-block", "tiny-transformer"])
def test_random_inputs_identical_every_node(name):
    entry = models.get(name)
    g = prepare_entry(entry)
    gen = torch.Generator().manual_seed(99)
    x = torch.randn((24,) + entry.input_shape[1:], generator=gen) * 1.5  # some saturate
    if entry.input_kind == "relu-normal":
        x = torch.relu(x)
    xq = golden.quantize_input(g, x.numpy())
    ref = golden.run(g, xq, trace=True)
    got = fakequant.FakeQuantModel(g)(torch.from_numpy(xq), trace=True)
    for node in g.nodes():
        assert np.array_equal(got[node.name].numpy(), ref[node.name]), node.name


def test_mixed_precision_and_narrow_accumulator_identical():
    entry = models.get("cnn-digits")
    g = prepare_entry(entry, bits=6, w_bits=4, acc_bits=12,  # 12-bit acc wraps for real
                      per_layer_bits={"conv2": (5, 3)})
    x = _test_split(entry)[:64]
    xq = golden.quantize_input(g, x)
    assert np.array_equal(fakequant.run(g, xq), golden.run(g, xq))


class OpMix(nn.Module):
    """Ops the zoo does not exercise: tensor*tensor mul, negative scalar, pools with padding."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.gate = nn.Conv2d(2, 4, 1)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1)
        self.ap = nn.AvgPool2d(3, stride=1, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x):
        y = self.conv(x) * self.gate(x)
        y = torch.relu(y * -0.5)
        y = self.ap(self.mp(y))
        return torch.softmax(self.fc(torch.flatten(y, 1)), dim=-1)


def test_op_mix_identical_and_close_to_float():
    torch.manual_seed(3)
    model = OpMix().eval()
    gen = torch.Generator().manual_seed(4)
    calib = torch.randn(64, 2, 8, 8, generator=gen)
    g = prepare(model, calib[:1], calib.numpy())
    assert g.node("mul_1").quant.extra["negate"]
    x = calib[:16].numpy()
    xq = golden.quantize_input(g, x)
    ref = golden.run(g, xq, trace=True)
    got = fakequant.FakeQuantModel(g)(torch.from_numpy(xq), trace=True)
    for node in g.nodes():
        assert np.array_equal(got[node.name].numpy(), ref[node.name]), node.name
    with torch.no_grad():
        fl = model.double()(torch.from_numpy(x).double()).numpy()
    assert np.abs(ref["output"] * g.node("output").quant.scale - fl).max() < 0.05


def test_float_reference_close():
    entry = models.get("tiny-transformer")
    g = prepare_entry(entry)
    x = calibration_inputs(entry)[:4]
    q = fakequant.run(g, fakequant.quantize_input(g, x).numpy())
    with torch.no_grad():
        ref = entry.load().double()(torch.from_numpy(x).double()).numpy()
    assert np.abs(q * g.node("output").quant.scale - ref).max() < 0.06 * np.abs(ref).max()


def test_unquantised_graph_rejected():
    entry = models.get("mlp-digits")
    with pytest.raises(GraphError, match="not quantised"):
        fakequant.FakeQuantModel(trace(entry.load(), entry.example_input()))


@pytest.mark.slow
def test_resnet18_identical():
    """~45 s: int64 numpy GEMMs of a full ResNet-18 in the golden model."""
    entry = models.get("resnet18")
    g = prepare_entry(entry, n_random=4)
    xq = golden.quantize_input(g, calibration_inputs(entry, n_random=2, seed=5))
    assert np.array_equal(fakequant.run(g, xq), golden.run(g, xq))


def test_per_axis_conv_identical_every_node():
    """Non-square kernels with per-axis stride / padding / dilation (conv2d attrs as (h, w))."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 3, (3, 1), stride=(2, 1), padding=(1, 0)), nn.ReLU(),
                          nn.Conv2d(3, 4, (1, 3), stride=(1, 2), padding=(0, 1),
                                    dilation=(1, 2))).eval()
    calib = torch.randn(16, 2, 7, 9, generator=torch.Generator().manual_seed(5))
    g = prepare(model, calib[:1], calib.numpy())
    assert g.node("_2").attrs["stride"] == (1, 2)
    xq = golden.quantize_input(g, calib.numpy())
    ref = golden.run(g, xq, trace=True)
    got = fakequant.FakeQuantModel(g)(torch.from_numpy(xq), trace=True)
    for node in g.nodes():
        assert np.array_equal(got[node.name].numpy(), ref[node.name]), node.name
