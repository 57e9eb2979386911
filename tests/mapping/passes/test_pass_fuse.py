"""fuse_activations: structure and preserved float outputs vs the torch module."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import models
from mapping.graph import trace
from mapping.passes import fold_batchnorm, fuse_activations, run_float_graph


def test_fuse_mlp():
    model = models.get("mlp-digits").load()
    g = trace(model, torch.zeros(1, 64))
    f = fuse_activations(g)
    assert [n.name for n in f.nodes()] == ["x", "fc1", "fc2", "fc3", "output"]
    assert f.node("fc1").attrs["fused_relu"] and f.node("fc2").attrs["fused_relu"]
    assert not f.node("fc3").attrs.get("fused_relu")
    assert "relu1" in g and not g.node("fc1").attrs.get("fused_relu")  # input untouched
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    assert np.abs(run_float_graph(f, x.numpy()) - ref).max() < 1e-9


def test_fuse_resnet_block_add_relu():
    model = models.get("resnet-block").load()
    x = torch.relu(torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(0)))
    f = fuse_activations(fold_batchnorm(trace(model, x[:1])))
    assert f.node("add").attrs["fused_relu"] and f.node("conv1").attrs["fused_relu"]
    assert not f.node("conv2").attrs.get("fused_relu")
    assert [n.op for n in f.nodes()].count("relu") == 0
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    assert np.abs(run_float_graph(f, x.numpy()) - ref).max() < 1e-5


def test_fuse_transformer_scale_into_matmul():
    model = models.get("tiny-transformer").load()
    x = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(0))
    f = fuse_activations(trace(model, x[:1]))
    assert "mul" not in f and f.node("matmul").attrs["scale"] == 0.25
    assert f.node("softmax").inputs == ["matmul"]
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    assert np.abs(run_float_graph(f, x.numpy()) - ref).max() < 1e-9


class TwoReaders(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return torch.relu(y) + y


def test_no_fusion_when_producer_has_other_readers():
    f = fuse_activations(trace(TwoReaders(), torch.zeros(1, 4)))
    assert "relu" in f and not f.node("fc").attrs.get("fused_relu")


class ConvRelu6(nn.Module):
    """conv -> ReLU6 -> conv, and a ReLU6 whose output a concat reads."""

    def __init__(self, concat: bool = False):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 1)
        self.concat = concat

    def forward(self, x):
        y = nn.functional.relu6(self.a(x))
        if self.concat:
            return torch.cat([y, self.b(y)], dim=1)
        return self.b(y)


def test_fuse_relu6_into_conv_keeps_the_float_function():
    torch.manual_seed(0)
    model = ConvRelu6().eval()
    x = 3 * torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    f = fuse_activations(trace(model, x[:1]))
    assert [n.op for n in f.nodes()].count("act") == 0
    assert f.node("a").attrs["fused_relu"] and f.node("a").attrs["fused_max"] == 6.0
    with torch.no_grad():
        ref = model.double()(x.double()).numpy()
    assert np.abs(run_float_graph(f, x.numpy()) - ref).max() < 1e-9


def test_relu6_read_by_a_concat_stays_a_lookup():
    model = ConvRelu6(concat=True).eval()
    f = fuse_activations(trace(model, torch.zeros(1, 3, 8, 8)))
    assert [n.op for n in f.nodes()].count("act") == 1
    assert "fused_max" not in f.node("a").attrs


def test_fused_relu6_scale_makes_the_requantisation_clamp_the_relu6():
    """Quantised at its fused scale (at most 6 / qmax), clamping the requantised value to
    [0, qmax] equals quantising the ReLU6 output: the closed form behind the fusion."""
    from mapping import quant as Q
    from mapping.passes import prepare

    model = ConvRelu6().eval()
    x = 3 * torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    g = prepare(model, x[:1], x)
    q = g.node("a").quant
    assert q.relu and q.scale * Q.qmax(q.bits) <= 6.0 * (1 + 1e-12)
    v = np.random.default_rng(0).uniform(-20, 20, 100_000)
    for s in (q.scale, 6.0 / 127, 1.0 / 127):
        assert np.array_equal(Q.quantize_act(np.clip(v, 0, 6), s, 8),
                              Q.quantize_act(v, s, 8, relu=True))
