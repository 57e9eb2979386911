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
