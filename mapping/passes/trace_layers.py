"""Layer emitters shared by every front-end form (``nn`` module, ``F.*``/``torch.*``, aten).

Each takes the :class:`~mapping.passes.trace_builder.GraphBuilder`, the fx node and
the operation's arguments already picked out of its signature; parameters may be
tensors (modules) or fx nodes of constants (functional / exported forms).

Conventions (ARCHITECTURE-level, agreed between helpers): conv2d ``kernel``,
``stride``, ``padding``, ``dilation`` are an int when both axes agree, else
``(h, w)``; ``groups`` only when not 1 (weight ``(K, C/groups, R, S)``). Pools
keep ``(h, w)`` tuples; ``ceil_mode`` is recorded only when it changes the output
size (the output shape is PyTorch's). 1-D layers are the 2-D op on height 1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx

from mapping.passes.trace_builder import GraphBuilder, lift, norm_dim


def param(b: GraphBuilder, n: fx.Node, v, what: str) -> np.ndarray | None:
    """A weight/bias/statistic: a tensor (module attribute) or a constant fx node."""
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().to(torch.float32).numpy().copy()
    return b.const(n, v, what)


def seq(b: GraphBuilder, n: fx.Node, v, rank: int, what: str) -> tuple[int, ...]:
    """An int or a sequence of ``rank`` (or 1) ints -> a ``rank``-tuple."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * rank
    t = tuple(int(x) for x in v)
    if len(t) == 1:
        return t * rank
    if len(t) != rank:
        raise b.unsupported(n, f"{what} {v!r}", f" (an int or {rank} ints)")
    return t


def hw(t: tuple[int, int]) -> int | tuple[int, int]:
    """The agreed conv attribute form: an int when both axes agree, else ``(h, w)``."""
    return t[0] if t[0] == t[1] else (int(t[0]), int(t[1]))


def conv(b, n, x, weight, bias, stride=1, padding=0, dilation=1, groups=1,
         padding_mode="zeros") -> None:
    """Conv1d/Conv2d (grouped, non-square, 'same'/'valid' padding) -> conv2d."""
    w = param(b, n, weight, "the convolution weight")
    rank = w.ndim - 2
    if rank not in (1, 2):
        raise b.unsupported(n, f"a {rank}-D convolution", " (Conv1d and Conv2d only)")
    if len(b.shape(x)) != rank + 2:
        raise b.unsupported(n, f"conv{rank}d on a {len(b.shape(x))}-D input",
                            " (batched inputs only)")
    if padding_mode != "zeros":
        raise b.unsupported(n, f"Conv{rank}d with padding_mode={padding_mode!r}",
                            " (only 'zeros')")
    k = tuple(int(v) for v in w.shape[2:])
    s = seq(b, n, stride, rank, "stride")
    d = seq(b, n, dilation, rank, "dilation")
    if isinstance(padding, str):
        if padding == "same" and any(di * (ki - 1) % 2 for ki, di in zip(k, d, strict=True)):
            raise b.unsupported(n, f"Conv{rank}d padding='same' with an even kernel {k}",
                                " (PyTorch pads it asymmetrically)")
        p = tuple(di * (ki - 1) // 2 if padding == "same" else 0
                  for ki, di in zip(k, d, strict=True))
    else:
        p = seq(b, n, padding, rank, "padding")
    if rank == 1:
        w, k, s, p, d = w[:, :, None, :], (1,) + k, (1,) + s, (0,) + p, (1,) + d
    attrs = {"kernel": hw(k), "stride": hw(s), "padding": hw(p), "dilation": hw(d)}
    if int(groups) != 1:
        attrs["groups"] = int(groups)
    b.emit(n, "conv2d", [x], attrs,
           {"weight": w, "bias": param(b, n, bias, "the convolution bias")}, lifted=rank == 1)


def linear(b, n, x, weight, bias) -> None:
    b.emit(n, "linear", [x], params={"weight": param(b, n, weight, "the linear weight"),
                                     "bias": param(b, n, bias, "the linear bias")})


