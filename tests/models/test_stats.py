"""models.stats: parameter and MAC counts against closed-form layer arithmetic."""

from __future__ import annotations

import pytest

import models
from models.stats import model_stats


def conv_macs(p, q, k, c, r, s=None):
    return p * q * k * c * r * (r if s is None else s)


def resnet18_macs() -> int:
    total = conv_macs(112, 112, 64, 3, 7) + 512 * 1000  # stem conv + fc
    total += 4 * conv_macs(56, 56, 64, 64, 3)  # layer1
    for size, ch in ((28, 128), (14, 256), (7, 512)):
        total += conv_macs(size, size, ch, ch // 2, 3)  # strided conv1
        total += 3 * conv_macs(size, size, ch, ch, 3)
        total += conv_macs(size, size, ch, ch // 2, 1)  # 1x1 downsample
    return total


CLOSED_FORM = {
    # name: (parameters, MACs)
    "mlp-digits": (64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10, 64 * 64 + 64 * 32 + 32 * 10),
    "jsc-mlp": (
        16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5,
        16 * 64 + 64 * 32 + 32 * 32 + 32 * 5,
    ),
    "cnn-digits": (
        8 * 9 + 8 + 16 * 8 * 9 + 16 + 256 * 10 + 10,
        conv_macs(8, 8, 8, 1, 3) + conv_macs(8, 8, 16, 8, 3) + 256 * 10,
    ),
    "resnet-block": (2 * 16 * 16 * 9 + 2 * 2 * 16, 2 * conv_macs(16, 16, 16, 16, 3)),
    "tiny-transformer": (
        4 * (32 * 32 + 32) + 2 * 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32),
        # q,k,v,out projections; QK^T and attn@V per head; MLP
        4 * 16 * 32 * 32 + 2 * (2 * 16 * 16 * 16) + 2 * 16 * 32 * 64,
    ),
    "resnet18": (11_689_512, resnet18_macs()),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_parameters_and_macs_closed_form(name):
    entry = models.get(name)
    stats = model_stats(entry.load(), entry.example_input())
    assert (stats.parameters, stats.macs) == CLOSED_FORM[name]
    assert stats.input_shape == entry.input_shape


def test_resnet18_macs_known_figure():
    # the commonly quoted 1.81 GMACs of ResNet-18 at 224x224
    assert resnet18_macs() == 1_814_073_344
