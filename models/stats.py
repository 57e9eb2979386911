"""Size figures for a model: parameter count, output shape, multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``x``.

    Counts the MAC-bearing ops (convolutions, linear layers, matmuls) via
    ``torch.utils.flop_counter`` (which reports 2 FLOPs per MAC); element-wise
    ops, pooling, normalisation and softmax are not MACs and are not counted.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops()) // 2


@dataclass(frozen=True)
class ModelStats:
    """Shapes and sizes of one forward pass (``macs`` is per input of ``input_shape``)."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    macs: int


def model_stats(model: nn.Module, x: torch.Tensor) -> ModelStats:
    """``ModelStats`` of ``model`` (evaluated in eval mode, no grad) on input ``x``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    finally:
        model.train(was_training)
    macs = int(counter.get_total_flops()) // 2
    return ModelStats(tuple(x.shape), tuple(out.shape), count_parameters(model), macs)