def batchnorm(b, n, x, mean, var, weight, bias, eps, training=False) -> None:
    """BatchNorm1d/2d and ``F.batch_norm`` with running statistics -> batchnorm2d
    (on ``(N, C)``, ``(N, C, 1, L)`` or ``(N, C, H, W)``)."""
    if training:
        raise b.unsupported(n, "batch norm in training mode (batch statistics)",
                            " (eval mode with running statistics only)")
    if mean is None or var is None:
        raise b.unsupported(n, "batch norm without running statistics",
                            " (track_running_stats=False)")
    rank = len(b.shape(x))
    if rank not in (2, 3, 4):
        raise b.unsupported(n, f"batch norm on a {rank}-D tensor", " (2-D, 3-D or 4-D)")
    b.emit(n, "batchnorm2d", [x], {"eps": float(eps)}, {
        "running_mean": param(b, n, mean, "the running mean"),
        "running_var": param(b, n, var, "the running variance"),
        "weight": param(b, n, weight, "the batch norm weight"),
        "bias": param(b, n, bias, "the batch norm bias")}, lifted=rank == 3)


def pool(b, n, op, x, kernel, stride, padding, dilation, ceil_mode, rank, *,
         count_include_pad=True, divisor_override=None) -> None:
    """Max/avg pooling, 1-D as height 1 -> maxpool2d/avgpool2d."""
    xs = b.shape(x)
    if len(xs) != rank + 2:
        raise b.unsupported(n, f"{rank}-D pooling on a {len(xs)}-D input", " (batched only)")
    k = seq(b, n, kernel, rank, "kernel")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else seq(b, n, stride, rank, "stride")
    p = seq(b, n, padding, rank, "padding")
    if seq(b, n, dilation, rank, "dilation") != (1,) * rank:
        raise b.unsupported(n, f"{op} with dilation {dilation!r}", " (dilation 1 only)")
    if op == "avgpool2d" and (divisor_override is not None
                              or (not count_include_pad and any(p))):
        raise b.unsupported(n, "avg pooling with divisor_override or count_include_pad=False")
    if rank == 1:
        k, s, p = (1,) + k, (1,) + s, (0,) + p
    attrs = {"kernel": k, "stride": s, "padding": p}
    out = lift(b.shape(n))[2:]
    floor = tuple((h + 2 * pi - ki) // si + 1
                  for h, ki, si, pi in zip(lift(xs)[2:], k, s, p, strict=True))
    if ceil_mode and tuple(out) != floor:
        attrs["ceil_mode"] = True
    b.emit(n, op, [x], attrs, lifted=rank == 1)


def adaptive_avg(b, n, x, rank) -> None:
    """AdaptiveAvgPool1d/2d: kernel = stride when the input is a multiple of the output,
    else ``attrs["adaptive"]`` with ``output_size`` (PyTorch's start/end index rule)."""
    xs = b.shape(x)
    if len(xs) != rank + 2:
        raise b.unsupported(n, f"adaptive {rank}-D pooling on a {len(xs)}-D input",
                            " (batched only)")
    (h, w), (oh, ow) = lift(xs)[2:], lift(b.shape(n))[2:]
    attrs = {"adaptive": True, "output_size": (oh, ow)}
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        attrs = {"kernel": k, "stride": k, "padding": (0, 0), **attrs}
    b.emit(n, "avgpool2d", [x], attrs, lifted=rank == 1)


def mean(b, n, x, dims, keepdim) -> None:
    """``x.mean((2, 3))`` on 4-D / ``x.mean(-1)`` on 3-D: a global average pool
    (avgpool2d over the whole map, then a flatten unless ``keepdim``)."""
    xs = b.shape(x)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    got = sorted(norm_dim(d, len(xs)) for d in dims)
    if got != list(range(2, len(xs))) or len(xs) not in (3, 4):
        raise b.unsupported(n, f"mean over dims {tuple(dims)} of a {len(xs)}-D tensor",
                            " (only a global average over the spatial dims: (2, 3) of "
                            "(N, C, H, W) or 2 of (N, C, L))")
    hw_ = lift(xs)[2:]
    attrs = {"kernel": hw_, "stride": hw_, "padding": (0, 0)}
    lifted = len(xs) == 3
    if keepdim:
        b.emit(n, "avgpool2d", [x], attrs, lifted=lifted)
        return
    name = b.name_for(n)
    pooled = lift(xs)[:2] + (1, 1)
    src, in_shape = b.value(n, x, lifted)
    pool_name = b.unique(f"{name}_pool")
    b.add(pool_name, "avgpool2d", [src], [in_shape], pooled, attrs)
    b.add(name, "flatten", [pool_name], [pooled], b.shape(n), {"start_dim": 1, "end_dim": -1})
    b.bind(n, name, False)


ACT_DEFAULTS = {"relu6": {"min": 0.0, "max": 6.0}, "leaky_relu": {"negative_slope": 0.01},
                "elu": {"alpha": 1.0}}


