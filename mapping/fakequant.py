"""The quantised PyTorch model: a torch executor of a quantised ``DataflowGraph``.

Deliberately a different implementation path from ``sim.golden`` (numpy
im2col + ``>>``) so that their agreement is evidence:

- compute ops run as ``F.conv2d`` / ``F.linear`` / ``torch.matmul`` in float64
  on integer-valued tensors (exact while every partial sum is below 2**53),
  then convert to int64;
- the accumulator wrap is ``remainder(acc + 2**(b-1), 2**b) - 2**(b-1)``;
- the requantisation shift is a floor division by ``2**shift`` in int64;
- pooling uses ``F.max_pool2d`` / ``F.avg_pool2d(divisor_override=1)``.

Host-executed ops (softmax, layernorm, gelu) call the shared float64
definition :func:`mapping.quant.host_op`: they are host software by contract,
so both executors must run the same function to agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mapping.graph import DataflowGraph, GraphError, Node, pair
from mapping.quant import HOST_OPS, host_op

_EXACT = 2.0**53


def _range(bits: int, relu: bool) -> tuple[int, int]:
    hi = 2 ** (bits - 1) - 1
    return (0 if relu else -hi - 1), hi


def _sat(y: torch.Tensor, bits: int, relu: bool = False) -> torch.Tensor:
    lo, hi = _range(bits, relu)
    return torch.clamp(y, lo, hi)


def _wrap(acc: torch.Tensor, bits: int) -> torch.Tensor:
    half = 2 ** (bits - 1)
    return torch.remainder(acc + half, 2 * half) - half


def _to_int(y: torch.Tensor) -> torch.Tensor:
    if y.numel() and float(y.abs().max()) >= _EXACT:
        raise GraphError("float64 accumulation exceeded 2**53; fakequant would not be exact")
    return y.to(torch.int64)


def _requant(acc: torch.Tensor, mult, shift, bits: int, relu: bool, ch_axis: int | None = None):
    mult = torch.as_tensor(np.asarray(mult), dtype=torch.int64)
    shift = torch.as_tensor(np.asarray(shift), dtype=torch.int64)
    if ch_axis is not None:
        shape = [1] * acc.dim()
        shape[ch_axis] = -1
        mult, shift = mult.reshape(shape), shift.reshape(shape)
    div = torch.pow(torch.full_like(shift, 2), shift)
    y = torch.div(acc * mult + div // 2, div, rounding_mode="floor")
    return _sat(y, bits, relu)


def _pool_args(n: Node) -> tuple:
    return n.attrs["kernel"], n.attrs["stride"], n.attrs["padding"], 1, \
        bool(n.attrs.get("ceil_mode"))


def _avg_sums(x: torch.Tensor, n: Node) -> torch.Tensor:
    """Window sums of an avgpool2d: ``avg_pool2d(divisor_override=1)`` (ceil_mode
    included); adaptive to a non-divisor size: torch's adaptive mean times the window
    size (``q.extra["divisors"]``), rounded (exact: the sums are far below 2**53)."""
    a = n.attrs
    if "kernel" in a:
        k, s, p, _, ceil = _pool_args(n)
        return _to_int(F.avg_pool2d(x.double(), k, s, p, ceil_mode=ceil, divisor_override=1))
    div = torch.from_numpy(np.asarray(n.quant.extra["divisors"], dtype=np.float64))
    return _to_int(torch.round(F.adaptive_avg_pool2d(x.double(), a["output_size"]) * div))


def _avg(x: torch.Tensor, n: Node) -> torch.Tensor:
    q = n.quant
    acc = _wrap(_avg_sums(x, n), q.acc_bits)
    if q.mult.size == 1:
        return _requant(acc, q.mult[0], q.shift[0], q.bits, q.relu)
    shape = (len(q.mult) // n.out_shape[3], n.out_shape[3])
    return _requant(acc, q.mult.reshape(shape), q.shift.reshape(shape), q.bits, q.relu)


class FakeQuantModel(nn.Module):
    """``forward(*x_int)`` -> int64 output(s) of the quantised graph (torch tensors)."""

    def __init__(self, graph: DataflowGraph):
        super().__init__()
        if any(n.quant is None for n in graph.nodes()):
            raise GraphError("graph is not quantised; run mapping.passes.quantize first")
        self.graph = graph

    def _node(self, n: Node, xs: list[torch.Tensor]) -> torch.Tensor:
        q, op, a = n.quant, n.op, n.attrs
        x = xs[0] if xs else None
        if op == "linear":
            w = torch.from_numpy(n.params["qweight"]).double()
            acc = _to_int(F.linear(x.double(), w)) + torch.from_numpy(n.params["qbias"])
            return _requant(_wrap(acc, q.acc_bits), q.mult, q.shift, q.bits, q.relu, -1)
        if op == "conv2d":
            w = torch.from_numpy(n.params["qweight"]).double()
            acc = _to_int(F.conv2d(x.double(), w, stride=pair(a["stride"]),
                                   padding=pair(a["padding"]), dilation=pair(a["dilation"]),
                                   groups=int(a.get("groups", 1))))
            acc = acc + torch.from_numpy(n.params["qbias"]).reshape(1, -1, 1, 1)
            return _requant(_wrap(acc, q.acc_bits), q.mult, q.shift, q.bits, q.relu, 1)
        if op == "matmul":
            acc = _to_int(torch.matmul(xs[0].double(), xs[1].double()))
            return _requant(_wrap(acc, q.acc_bits), q.mult[0], q.shift[0], q.bits, q.relu)
        if op == "mul":
            if "scalar" in a:
                return _sat(-x, q.bits) if q.extra.get("negate") else x
            acc = _wrap(xs[0] * xs[1], q.acc_bits)
            return _requant(acc, q.mult[0], q.shift[0], q.bits, q.relu)
        if op == "add":
            ma, mb, sh = int(q.mult[0]), int(q.mult[1]), int(q.shift[0])
            y = torch.div(xs[0] * ma + xs[1] * mb + 2 ** (sh - 1), 2**sh, rounding_mode="floor")
            return _sat(y, q.bits, q.relu)
        if op == "relu":
            return torch.clamp(x, min=0)
        if op == "maxpool2d":
            return _to_int(F.max_pool2d(x.double(), *_pool_args(n)))
        if op == "avgpool2d":
            return _avg(x, n)
        if op == "concat":
            return torch.cat(xs, a["dim"])
        if op == "select":
            return x[:, list(a["index"])]
        if op == "flatten":
            return torch.flatten(x, a["start_dim"], a["end_dim"])
        if op == "reshape":
            return x.reshape((x.shape[0],) + tuple(n.out_shape[1:]))
        if op == "transpose":
            return x.permute(*a["perm"]).contiguous()
        if op == "act":  # index the quantisation's lookup table (mapping.quant.act_table)
            table = torch.from_numpy(np.asarray(n.params["qtable"], dtype=np.int64))
            return table[x + table.numel() // 2]
        if op in HOST_OPS:
            y = host_op(op, x.double().numpy() * q.in_scales[0], a, n.params)
            y = torch.floor(torch.from_numpy(y) / q.scale + 0.5)
            return _sat(y, q.bits).to(torch.int64)
        if op == "output":
            return x
        raise GraphError(f"node {n.name!r}: fakequant has no op {op!r}")

    def forward(self, *x_int: torch.Tensor, trace: bool = False):
        env: dict[str, torch.Tensor] = {}
        for name, x in zip(self.graph.inputs, x_int, strict=True):
            env[name] = torch.as_tensor(x).to(torch.int64)
        with torch.no_grad():
            for n in self.graph.nodes():
                if n.op != "input":
                    env[n.name] = self._node(n, [env[i] for i in n.inputs])
        if trace:
            return env
        outs = [env[o] for o in self.graph.outputs]
        return outs[0] if len(outs) == 1 else outs


def quantize_input(graph: DataflowGraph, x_float) -> torch.Tensor:
    """``clamp(floor(x / s + 0.5))`` in torch (float64), int64 result."""
    q = graph.node(graph.inputs[0]).quant
    x = torch.as_tensor(np.asarray(x_float, dtype=np.float64))
    return _sat(torch.floor(x / q.scale + 0.5), q.bits).to(torch.int64)


def run(graph: DataflowGraph, *x_int) -> np.ndarray:
    """Integer outputs as numpy (a list for several outputs)."""
    out = FakeQuantModel(graph)(*(torch.as_tensor(np.asarray(x)) for x in x_int))
    return [o.numpy() for o in out] if isinstance(out, list) else out.numpy()
