"""Helpers for the ``act`` (lookup-table activation) tests: independent torch references of
every ``mapping.graph.ACT_FNS`` function, and small quantised graphs with ``act`` nodes built
by tracing a model with ``nn.ReLU`` placeholders and turning those nodes into ``act``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from mapping.graph import GraphError, trace
from mapping.passes import float_exec
from mapping.passes.lower import lower
from mapping.passes.quantize import quantize

TORCH_FNS = {
    "relu6": lambda x, a: F.relu6(x),
    "hardtanh": lambda x, a: F.hardtanh(x, a.get("min", -1.0), a.get("max", 1.0)),
    "clamp": lambda x, a: torch.clamp(x, a.get("min"), a.get("max")),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a.get("negative_slope", 0.01)),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "silu": lambda x, a: F.silu(x),
    "hardswish": lambda x, a: F.hardswish(x),
    "hardsigmoid": lambda x, a: F.hardsigmoid(x),
    "gelu": lambda x, a: F.gelu(x, approximate=a.get("approximate", "none")),
    "elu": lambda x, a: F.elu(x, a.get("alpha", 1.0)),
}
"""PyTorch's own functional form of every act function (the reference)."""

CASES = [
    {"fn": "relu6", "min": 0.0, "max": 6.0},
    {"fn": "hardtanh", "min": -0.5, "max": 1.5},
    {"fn": "clamp", "min": -0.25, "max": 0.75},
    {"fn": "clamp", "min": 0.0, "max": None},
    {"fn": "leaky_relu", "negative_slope": 0.1},
    {"fn": "sigmoid"},
    {"fn": "tanh"},
    {"fn": "silu"},
    {"fn": "hardswish"},
    {"fn": "hardsigmoid"},
    {"fn": "gelu", "approximate": "none"},
    {"fn": "gelu", "approximate": "tanh"},
    {"fn": "elu", "alpha": 0.7},
]
IDS = [c["fn"] + ("-" + "-".join(f"{k}{v}" for k, v in c.items() if k != "fn")
                  if len(c) > 1 else "") for c in CASES]


def torch_act(attrs: dict, x) -> np.ndarray:
    """``attrs["fn"]`` applied with torch in float64."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return TORCH_FNS[attrs["fn"]](t, attrs).numpy()


def _float_op_with_act(orig):
    def op(node, xs):
        if node.op == "act":
            return TORCH_FNS[node.attrs["fn"]](xs[0], node.attrs)
        return orig(node, xs)
    return op


def float_act(monkeypatch) -> None:
    """Let the float executor (calibration) run ``act`` nodes, if it cannot yet (the front
    end's float semantics of ``act`` are added by another change)."""
    from mapping.graph import Node

    probe = Node("probe", "act", attrs={"fn": "tanh"})
    try:
        float_exec.float_op(probe, [torch.zeros(1, dtype=torch.float64)])
    except GraphError:
        monkeypatch.setattr(float_exec, "float_op", _float_op_with_act(float_exec.float_op))


def act_graph(model: nn.Module, example: torch.Tensor, acts: list[dict], calib: np.ndarray,
              bits: int = 8, w_bits: int | None = None, acc_bits: int = 32):
    """Trace ``model`` (its ``nn.ReLU``s are placeholders), turn the i-th relu node into an
    ``act`` node with ``acts[i]`` as attributes, quantise on ``calib`` and lower."""
    g = trace(model, example)
    relus = [n for n in g.nodes() if n.op == "relu"]
    assert len(relus) == len(acts), (len(relus), len(acts))
    for n, attrs in zip(relus, acts, strict=True):
        n.op, n.attrs = "act", dict(attrs)
    g = quantize(g, calib, bits=bits, w_bits=w_bits, acc_bits=acc_bits)
    return lower(g)


def mlp(k: int = 12, h: int = 16, n: int = 6, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, n)).eval()


def cnn(c: int = 3, k: int = 6, n: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.Conv2d(k, n, 3)).eval()
