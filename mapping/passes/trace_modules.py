"""``nn.Module`` handlers of the ``torch.fx`` front end (``call_module`` nodes).

Each maps a leaf module to a layer emitter of :mod:`mapping.passes.trace_layers`
with the module's own parameters; see :data:`mapping.passes.trace_ops.SUPPORTED`.
"""

from __future__ import annotations

from torch import fx, nn

from mapping.passes import trace_layers as L
from mapping.passes.trace_builder import GraphBuilder


def _conv(b, n, m):
    L.conv(b, n, n.args[0], m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups,
           m.padding_mode)


def _bn(b, n, m):
    L.batchnorm(b, n, n.args[0], m.running_mean, m.running_var, m.weight, m.bias, m.eps)


def _max(rank):
    def h(b, n, m):
        if m.return_indices:
            b.tuples.add(n.name)
        L.pool(b, n, "maxpool2d", n.args[0], m.kernel_size, m.stride, m.padding, m.dilation,
               m.ceil_mode, rank)
    return h


def _avg(rank):
    def h(b, n, m):
        L.pool(b, n, "avgpool2d", n.args[0], m.kernel_size, m.stride, m.padding, 1,
               m.ceil_mode, rank, count_include_pad=m.count_include_pad,
               divisor_override=getattr(m, "divisor_override", None))
    return h


def _act(fn, **params):
    return lambda b, n, m: L.act(b, n, n.args[0], fn,
                                 **{k: getattr(m, a) for k, a in params.items()})


def _hardtanh(b, n, m):
    if isinstance(m, nn.ReLU6):
        L.act(b, n, n.args[0], "relu6")
    else:
        L.clamp(b, n, n.args[0], m.min_val, m.max_val, "hardtanh")


MODULES = [  # checked in order (subclasses before their base classes)
    ((nn.Identity, nn.modules.dropout._DropoutNd), lambda b, n, m: b.alias(n, n.args[0])),
    (nn.Linear, lambda b, n, m: L.linear(b, n, n.args[0], m.weight, m.bias)),
    ((nn.Conv1d, nn.Conv2d), _conv),
    ((nn.BatchNorm1d, nn.BatchNorm2d), _bn),
    (nn.ReLU, lambda b, n, m: L.act(b, n, n.args[0], "relu")),
    (nn.Hardtanh, _hardtanh),  # ReLU6 is a Hardtanh
    (nn.LeakyReLU, _act("leaky_relu", negative_slope="negative_slope")),
    (nn.ELU, lambda b, n, m: L.elu(b, n, n.args[0], m.alpha)),
    (nn.Sigmoid, _act("sigmoid")), (nn.Tanh, _act("tanh")), (nn.SiLU, _act("silu")),
    (nn.Hardswish, _act("hardswish")), (nn.Hardsigmoid, _act("hardsigmoid")),
    (nn.GELU, lambda b, n, m: L.gelu(b, n, n.args[0], m.approximate)),
    (nn.MaxPool1d, _max(1)), (nn.MaxPool2d, _max(2)),
    (nn.AvgPool1d, _avg(1)), (nn.AvgPool2d, _avg(2)),
    (nn.AdaptiveAvgPool1d, lambda b, n, m: L.adaptive_avg(b, n, n.args[0], 1)),
    (nn.AdaptiveAvgPool2d, lambda b, n, m: L.adaptive_avg(b, n, n.args[0], 2)),
    (nn.Flatten, lambda b, n, m: L.flatten(b, n, n.args[0], m.start_dim, m.end_dim)),
    (nn.Unflatten, lambda b, n, m: L.reshape(b, n, n.args[0])),
    (nn.Softmax, lambda b, n, m: L.softmax(b, n, n.args[0], m.dim)),
    (nn.LayerNorm, lambda b, n, m: L.layernorm(b, n, n.args[0], m.normalized_shape, m.weight,
                                               m.bias, m.eps)),
]


def module_handler(b: GraphBuilder, n: fx.Node):
    """The handler of ``call_module`` node ``n`` (a function of ``(b, n)``), or ``None``."""
    m = b.modules[n.target]
    for types, h in MODULES:
        if isinstance(m, types):
            return lambda b_, n_: h(b_, n_, m)
    return None
