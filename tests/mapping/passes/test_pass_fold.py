"""fold_batchnorm against the unfolded torch model (independent reference)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import models
from mapping.graph import trace
from mapping.passes import fold_batchnorm, run_float_graph


def _torch(model, x):
    with torch.no_grad():
        return model.double()(x.double()).numpy()


def test_fold_resnet_block_matches_torch():
    entry = models.get("resnet-block")
    model = entry.load()
    x = torch.relu(torch.randn(4, 16, 16, 16, generator=torch.Generator().manual_seed(3)))
    g = trace(model, x[:1])
    before = g.copy()
    f = fold_batchnorm(g)
    assert [n.op for n in f.nodes()].count("batchnorm2d") == 0
    assert f.node("conv1").attrs["folded_bn"] == "bn1"
    assert "bias" in f.node("conv1").params  # created (conv was bias-free)
    assert f.node("relu1").inputs == ["conv1"] and f.node("add").inputs == ["conv2", "x"]
    ref = _torch(model, x)
    assert np.abs(run_float_graph(f, x.numpy()) - ref).max() < 1e-5
    # input graph untouched
    assert [n.name for n in g.nodes()] == [n.name for n in before.nodes()]
    assert "bias" not in g.node("conv1").params
    assert np.array_equal(g.node("conv1").params["weight"], before.node("conv1").params["weight"])


def test_fold_with_existing_bias_and_affine_false():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, affine=False),
                          nn.ReLU(), nn.Conv2d(5, 2, 1), nn.BatchNorm2d(2)).eval()
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
        model[4].weight.uniform_(0.5, 1.5)
        model[4].bias.uniform_(-1, 1)
    x = torch.randn(3, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    f = fold_batchnorm(trace(model, x))
    assert [n.op for n in f.nodes()] == ["input", "conv2d", "relu", "conv2d", "output"]
    assert np.abs(run_float_graph(f, x.numpy()) - _torch(model, x)).max() < 1e-5


def test_bn_without_conv_is_kept():
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm2d(2)).eval()
    f = fold_batchnorm(trace(model, torch.zeros(1, 2, 3, 3)))
    assert "batchnorm2d" in [n.op for n in f.nodes()]


def test_resnet18_all_bn_folded():
    entry = models.get("resnet18")
    f = fold_batchnorm(trace(entry.build(0).eval(), torch.zeros(1, 3, 224, 224)))
    assert not [n for n in f.nodes() if n.op == "batchnorm2d"]
