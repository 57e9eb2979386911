"""A graph ending in ``flatten`` of one pixel (global average pooling, then flatten: the
classifier head of SqueezeNet) is one accelerator program: NHWC and NCHW orders of a 1x1 map
agree. A trailing flatten of a larger map stays off the chain (its order would differ)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import api
from hwgen.build import flow


def _head(pool: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(pool), nn.Flatten()).eval()


def _graph(pool: int):
    from mapping.passes import prepare_entry
    from mapping.source import ModelSource

    calib = np.random.default_rng(1).standard_normal((16, 2, 4, 4)).astype(np.float32)
    entry = ModelSource.from_module(_head(pool), torch.zeros(1, 2, 4, 4), calib, None)
    return prepare_entry(entry, bits=8, acc_bits=32)


def test_trailing_flatten_of_one_pixel_is_a_chain():
    assert flow.plan(_graph(1))[0] == "chain"
    assert flow.plan(_graph(2))[0] == "kernels"


def test_trailing_flatten_runs_bit_exact_in_rtl(tmp_path):
    from sim.tools import SimulatorNotFoundError, find_simulator

    try:
        find_simulator("verilator")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))
    x = np.random.default_rng(2).standard_normal((3, 2, 4, 4)).astype(np.float32)
    cm = api.compile(_head(1), torch.zeros(1, 2, 4, 4), arch="tiny-4x4", calib=x,
                     out_dir=tmp_path / "b")
    assert cm.manifest.kind == "chain" and tuple(cm.manifest.output.shape) == (1, 5)
    sim = api.simulate(cm, x)
    assert sim.bit_exact and sim.cycles_as_predicted
    with torch.no_grad():  # and close to torch (8-bit): the order is torch's
        want = _head(1)(torch.from_numpy(x)).numpy()
    got = sim.outputs * cm.manifest.output.scale
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max() + 0.05
