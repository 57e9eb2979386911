"""Handler tables: which ``torch`` function, tensor method and aten op maps to which
layer emitter (:mod:`mapping.passes.trace_layers`), and :data:`SUPPORTED`, the one
text that names what the front end accepts (every unsupported-op error quotes it).

Functions and methods come from ``torch.fx`` traces, aten ops from ``torch.export``
programs (default and core-ATen decomposed IR). Modules: :mod:`mapping.passes.trace_modules`.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx

from mapping.passes import trace_layers as L
from mapping.passes.trace_builder import GraphBuilder, arg, norm_dim

SUPPORTED = (
    "nn.Linear/F.linear, nn.Conv1d/nn.Conv2d/F.conv1d/F.conv2d (grouped, depthwise, "
    "non-square, zero padding), nn.BatchNorm1d/nn.BatchNorm2d/F.batch_norm (eval), "
    "ReLU, ReLU6, Hardtanh, clamp, LeakyReLU, Sigmoid, Tanh, SiLU, Hardswish, Hardsigmoid, "
    "ELU, GELU (nn modules, F.*, torch.* and tensor methods), add (+), mul/div by a number, "
    "tensor * tensor (one side may broadcast), nn.MaxPool1d/2d, nn.AvgPool1d/2d (ceil_mode), "
    "nn.AdaptiveAvgPool1d/2d (any size), mean over the spatial dims, torch.cat, "
    "nn.Flatten/flatten, view/reshape/squeeze/unsqueeze, permute/transpose, channel slices "
    "(chunk, split, narrow, x[:, a:b]) and channel shuffles (view-transpose-view), matmul (@), "
    "softmax, nn.LayerNorm (last dim), nn.Identity, nn.Dropout; the same as aten ops in "
    "torch.export programs"
)
ALIAS_METHODS = ("contiguous", "clone", "detach", "float")


def _alias(b, n):
    b.alias(n, n.args[0])


def _relu(b, n):
    L.act(b, n, n.args[0], "relu")


def _fn(name):
    return lambda b, n: L.act(b, n, n.args[0], name)


def _getitem(b, n):
    x, i = n.args
    if isinstance(x, fx.Node) and x.name in b.splits:  # piece i of a chunk / split
        src, dim, pieces = b.splits[x.name]
        L.select(b, n, src, dim, pieces[i])
        return
    if isinstance(x, fx.Node) and x.name in b.tuples:
        if i != 0:
            raise b.unsupported(n, f"using output {i} of {x.name!r}",
                                " (pooling indices / batch statistics)")
        b.alias(n, x)
        return
    if isinstance(x, fx.Node) and b.is_tensor(x) and _is_channel_slice(i):
        L.select(b, n, x, 1, range(*i[1].indices(b.shape(x)[1])))
        return
    raise b.unsupported(n, "indexing or slicing a tensor (x[...])",
                        " (a slice of the channels, x[:, a:b], is supported)")


def _is_channel_slice(i) -> bool:
    """Index ``i`` is ``[:, a:b(:s)]`` (optionally followed by ``:`` / ``...``)."""
    full = slice(None)
    return (isinstance(i, tuple) and len(i) >= 2 and i[0] == full and isinstance(i[1], slice)
            and all(j == full or j is Ellipsis for j in i[2:]))


def _chunk(b, n):
    x, dim = n.args[0], arg(n, 2, "dim", 0)
    L.split(b, n, x, L.chunk_sizes(b.shape(x)[norm_dim(dim, len(b.shape(x)))],
                                   arg(n, 1, "chunks")), dim)


def _split(b, n):
    x, dim = n.args[0], arg(n, 2, "dim", 0)
    size = arg(n, 1, "split_size_or_sections")
    size = size if size is not None else arg(n, 1, "split_size")
    size = size if size is not None else n.kwargs.get("split_sizes")
    L.split(b, n, x, L.split_sizes(b.shape(x)[norm_dim(dim, len(b.shape(x)))], size), dim)


def _narrow(b, n):  # narrow(x, dim, start, length)
    start = arg(n, 2, "start")
    L.select(b, n, n.args[0], arg(n, 1, "dim"), range(start, start + arg(n, 3, "length")))


def _aten_slice(b, n):  # aten.slice.Tensor(x, dim=0, start=None, end=None, step=1)
    x = n.args[0]
    dim = norm_dim(arg(n, 1, "dim", 0), len(b.shape(x)))
    sl = slice(arg(n, 2, "start"), arg(n, 3, "end"), arg(n, 4, "step", 1))
    rng = range(*sl.indices(b.shape(x)[dim]))
    if len(rng) == b.shape(x)[dim]:
        b.alias(n, x)
        return
    L.select(b, n, x, dim, rng)


def _tuple(handler):
    """A handler of an op that returns a tuple whose element 0 is the value."""
    def h(b, n):
        handler(b, n)
        b.tuples.add(n.name)
    return h


# ------------------------------------------------------------ functional
def _conv(b, n):
    L.conv(b, n, n.args[0], arg(n, 1, "weight"), arg(n, 2, "bias"), arg(n, 3, "stride", 1),
           arg(n, 4, "padding", 0), arg(n, 5, "dilation", 1), arg(n, 6, "groups", 1))


def _convolution(b, n):  # aten.convolution(x, w, b, stride, padding, dilation, transposed, ...)
    if n.args[6]:
        raise b.unsupported(n, "transposed convolution")
    L.conv(b, n, n.args[0], n.args[1], n.args[2], n.args[3], n.args[4], n.args[5], n.args[8])


def _linear(b, n):
    L.linear(b, n, n.args[0], arg(n, 1, "weight"), arg(n, 2, "bias"))


def _f_batch_norm(b, n):  # F.batch_norm(x, mean, var, weight, bias, training, momentum, eps)
    L.batchnorm(b, n, n.args[0], arg(n, 1, "running_mean"), arg(n, 2, "running_var"),
                arg(n, 3, "weight"), arg(n, 4, "bias"), arg(n, 7, "eps", 1e-5),
                arg(n, 5, "training", False))


def _aten_batch_norm(b, n):  # aten.batch_norm(x, w, b, mean, var, training, momentum, eps, .)
    L.batchnorm(b, n, n.args[0], n.args[3], n.args[4], n.args[1], n.args[2], n.args[7],
                n.args[5])


def _aten_bn_no_training(b, n):  # (x, w, b, mean, var, momentum, eps) -> tuple
    L.batchnorm(b, n, n.args[0], n.args[3], n.args[4], n.args[1], n.args[2], n.args[6])


def _max_pool(rank):
    def h(b, n):
        if arg(n, 6, "return_indices", False):
            b.tuples.add(n.name)
        L.pool(b, n, "maxpool2d", n.args[0], arg(n, 1, "kernel_size"), arg(n, 2, "stride"),
               arg(n, 3, "padding", 0), arg(n, 4, "dilation", 1), arg(n, 5, "ceil_mode", False),
               rank)
    return h


def _avg_pool(rank):
    def h(b, n):
        L.pool(b, n, "avgpool2d", n.args[0], arg(n, 1, "kernel_size"), arg(n, 2, "stride"),
               arg(n, 3, "padding", 0), 1, arg(n, 4, "ceil_mode", False), rank,
               count_include_pad=arg(n, 5, "count_include_pad", True),
               divisor_override=arg(n, 6, "divisor_override"))
    return h


def _adaptive(rank):
    return lambda b, n: L.adaptive_avg(b, n, n.args[0], rank)


def _mean(b, n):
    dims = arg(n, 1, "dim")
    if dims is None:
        raise b.unsupported(n, "mean over all elements", " (global average over spatial dims)")
    L.mean(b, n, n.args[0], dims, arg(n, 2, "keepdim", False))


def _clamp(b, n):
    L.clamp(b, n, n.args[0], arg(n, 1, "min"), arg(n, 2, "max"))


def _hardtanh(b, n):
    L.clamp(b, n, n.args[0], arg(n, 1, "min_val", -1.0), arg(n, 2, "max_val", 1.0), "hardtanh")


def _leaky(b, n):
    L.act(b, n, n.args[0], "leaky_relu", negative_slope=arg(n, 1, "negative_slope", 0.01))


def _elu(b, n):
    L.elu(b, n, n.args[0], arg(n, 1, "alpha", 1.0), arg(n, 2, "scale", 1.0),
          arg(n, 3, "input_scale", 1.0))


def _gelu(b, n):
    L.gelu(b, n, n.args[0], n.kwargs.get("approximate", arg(n, 1, "approximate", "none")))


def _softmax(b, n):
    L.softmax(b, n, n.args[0], arg(n, 1, "dim"))


def _layer_norm(b, n):
    L.layernorm(b, n, n.args[0], arg(n, 1, "normalized_shape"), arg(n, 2, "weight"),
                arg(n, 3, "bias"), arg(n, 4, "eps", 1e-5))


def _cat(b, n):
    L.concat(b, n, arg(n, 0, "tensors"), arg(n, 1, "dim", 0))


def _flatten(b, n):
    L.flatten(b, n, n.args[0], arg(n, 1, "start_dim", 0), arg(n, 2, "end_dim", -1))


def _reshape(b, n):
    L.reshape(b, n, n.args[0])


def _transpose(b, n):
    L.swap(b, n, n.args[0], arg(n, 1, "dim0"), arg(n, 2, "dim1"))


def _permute(b, n):
    dims = n.args[1] if len(n.args) == 2 and isinstance(n.args[1], (tuple, list)) \
        else n.args[1:] or n.kwargs["dims"]
    L.permute(b, n, n.args[0], dims)


def _t(b, n):
    L.permute(b, n, n.args[0], (1, 0))


def _matmul(b, n):
    L.matmul(b, n, n.args[0], n.args[1])


def _addmm(b, n):
    L.addmm(b, n, n.args[0], n.args[1], n.args[2])


def _binary(op):
    def h(b, n):
        if n.kwargs.get("alpha", 1) != 1:
            raise b.unsupported(n, f"{op} with alpha={n.kwargs['alpha']!r}")
        L.binary(b, n, op, n.args[0], n.args[1])
    return h


def _clamp_min(b, n):
    L.clamp(b, n, n.args[0], n.args[1], None)


def _clamp_max(b, n):
    L.clamp(b, n, n.args[0], None, n.args[1])


def _dropout(b, n):
    if arg(n, 2, "training", False):
        raise b.unsupported(n, "dropout in training mode")
    b.alias(n, n.args[0])


def _to(b, n):
    dtypes = [a for a in list(n.args[1:]) + list(n.kwargs.values()) if isinstance(a, torch.dtype)]
    if any(not d.is_floating_point for d in dtypes):
        raise b.unsupported(n, f"conversion to {dtypes[0]}")
    b.alias(n, n.args[0])


FUNCTIONS = {
    F.relu: _relu, torch.relu: _relu, F.relu6: _fn("relu6"), F.hardtanh: _hardtanh,
    torch.clamp: _clamp, torch.clip: _clamp, F.leaky_relu: _leaky, F.elu: _elu,
    torch.sigmoid: _fn("sigmoid"), F.sigmoid: _fn("sigmoid"), torch.tanh: _fn("tanh"),
    F.tanh: _fn("tanh"), F.silu: _fn("silu"), F.hardswish: _fn("hardswish"),
    F.hardsigmoid: _fn("hardsigmoid"), F.gelu: _gelu,
    operator.add: _binary("add"), operator.iadd: _binary("add"), torch.add: _binary("add"),
    operator.mul: _binary("mul"), operator.imul: _binary("mul"), torch.mul: _binary("mul"),
    operator.truediv: _binary("div"), torch.div: _binary("div"),
    operator.matmul: _matmul, torch.matmul: _matmul, torch.bmm: _matmul, torch.mm: _matmul,
    torch.flatten: _flatten, torch.reshape: _reshape, torch.squeeze: _reshape,
    torch.unsqueeze: _reshape, torch.transpose: _transpose, torch.permute: _permute,
    F.softmax: _softmax, torch.softmax: _softmax, F.layer_norm: _layer_norm,
    F.conv1d: _conv, F.conv2d: _conv, F.linear: _linear, F.batch_norm: _f_batch_norm,
    F.max_pool1d: _max_pool(1), F.max_pool2d: _max_pool(2), torch.max_pool1d: _max_pool(1),
    torch.max_pool2d: _max_pool(2), F.avg_pool1d: _avg_pool(1), F.avg_pool2d: _avg_pool(2),
    F.adaptive_avg_pool1d: _adaptive(1), F.adaptive_avg_pool2d: _adaptive(2),
    torch.mean: _mean, torch.cat: _cat, torch.concat: _cat, torch.concatenate: _cat,
    F.dropout: _dropout, operator.getitem: _getitem, torch.chunk: _chunk,
    torch.split: _split, torch.narrow: _narrow,
}
METHODS = {
    "relu": _relu, "relu6": _fn("relu6"), "sigmoid": _fn("sigmoid"), "tanh": _fn("tanh"),
    "clamp": _clamp, "clip": _clamp, "add": _binary("add"), "mul": _binary("mul"),
    "div": _binary("div"), "matmul": _matmul, "bmm": _matmul, "mm": _matmul,
    "view": _reshape, "reshape": _reshape, "squeeze": _reshape, "unsqueeze": _reshape,
    "unflatten": _reshape, "flatten": _flatten, "transpose": _transpose, "permute": _permute,
    "t": _t, "softmax": _softmax, "mean": _mean, "to": _to, "chunk": _chunk,
    "split": _split, "narrow": _narrow,
    **{m: _alias for m in ALIAS_METHODS},
}
_ATEN = {
    "relu": _relu, "relu6": _fn("relu6"), "hardtanh": _hardtanh, "clamp": _clamp,
    "clip": _clamp, "clamp_min": _clamp_min, "clamp_max": _clamp_max, "leaky_relu": _leaky, "elu": _elu, "sigmoid": _fn("sigmoid"),
    "tanh": _fn("tanh"), "silu": _fn("silu"), "hardswish": _fn("hardswish"),
    "hardsigmoid": _fn("hardsigmoid"), "gelu": _gelu,
    "add": _binary("add"), "mul": _binary("mul"), "div": _binary("div"),
    "matmul": _matmul, "bmm": _matmul, "mm": _matmul, "addmm": _addmm, "t": _t,
    "conv1d": _conv, "conv2d": _conv, "convolution": _convolution, "linear": _linear,
    "batch_norm": _aten_batch_norm,
    "_native_batch_norm_legit_no_training": _tuple(_aten_bn_no_training),
    "max_pool1d": _max_pool(1), "max_pool2d": _max_pool(2),
    "max_pool2d_with_indices": _tuple(_max_pool(2)),
    "avg_pool1d": _avg_pool(1), "avg_pool2d": _avg_pool(2),
    "adaptive_avg_pool1d": _adaptive(1), "adaptive_avg_pool2d": _adaptive(2),
    "_adaptive_avg_pool2d": _adaptive(2), "mean": _mean, "cat": _cat,
    "view": _reshape, "reshape": _reshape, "_unsafe_view": _reshape, "squeeze": _reshape,
    "unsqueeze": _reshape, "unflatten": _reshape, "flatten": _flatten,
    "transpose": _transpose, "permute": _permute, "softmax": _softmax, "_softmax": _softmax,
    "layer_norm": _layer_norm, "native_layer_norm": _tuple(_layer_norm),
    "dropout": _dropout, "clone": _alias, "contiguous": _alias, "alias": _alias,
    "detach": _alias, "_to_copy": _to, "to": _to, "chunk": _chunk, "split": _split,
    "split_with_sizes": _split, "narrow": _narrow, "slice": _aten_slice,
}
ATEN = {getattr(torch.ops.aten, k): v for k, v in _ATEN.items()
        if hasattr(torch.ops.aten, k)}


def lookup(b: GraphBuilder, n: fx.Node):
    """The handler of call node ``n`` (``None`` when unsupported)."""
    if n.op == "call_method":
        return METHODS.get(n.target)
    if n.op == "call_module":
        from mapping.passes.trace_modules import module_handler

        return module_handler(b, n)
    t = n.target
    if isinstance(t, torch._ops.OpOverload):
        return ATEN.get(t.overloadpacket)
    try:
        return FUNCTIONS.get(t)
    except TypeError:  # unhashable target
        return None


__all__ = ["SUPPORTED", "lookup", "norm_dim"]
