"""finetune: masks hold, seeded, input untouched, accuracy vs a numpy forward pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import models
from mapping.passes.prune import prune_magnitude
from models.finetune import accuracy, finetune


@pytest.fixture(scope="module")
def mlp():
    e = models.get("mlp-digits")
    return e, e.load(), e.example_input()


def test_accuracy_matches_numpy_forward(mlp):
    entry, model, _ = mlp
    ds = entry.dataset()
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = np.array(ds.x_test, np.float64)
    h = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0)
    h = np.maximum(h @ p["fc2.weight"].T + p["fc2.bias"], 0)
    ref = float(np.mean((h @ p["fc3.weight"].T + p["fc3.bias"]).argmax(1) == ds.y_test))
    model64 = copy.deepcopy(model).double()  # same precision as the reference: no near-ties
    assert accuracy(model64, ds.x_test, ds.y_test) == ref
    assert finetune(model64, ds, epochs=0).acc_before == ref


def test_masks_keep_pruned_weights_zero_and_seeded(mlp):
    entry, model, _ = mlp
    ds = entry.dataset()
    pruned, masks = prune_magnitude(model, 0.8)
    a = finetune(pruned, ds, epochs=2, lr=3e-3, seed=4, masks=masks)
    b = finetune(pruned, ds, epochs=2, lr=3e-3, seed=4, masks=masks)
    c = finetune(pruned, ds, epochs=2, lr=3e-3, seed=5, masks=masks)
    for name, m in masks.items():
        w = dict(a.model.named_parameters())[name].detach()
        assert torch.all(w[~m] == 0) and torch.count_nonzero(w) <= int(m.sum())
        assert torch.equal(w, dict(b.model.named_parameters())[name])
    assert not torch.equal(a.model.fc1.weight, c.model.fc1.weight)
    assert (a.epochs, a.seed) == (2, 4) and a.acc_after >= a.acc_before
    assert torch.equal(pruned.fc1.weight, prune_magnitude(model, 0.8)[0].fc1.weight)
    assert not a.model.training


@pytest.mark.parametrize("kw, match", [
    ({"epochs": -1}, "epochs must be an int >= 0"),
    ({"batch_size": 0}, "batch_size must be an int > 0"),
    ({"lr": 0.0}, "need lr > 0"),
    ({"masks": {"fc9.weight": torch.ones(2, 2, dtype=torch.bool)}}, "matches no parameter"),
])
def test_finetune_errors(mlp, kw, match):
    with pytest.raises(ValueError, match=match):
        finetune(mlp[1], mlp[0].dataset(), **kw)
    with pytest.raises(ValueError, match="dataset has no 'x_train'"):
        finetune(mlp[1], object())
