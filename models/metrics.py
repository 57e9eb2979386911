"""Float accuracy of a model on a ``Dataset`` split."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.datasets import Dataset


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Arg-max class ids (int64) of ``model`` on inputs ``x``, evaluated in eval mode."""
    was_training = model.training
    model.eval()
    preds = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.array(x[start : start + batch_size], dtype=np.float32))
                preds.append(model(xb).argmax(dim=-1).numpy())
    finally:
        model.train(was_training)
    return np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, np.int64)


def evaluate(model: nn.Module, dataset: Dataset, split: str = "test") -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``dataset``'s ``"test"`` or ``"train"`` split."""
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train', got {split!r}")
    x = dataset.x_test if split == "test" else dataset.x_train
    y = dataset.y_test if split == "test" else dataset.y_train
    if len(y) == 0:
        raise ValueError(f"data set {dataset.name!r} has an empty {split} split")
    return float(np.mean(predict(model, x) == y))
