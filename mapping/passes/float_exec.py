"""Float64 executor of an (unquantised) :class:`DataflowGraph`, with torch ops.

Used for calibration by :func:`mapping.passes.quantize` and to check that
graph rewrites (BN folding, activation fusion) preserve the float function.
Honours ``attrs["fused_relu"]`` (and ``"fused_max"``) and a matmul's ``attrs["scale"]``. Dim 0 is
the batch: any batch size runs, and ``reshape`` keeps dim 0. Every attribute means
what PyTorch means: conv ``groups`` and per-axis geometry, pool ``ceil_mode``,
adaptive pooling to any ``output_size``, ``act`` functions (``ACT``), ``concat``.
An input lifted to height 1 (``attrs["torch_shape"]``, a 1-D model) accepts its
3-D torch-shaped samples; outputs keep the graph's (lifted) shape.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mapping.graph import DataflowGraph, GraphError, Node


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


ACT = {
    "relu6": lambda x, a: F.relu6(x),
    "hardtanh": lambda x, a: F.hardtanh(x, a["min"], a["max"]),
    "clamp": lambda x, a: torch.clamp(x, a.get("min"), a.get("max")),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a["negative_slope"]),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "silu": lambda x, a: F.silu(x),
    "hardswish": lambda x, a: F.hardswish(x),
    "hardsigmoid": lambda x, a: F.hardsigmoid(x),
    "gelu": lambda x, a: F.gelu(x, approximate=a.get("approximate", "none")),
    "elu": lambda x, a: F.elu(x, a["alpha"]),
}
"""``act`` node functions in float (PyTorch's definitions), keyed by ``attrs["fn"]``."""


def _pool(op: str, x: torch.Tensor, a: dict) -> torch.Tensor:
    if "kernel" not in a:  # adaptive to a non-divisor size
        return F.adaptive_avg_pool2d(x, a["output_size"])
    fn = F.max_pool2d if op == "maxpool2d" else F.avg_pool2d
    return fn(x, a["kernel"], a["stride"], a["padding"], ceil_mode=bool(a.get("ceil_mode")))


def float_op(node: Node, xs: list[torch.Tensor]) -> torch.Tensor:
    """Apply one node in float64 (inputs in ``node.inputs`` order)."""
    op, a, p = node.op, node.attrs, node.params
    x = xs[0] if xs else None
    if op in ("input", "output"):
        y = x
    elif op == "linear":
        y = F.linear(x, _t(p["weight"]), _t(p["bias"]) if "bias" in p else None)
    elif op == "conv2d":
        y = F.conv2d(x, _t(p["weight"]), _t(p["bias"]) if "bias" in p else None,
                     stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                     groups=a.get("groups", 1))
    elif op == "batchnorm2d":
        y = F.batch_norm(x, _t(p["running_mean"]), _t(p["running_var"]),
                         _t(p["weight"]) if "weight" in p else None,
                         _t(p["bias"]) if "bias" in p else None, False, 0.0, a["eps"])
    elif op == "relu":
        y = torch.relu(x)
    elif op == "add":
        y = xs[0] + xs[1]
    elif op == "mul":
        y = x * a["scalar"] if "scalar" in a else xs[0] * xs[1]
    elif op == "matmul":
        y = torch.matmul(xs[0], xs[1]) * a.get("scale", 1.0)
    elif op in ("maxpool2d", "avgpool2d"):
        y = _pool(op, x, a)
    elif op == "act":
        if a.get("fn") not in ACT:
            raise GraphError(f"node {node.name!r}: act function {a.get('fn')!r} is unknown; "
                             f"known: {', '.join(ACT)}")
        y = ACT[a["fn"]](x, a)
    elif op == "concat":
        y = torch.cat(xs, a["dim"])
    elif op == "select":
        y = x[:, list(a["index"])]
    elif op == "flatten":
        y = torch.flatten(x, a["start_dim"], a["end_dim"])
    elif op == "reshape":
        y = x.reshape((x.shape[0],) + tuple(a["shape"][1:]))
    elif op == "transpose":
        y = x.permute(*a["perm"])
    elif op == "softmax":
        y = torch.softmax(x, a["dim"])
    elif op == "layernorm":
        y = F.layer_norm(x, a["normalized_shape"], _t(p["weight"]) if "weight" in p else None,
                         _t(p["bias"]) if "bias" in p else None, a["eps"])
    elif op == "gelu":
        y = F.gelu(x, approximate=a.get("approximate", "none"))
    else:
        raise GraphError(f"node {node.name!r}: float executor has no op {op!r}")
    if a.get("fused_relu"):
        y = torch.relu(y)
    if "fused_max" in a:
        y = torch.clamp(y, max=a["fused_max"])
    return y


def run_float_graph(graph: DataflowGraph, *inputs, trace: bool = False):
    """Run ``graph`` in float64 on numpy/torch inputs (one per graph input).

    Returns the output as numpy (a list when the graph has several outputs),
    or with ``trace=True`` a dict node name -> float64 numpy output.
    """
    if len(inputs) != len(graph.inputs):
        raise GraphError(f"graph has {len(graph.inputs)} input(s), got {len(inputs)}")
    env: dict[str, torch.Tensor] = {}
    feed = dict(zip(graph.inputs, inputs, strict=True))
    with torch.no_grad():
        for node in graph.nodes():
            if node.op == "input":
                x = feed[node.name]
                x = x.detach().double() if isinstance(x, torch.Tensor) else _t(x)
                if "torch_shape" in node.attrs and x.dim() == len(node.attrs["torch_shape"]):
                    x = x.reshape((x.shape[0],) + tuple(node.out_shape[1:]))
                env[node.name] = x
            else:
                env[node.name] = float_op(node, [env[i] for i in node.inputs])
    if trace:
        return {k: v.numpy() for k, v in env.items()}
    outs = [env[o].numpy() for o in graph.outputs]
    return outs[0] if len(outs) == 1 else outs