def act(b, n, x, fn: str, **params) -> None:
    """An element-wise activation: op ``act`` with ``attrs["fn"]`` (``relu`` stays its op)."""
    lifted = b.any_lifted([x])
    if fn == "relu":
        b.emit(n, "relu", [x], lifted=lifted)
        return
    attrs = {"fn": fn, **ACT_DEFAULTS.get(fn, {})}
    attrs.update({k: (None if v is None else float(v)) for k, v in params.items()})
    b.emit(n, "act", [x], attrs, lifted=lifted)


def clamp(b, n, x, lo, hi, fn="clamp") -> None:
    """clamp/clip/hardtanh: ``clamp(min=0)`` alone is a relu."""
    lo_, hi_ = b.scalar(lo) if lo is not None else None, b.scalar(hi) if hi is not None else None
    if (lo is not None and lo_ is None) or (hi is not None and hi_ is None):
        raise b.unsupported(n, "clamp with tensor bounds", " (number bounds only)")
    if lo_ == 0.0 and hi_ is None:
        act(b, n, x, "relu")
    elif lo_ == 0.0 and hi_ == 6.0 and fn == "relu6":
        act(b, n, x, "relu6")
    else:
        act(b, n, x, fn, min=lo_, max=hi_)


def elu(b, n, x, alpha=1.0, scale=1.0, input_scale=1.0) -> None:
    if float(scale) != 1.0 or float(input_scale) != 1.0:
        raise b.unsupported(n, "ELU with scale/input_scale (SELU/CELU)", " (plain ELU only)")
    act(b, n, x, "elu", alpha=alpha)


def gelu(b, n, x, approximate="none") -> None:
    b.emit(n, "gelu", [x], {"approximate": approximate}, lifted=b.any_lifted([x]))


def softmax(b, n, x, dim) -> None:
    b.emit(n, "softmax", [x], {"dim": norm_dim(dim, len(b.shape(x)))})


def layernorm(b, n, x, shape, weight, bias, eps) -> None:
    if len(tuple(shape)) != 1:
        raise b.unsupported(n, "LayerNorm over more than the last dimension")
    b.emit(n, "layernorm", [x], {"eps": float(eps), "normalized_shape": tuple(shape)},
           {"weight": param(b, n, weight, "the layer norm weight"),
            "bias": param(b, n, bias, "the layer norm bias")})


def concat(b, n, tensors, dim) -> None:
    """``torch.cat`` -> concat with a non-negative ``dim`` (shifted on lifted 1-D tensors)."""
    tensors = list(tensors)
    rank = len(b.shape(n))
    d = norm_dim(dim, rank)
    lifted = rank == 3 and b.any_lifted(tensors)
    if len(tensors) == 1:
        b.alias(n, tensors[0])
        return
    b.emit(n, "concat", tensors, {"dim": d + 1 if lifted and d >= 2 else d}, lifted=lifted)


def select(b, n, x, dim, index) -> None:
    """Channels ``index`` (dim 1) of ``x`` -> a ``select`` node (``index`` covering every
    channel in order: an alias)."""
    shape = b.shape(x)
    d, index = norm_dim(dim, len(shape)), tuple(int(i) for i in index)
    if d != 1 or len(shape) < 2:
        raise b.unsupported(n, f"slicing along dim {dim} of a {len(shape)}-D tensor",
                            " (channels, dim 1, can be sliced, chunked or split)")
    if index == tuple(range(shape[1])):
        b.alias(n, x)
        return
    b.emit(n, "select", [x], {"dim": 1, "index": index}, lifted=x.name in b.lifted)


def split(b, n, x, sizes, dim) -> None:
    """``chunk``/``split``: record the pieces; each ``getitem`` of one is a :func:`select`."""
    shape = b.shape(x)
    d = norm_dim(dim, len(shape))
    pieces, start = [], 0
    for s in sizes:
        pieces.append(range(start, min(start + int(s), shape[d])))
        start += int(s)
    b.splits[n.name] = (x, d, pieces)


