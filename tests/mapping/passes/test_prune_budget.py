"""prune_to_macs vs a brute-force sweep of every fraction."""

from __future__ import annotations

import numpy as np
import pytest

import models
from mapping.graph import trace
from mapping.passes.prune import PruneError, plan_channels
from mapping.passes.prune_budget import prune_to_macs


@pytest.fixture(scope="module")
def mlp():
    e = models.get("mlp-digits")
    return e, e.load(), e.example_input()


def test_prune_to_macs_is_smallest_fraction_meeting_budget(mlp):
    _, model, x0 = mlp
    total = 64 * 64 + 64 * 32 + 32 * 10

    def macs(k: int, res: int) -> int:  # closed form for uniform floor(k/res * n) removal
        n1 = 64 - int(np.floor(k / res * 64 + 1e-9))
        n2 = 32 - int(np.floor(k / res * 32 + 1e-9))
        return 64 * n1 + n1 * n2 + n2 * 10

    for target in (0.9, 0.5, 0.3):
        pruned, plan = prune_to_macs(model, x0, target, resolution=16)
        k = next(k for k in range(16) if macs(k, 16) <= target * total)  # brute force
        assert plan == plan_channels(model, x0, k / 16)
        assert trace(pruned, x0).total_macs == macs(k, 16)
    with pytest.raises(PruneError, match="cannot reach 0.010 of the MACs"):
        prune_to_macs(model, x0, 0.01)
    with pytest.raises(PruneError, match=r"mac_fraction must be in \(0, 1\]"):
        prune_to_macs(model, x0, 0.0)
