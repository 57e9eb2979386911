"""models.resnet: the basic block against numpy, ResNet-18 shapes and sizes."""

from __future__ import annotations

import numpy as np
import torch

import models
from models.resnet import BasicBlock, ResNet18


def block_ref(npref, p, x, prefix="", stride=1, downsample=False):
    def bn(h, name):
        return npref.batchnorm(
            h,
            p[f"{prefix}{name}.weight"],
            p[f"{prefix}{name}.bias"],
            p[f"{prefix}{name}.running_mean"],
            p[f"{prefix}{name}.running_var"],
        )

    h = npref.relu(bn(npref.conv2d(x, p[f"{prefix}conv1.weight"], stride=stride, padding=1), "bn1"))
    h = bn(npref.conv2d(h, p[f"{prefix}conv2.weight"], padding=1), "bn2")
    skip = x
    if downsample:
        skip = bn(npref.conv2d(x, p[f"{prefix}downsample.0.weight"], stride=stride), "downsample.1")
    return npref.relu(h + skip)


def test_resnet_block_matches_numpy_with_nontrivial_bn(npref):
    entry = models.get("resnet-block")
    model = entry.load()
    assert model.downsample is None
    x = entry.example_input(0).double().numpy()
    got = model(entry.example_input(0)).detach().double().numpy()
    ref = block_ref(npref, npref.params(model), x)
    assert got.shape == (1, 16, 16, 16)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_strided_block_with_downsample_matches_numpy(npref):
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    models.registry.make_batchnorm_nontrivial(block, seed=5)
    block.eval()
    x = np.random.default_rng(2).normal(size=(2, 8, 10, 10))
    got = block(torch.from_numpy(x).float()).detach().double().numpy()
    ref = block_ref(npref, npref.params(block), x, stride=2, downsample=True)
    assert got.shape == (2, 16, 5, 5)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_resnet18_parameter_count_and_stage_shapes():
    model = ResNet18()
    # torchvision's resnet18 has exactly 11,689,512 parameters.
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    shapes = {}
    hooks = [
        getattr(model, n).register_forward_hook(
            lambda _m, _i, o, n=n: shapes.__setitem__(n, tuple(o.shape))
        )
        for n in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert shapes == {
        "conv1": (1, 64, 112, 112),
        "maxpool": (1, 64, 56, 56),
        "layer1": (1, 64, 56, 56),
        "layer2": (1, 128, 28, 28),
        "layer3": (1, 256, 14, 14),
        "layer4": (1, 512, 7, 7),
        "avgpool": (1, 512, 1, 1),
        "fc": (1, 1000),
    }
    downsampled = [n for n, m in model.named_modules() if n.endswith("downsample")]
    assert downsampled == ["layer2.0.downsample", "layer3.0.downsample", "layer4.0.downsample"]
