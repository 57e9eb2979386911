"""Fine-tuning after pruning: the training loop of :mod:`models.train` on a copy.

:func:`finetune` copies the model (the input is left untouched), applies the
masks (parameter name -> kept entries, e.g. from
``mapping.passes.prune.prune_magnitude``), measures the test accuracy, trains
with :func:`models.train.fit` (the one training loop: the zoo's checkpoints are
trained by it too; masked weights stay exactly zero) and measures again.
The pruning passes themselves live in ``mapping.passes``; fine-tuning is
training, so it lives here, below them (``mapping`` does not import ``models``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.train import deterministic_torch, fit


@dataclass(frozen=True)
class FinetuneResult:
    """The fine-tuned copy (eval mode) and its test accuracy in [0, 1] before and after."""

    model: nn.Module
    acc_before: float
    acc_after: float
    epochs: int
    seed: int


def _tensor(a, dtype) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=dtype))


def accuracy(model: nn.Module, x, y, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` (run in eval mode, restored after) on numpy ``x``, ``y``."""
    y = np.asarray(y)
    if len(y) == 0 or len(y) != len(x):
        raise ValueError(f"need as many labels as inputs (> 0), got {len(x)} inputs and "
                         f"{len(y)} labels")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            dtype = next(model.parameters()).dtype
            pred = np.concatenate([
                model(_tensor(x[i:i + batch_size], np.float32).to(dtype)).argmax(-1).numpy()
                for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)
    return float(np.mean(pred == y))


def finetune(model: nn.Module, dataset, epochs: int = 10, lr: float = 1e-3,
             batch_size: int = 32, weight_decay: float = 0.0, seed: int = 0,
             masks: dict[str, torch.Tensor] | None = None) -> FinetuneResult:
    """Fine-tune a copy of ``model`` on ``dataset``'s train split; accuracy on its test split.

    ``masks``: parameter name -> bool tensor (True = trainable/kept, e.g. from
    :func:`mapping.passes.prune.prune_magnitude`); masked entries are zeroed
    before training and after every optimiser step. Same inputs and ``seed``
    give bit-identical weights.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be an int > 0, got {batch_size!r}")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"need lr > 0 and weight_decay >= 0, got lr={lr}, "
                         f"weight_decay={weight_decay}")
    for attr in ("x_train", "y_train", "x_test", "y_test"):
        if not hasattr(dataset, attr):
            raise ValueError(f"dataset has no {attr!r}; pass a train/test data set such as "
                             "models.get(name).dataset()")
    net = copy.deepcopy(model)
    params = dict(net.named_parameters())
    mask = {}
    for name, m in (masks or {}).items():
        if name not in params or tuple(params[name].shape) != tuple(m.shape):
            raise ValueError(f"mask {name!r} of shape {tuple(m.shape)} matches no parameter; "
                             f"parameters: {', '.join(params)}")
        mask[name] = m.to(params[name].dtype)
    dtype = next(net.parameters()).dtype
    x = _tensor(dataset.x_train, np.float32).to(dtype)
    y = _tensor(dataset.y_train, np.int64)
    with deterministic_torch():
        with torch.no_grad():
            for name, m in mask.items():
                params[name].mul_(m)
        acc_before = accuracy(net, dataset.x_test, dataset.y_test)
        fit(net, x, y, epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
            seed=seed, masks=mask)
        acc_after = accuracy(net, dataset.x_test, dataset.y_test)
    return FinetuneResult(net, acc_before, acc_after, epochs, int(seed))