def chunk_sizes(length: int, chunks: int) -> list[int]:
    """``torch.chunk``'s pieces: ``ceil(length / chunks)`` each, the last the rest (fewer
    than ``chunks`` pieces when they run out)."""
    per = -(-length // int(chunks))
    return [min(per, length - s) for s in range(0, length, per)]


def split_sizes(length: int, size) -> list[int]:
    """``torch.split``'s pieces: ``size`` each and the rest, or the listed sizes."""
    if isinstance(size, (list, tuple)):
        return [int(s) for s in size]
    return [min(int(size), length - s) for s in range(0, length, int(size))]


def flatten(b, n, x, start=0, end=-1) -> None:
    rank = len(b.shape(x))
    s, e = norm_dim(start, rank), norm_dim(end, rank)
    if s >= e:
        b.alias(n, x)
        return
    if x.name in b.lifted and e == 2:  # (N, C, 1, L): flatten through the height-1 axis
        src, shape = b.value(n, x, True)
        name = b.name_for(n)
        b.add(name, "flatten", [src], [shape], b.shape(n), {"start_dim": s, "end_dim": 3})
        b.bind(n, name, False)
        return
    b.emit(n, "flatten", [x], {"start_dim": int(start), "end_dim": int(end)})


def reshape(b, n, x) -> None:
    """view/reshape/unsqueeze/squeeze/unflatten: the target shape is the traced one.
    In export graphs (where ``flatten`` arrives as ``aten.view``) collapsing every
    non-batch dim is a flatten."""
    src, shape = b.value(n, x, x.name in b.lifted)  # element order is the same either way
    name = b.name_for(n)
    out = b.shape(n)
    if b.tracer == "torch.export" and len(shape) > 2 and len(out) == 2 and out[0] == shape[0]:
        b.add(name, "flatten", [src], [shape], out, {"start_dim": 1, "end_dim": -1})
        b.bind(n, name, False)
        return
    b.add(name, "reshape", [src], [shape], b.shape(n), {"shape": b.shape(n)})
    b.bind(n, name, False)


def permute(b, n, x, perm) -> None:
    rank = len(b.shape(x))
    b.emit(n, "transpose", [x], {"perm": tuple(norm_dim(d, rank) for d in perm)})


def swap(b, n, x, d0, d1) -> None:
    rank = len(b.shape(x))
    perm = list(range(rank))
    d0, d1 = norm_dim(d0, rank), norm_dim(d1, rank)
    perm[d0], perm[d1] = perm[d1], perm[d0]
    permute(b, n, x, perm)


def matmul(b, n, x, y) -> None:
    """Two activations -> matmul; activation @ constant 2-D matrix -> linear."""
    if b.is_const(y) and not b.is_const(x):
        w = param(b, n, y, "the matrix")
        if w.ndim != 2:
            raise b.unsupported(n, f"matmul with a {w.ndim}-D constant", " (2-D only)")
        b.emit(n, "linear", [x], params={"weight": np.ascontiguousarray(w.T)})
        return
    b.emit(n, "matmul", [x, y])


def addmm(b, n, bias, x, y) -> None:
    """``aten.addmm(bias, x, W^T)`` (a decomposed linear)."""
    if not b.is_const(y) or not b.is_const(bias):
        raise b.unsupported(n, "addmm of activations", " (only bias + x @ constant weight)")
    w = param(b, n, y, "the matrix")
    b.emit(n, "linear", [x], params={"weight": np.ascontiguousarray(w.T),
                                     "bias": param(b, n, bias, "the bias").reshape(-1)})


def binary(b, n, op: str, x, y) -> None:
    """add/mul of two tensors (mul may broadcast one operand, e.g. squeeze-excitation),
    mul/div by a number or one-element constant."""
    tx, ty = (isinstance(v, fx.Node) and not b.is_const(v) for v in (x, y))
    if tx and ty:
        sx, sy, so = b.shape(x), b.shape(y), b.shape(n)
        if op == "add" and sx != sy:
            raise b.unsupported(n, f"broadcasting add {sx} + {sy}", " (same shapes only)")
        if op == "mul" and sx != sy and so not in (sx, sy):
            raise b.unsupported(n, f"broadcasting mul {sx} * {sy}",
                                " (one operand must have the output's shape)")
        if op == "div":
            raise b.unsupported(n, "division of two tensors")
        b.emit(n, op, [x, y], lifted=len(so) == 3 and b.any_lifted([x, y]))
        return
    t, c = (x, y) if tx else (y, x)
    v = b.scalar(c) if t is not None and (tx or ty) else None
    if v is not None and op == "mul":
        b.emit(n, "mul", [t], {"scalar": v}, lifted=b.any_lifted([t]))
    elif v is not None and op == "div" and t is x and v != 0:
        b.emit(n, "mul", [t], {"scalar": 1.0 / v}, lifted=b.any_lifted([t]))
    else:
        raise b.unsupported(n, f"{op} with operands {n.args!r}",
                            " (add needs two tensors of one shape; mul/div a number)")
