"""Fine-tuning after pruning: seeded, deterministic Adam on a train/test data set.

:func:`fit` is the training loop: Adam on cross-entropy over mini-batches
shuffled by a ``torch.Generator(seed)``, deterministic algorithms on one
thread, and optional masks (zeroed in the gradients and re-applied after every
step, so unstructurally pruned weights stay exactly zero). :func:`finetune`
wraps it for pruning: a copy of the model (the input is left untouched), masks
applied before training, test accuracy before and after.

The data set is duck-typed (``x_train``, ``y_train``, ``x_test``, ``y_test``
numpy arrays, e.g. a :class:`models.Dataset`) because ``mapping`` does not
import ``models`` outside tests. For the same reason ``models.train.fit``,
which trains the shipped checkpoints, is a twin of :func:`fit` (``models``
imports nothing of ours, and ``mapping`` does not import ``models``):
tests/models/test_train.py asserts that both give bit-identical weights.

:func:`prune_to_macs` finds the smallest uniform structured-pruning fraction
that brings a model's MACs (of its traced ``DataflowGraph``) under a budget.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mapping.graph import trace
from mapping.passes.prune import ChannelPlan, PruneError, apply_plan, plan_channels


@dataclass(frozen=True)
class FinetuneResult:
    """The fine-tuned copy (eval mode) and its test accuracy in [0, 1] before and after."""

    model: nn.Module
    acc_before: float
    acc_after: float
    epochs: int
    seed: int


@contextlib.contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count; restores both afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
        batch_size: int, weight_decay: float = 0.0, seed: int = 0,
        masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Train ``model`` in place on inputs ``x`` and class ids ``y``; returns it in eval mode.

    Adam (``lr``, ``weight_decay``) on cross-entropy, ``epochs`` passes over
    mini-batches of ``batch_size`` in the order of ``torch.randperm`` drawn from
    a ``torch.Generator`` seeded with ``seed``, under :func:`deterministic_torch`:
    the same model, data, hyper-parameters and seed give bit-identical weights.
    ``masks``: parameter name -> tensor of 0/1 in the parameter's dtype; masked
    gradient entries are zeroed before each step and masked weights after it.
    """
    params = dict(model.named_parameters())
    masks = masks or {}
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    with deterministic_torch():
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), batch_size):
                idx = perm[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[idx]), y[idx]).backward()
                for name, m in masks.items():
                    params[name].grad.mul_(m)
                opt.step()
                with torch.no_grad():
                    for name, m in masks.items():
                        params[name].mul_(m)
    return model.eval()


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


def prune_to_macs(model: nn.Module, example_input, mac_fraction: float, norm: str = "l2",
                  layers=None, resolution: int = 256) -> tuple[nn.Module, ChannelPlan]:
    """Structured pruning with the smallest uniform fraction ``k / resolution`` whose
    pruned model has at most ``mac_fraction`` of the original MACs (traced graph).

    Raises :class:`PruneError` when even the largest fraction (keeping one channel
    per layer at most) cannot reach the budget.
    """
    if isinstance(mac_fraction, bool) or not isinstance(mac_fraction, (int, float)) \
            or not 0.0 < float(mac_fraction) <= 1.0:
        raise PruneError(f"mac_fraction must be in (0, 1], got {mac_fraction!r}")
    total = trace(model, example_input).total_macs

    def attempt(k: int) -> tuple[nn.Module, ChannelPlan, float]:
        plan = plan_channels(model, example_input, k / resolution, norm, layers)
        pruned = apply_plan(model, example_input, plan)
        return pruned, plan, trace(pruned, example_input).total_macs / total

    lo, hi = 0, resolution - 1  # MAC fraction is non-increasing in k
    best = attempt(hi)
    if best[2] > mac_fraction:
        raise PruneError(f"cannot reach {mac_fraction:.3f} of the MACs by pruning "
                         f"{layers or 'the prunable layers'}: the most pruned model still "
                         f"has {best[2]:.3f}")
    while lo < hi:
        mid = (lo + hi) // 2
        cand = attempt(mid)
        if cand[2] <= mac_fraction:
            hi, best = mid, cand
        else:
            lo = mid + 1
    return best[0], best[1]
