"""models.metrics: accuracy and predictions against hand-counted answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.datasets import Dataset
from models.metrics import evaluate, predict


class FixedLogits(nn.Module):
    """Predicts class ``round(x[:, 0])`` (one-hot logits over ``n`` classes)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0].round().long(), self.n).float()


def make_ds() -> Dataset:
    x_tr = np.array([[0.0], [1.0], [2.0], [1.0]], np.float32)
    y_tr = np.array([0, 1, 2, 2], np.int64)  # 3 of 4 right
    x_te = np.array([[2.0], [2.0], [0.0]], np.float32)
    y_te = np.array([2, 1, 1], np.int64)  # 1 of 3 right
    return Dataset(x_tr, y_tr, x_te, y_te, name="toy")


def test_evaluate_counts_correct_predictions():
    model = FixedLogits(3).train()
    ds = make_ds()
    assert evaluate(model, ds) == pytest.approx(1 / 3)
    assert evaluate(model, ds, "train") == pytest.approx(3 / 4)
    assert model.training  # mode restored


def test_predict_batches_consistently():
    x = np.arange(10, dtype=np.float32).reshape(10, 1) % 4
    assert predict(FixedLogits(4), x, batch_size=3).tolist() == (np.arange(10) % 4).tolist()


def test_evaluate_rejects_bad_split():
    with pytest.raises(ValueError, match="'test' or 'train'"):
        evaluate(FixedLogits(3), make_ds(), "val")


def test_no_grad_during_evaluation():
    class Check(nn.Module):
        def forward(self, x):
            assert not torch.is_grad_enabled()
            return torch.zeros(len(x), 2)

    assert evaluate(Check(), make_ds()) == pytest.approx(0.0)
