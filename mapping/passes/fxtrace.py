"""``torch.fx`` front end: ``nn.Module`` -> :class:`mapping.graph.DataflowGraph`.

Used through :func:`mapping.graph.trace`. The module is deep-copied and put in
eval mode first (shape propagation must not touch BN running statistics of
the caller's model). Identity-like ops (``nn.Identity``, ``nn.Dropout``,
``contiguous``) are elided; shape arguments of ``view``/``reshape`` are read
from shape propagation, so ``x.view(x.size(0), -1)`` works.
"""

from __future__ import annotations

import copy
import operator
from math import prod

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from mapping.graph import OPS, DataflowGraph, GraphError, Node, UnsupportedOpError

SUPPORTED = (
    "nn.Linear, nn.Conv2d (groups=1, zero padding), nn.BatchNorm2d, nn.ReLU/F.relu/torch.relu, "
    "add (+, torch.add), mul/div by a scalar or tensor * tensor, nn.MaxPool2d, nn.AvgPool2d, "
    "nn.AdaptiveAvgPool2d (integer ratio), nn.Flatten/torch.flatten, view/reshape, "
    "permute/transpose, matmul (@), softmax, nn.LayerNorm, nn.GELU, nn.Identity, nn.Dropout"
)
_ALIAS_MODULES = (nn.Identity, nn.Dropout)
_ALIAS_METHODS = ("contiguous", "clone", "detach")


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().copy()


def _pair(v, what: str, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) != 2:
        raise UnsupportedOpError(f"node {name!r}: {what} {v!r} must be an int or a pair")
    return t


def _square(v, what: str, name: str, op: str) -> int:
    a, b = _pair(v, what, name)
    if a != b:
        raise UnsupportedOpError(
            f"node {name!r} ({op}): non-square {what} {v!r} is not supported "
            "(the loop nest has one value for both spatial axes)"
        )
    return a


def _shape(n: fx.Node) -> tuple[int, ...] | None:
    tm = n.meta.get("tensor_meta")
    return tuple(int(d) for d in tm.shape) if hasattr(tm, "shape") else None


def _expected_input(module: nn.Module) -> str:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return f"(batch, ..., {m.in_features}) for its first layer Linear({m.in_features}, ...)"
        if isinstance(m, nn.Conv2d):
            return f"(batch, {m.in_channels}, H, W) for its first layer Conv2d({m.in_channels}, ...)"
    return "see the model's documentation"


def _norm_dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


class _Builder:
    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.alias: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.n_out = 0

    def unsupported(self, n: fx.Node, what: str, extra: str = "") -> UnsupportedOpError:
        return UnsupportedOpError(
            f"node {n.name!r}: unsupported operation {what}{extra}; supported: {SUPPORTED}"
        )

    def src(self, a: fx.Node) -> str:
        return self.alias.get(a.name, a.name)

    def tensor_args(self, n: fx.Node) -> list[fx.Node]:
        return [a for a in n.args if isinstance(a, fx.Node) and _shape(a) is not None]

    def emit(self, n: fx.Node, op: str, inputs: list[fx.Node], attrs=None, params=None) -> None:
        assert op in OPS
        self.nodes.append(Node(
            name=n.name, op=op, inputs=[self.src(a) for a in inputs],
            in_shapes=[_shape(a) for a in inputs], out_shape=_shape(n) or (),
            attrs=attrs or {}, params={k: v for k, v in (params or {}).items() if v is not None},
        ))

    # -------------------------------------------------------------- dispatch
    def run(self) -> DataflowGraph:
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if _shape(n) is None:
                    raise GraphError(f"input {n.name!r} is not a tensor")
                self.emit(n, "input", [])
            elif n.op == "output":
                outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else (n.args[0],)
                for o in outs:
                    if not isinstance(o, fx.Node) or _shape(o) is None:
                        raise self.unsupported(n, "returning a non-tensor value")
                    name = "output" if self.n_out == 0 else f"output_{self.n_out}"
                    self.n_out += 1
                    self.nodes.append(Node(name=name, op="output", inputs=[self.src(o)],
                                           in_shapes=[_shape(o)], out_shape=_shape(o)))
            elif n.op == "call_module":
                self.module(n, self.modules[n.target])
            elif n.op == "call_function":
                self.function(n)
            elif n.op == "call_method":
                self.method(n)
            elif n.op == "get_attr":
                if all(u.op == "call_method" and u.target == "size" for u in n.users):
                    continue
                raise self.unsupported(n, f"get_attr {n.target!r}",
                                       " (constant tensors in forward are not supported)")
            else:
                raise self.unsupported(n, n.op)
        return DataflowGraph(self.nodes)

    def skip_non_tensor(self, n: fx.Node) -> bool:
        """Shape arithmetic (``x.size(0)``, ``getitem`` on sizes): consumed only as shape args."""
        if _shape(n) is not None:
            return False
        if all(u.op == "call_method" and u.target in ("view", "reshape")
               or u.op == "call_function" and u.target in (operator.getitem, operator.mul,
                                                             operator.floordiv, torch.reshape)
               or _shape(u) is None
               for u in n.users):
            return True
        return False

    def module(self, n: fx.Node, m: nn.Module) -> None:
        x = n.args[0]
        if isinstance(m, _ALIAS_MODULES):
            self.alias[n.name] = self.src(x)
        elif isinstance(m, nn.Linear):
            self.emit(n, "linear", [x], params={"weight": _np(m.weight), "bias": _np(m.bias)})
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1:
                raise self.unsupported(n, f"Conv2d with groups={m.groups}", " (only groups=1)")
            if m.padding_mode != "zeros":
                raise self.unsupported(n, f"Conv2d with padding_mode={m.padding_mode!r}",
                                       " (only 'zeros')")
            if isinstance(m.padding, str):
                k = _pair(m.kernel_size, "kernel", n.name)
                d = _pair(m.dilation, "dilation", n.name)
                pad = [0, 0] if m.padding == "valid" else [di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True)]
                if m.padding == "same" and any(di * (ki - 1) % 2 for ki, di in zip(k, d, strict=True)):
                    raise self.unsupported(n, "Conv2d padding='same' with an even kernel")
            else:
                pad = m.padding
            attrs = {
                "kernel": _square(m.kernel_size, "kernel", n.name, "conv2d"),
                "stride": _square(m.stride, "stride", n.name, "conv2d"),
                "padding": _square(pad, "padding", n.name, "conv2d"),
                "dilation": _square(m.dilation, "dilation", n.name, "conv2d"),
            }
            self.emit(n, "conv2d", [x], attrs, {"weight": _np(m.weight), "bias": _np(m.bias)})
        elif isinstance(m, nn.BatchNorm2d):
            if m.running_mean is None:
                raise self.unsupported(n, "BatchNorm2d without running statistics",
                                       " (track_running_stats=False)")
            self.emit(n, "batchnorm2d", [x], {"eps": float(m.eps)}, {
                "running_mean": _np(m.running_mean), "running_var": _np(m.running_var),
                "weight": _np(m.weight), "bias": _np(m.bias)})
        elif isinstance(m, nn.ReLU):
            self.emit(n, "relu", [x])
        elif isinstance(m, nn.MaxPool2d):
            self.pool(n, "maxpool2d", x, m.kernel_size, m.stride, m.padding, m.dilation,
                      m.ceil_mode)
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None or (not m.count_include_pad and m.padding != 0):
                raise self.unsupported(n, "AvgPool2d with divisor_override/count_include_pad=False")
            self.pool(n, "avgpool2d", x, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            self.adaptive(n, x)
        elif isinstance(m, nn.Flatten):
            self.flatten(n, x, m.start_dim, m.end_dim)
        elif isinstance(m, nn.Softmax):
            self.emit(n, "softmax", [x], {"dim": _norm_dim(m.dim, len(_shape(x)))})
        elif isinstance(m, nn.LayerNorm):
            if len(m.normalized_shape) != 1:
                raise self.unsupported(n, "LayerNorm over more than the last dimension")
            self.emit(n, "layernorm", [x], {"eps": float(m.eps),
                                             "normalized_shape": tuple(m.normalized_shape)},
                      {"weight": _np(m.weight), "bias": _np(m.bias)})
        elif isinstance(m, nn.GELU):
            self.emit(n, "gelu", [x], {"approximate": m.approximate})
        else:
            raise self.unsupported(n, f"module {type(m).__name__} ({n.target})")

    def pool(self, n, op, x, kernel, stride, padding, dilation, ceil_mode) -> None:
        if ceil_mode:
            raise self.unsupported(n, f"{op} with ceil_mode=True")
        if _pair(dilation, "dilation", n.name) != (1, 1):
            raise self.unsupported(n, f"{op} with dilation != 1")
        k = _pair(kernel, "kernel", n.name)
        self.emit(n, op, [x], {
            "kernel": k, "stride": _pair(stride if stride is not None else kernel, "stride", n.name),
            "padding": _pair(padding, "padding", n.name)})

    def adaptive(self, n, x) -> None:
        (h, w), (oh, ow) = _shape(x)[2:], _shape(n)[2:]
        if h % oh or w % ow:
            raise self.unsupported(n, f"AdaptiveAvgPool2d {h}x{w} -> {oh}x{ow}",
                                   " (input size must be a multiple of the output size)")
        k = (h // oh, w // ow)
        self.emit(n, "avgpool2d", [x], {"kernel": k, "stride": k, "padding": (0, 0),
                                         "adaptive": True})

    def flatten(self, n, x, start=1, end=-1) -> None:
        self.emit(n, "flatten", [x], {"start_dim": start, "end_dim": end})

    def transpose(self, n, x, perm) -> None:
        self.emit(n, "transpose", [x], {"perm": tuple(perm)})

    def swap(self, n, x, d0, d1) -> None:
        rank = len(_shape(x))
        perm = list(range(rank))
        d0, d1 = _norm_dim(d0, rank), _norm_dim(d1, rank)
        perm[d0], perm[d1] = perm[d1], perm[d0]
        self.transpose(n, x, perm)

    def binary(self, n, op: str) -> None:
        a, b = n.args[0], n.args[1]
        ta = [v for v in (a, b) if isinstance(v, fx.Node) and _shape(v) is not None]
        if len(ta) == 2:
            if op == "add" and (_shape(a) != _shape(b)):
                raise self.unsupported(n, f"broadcasting add {_shape(a)} + {_shape(b)}")
            if op == "mul" and (_shape(a) != _shape(b)):
                raise self.unsupported(n, f"broadcasting mul {_shape(a)} * {_shape(b)}")
            self.emit(n, op, ta)
        elif len(ta) == 1 and isinstance(a if ta[0] is b else b, (int, float)) and op == "mul":
            scalar = float(a if ta[0] is b else b)
            self.emit(n, "mul", ta, {"scalar": scalar})
        elif len(ta) == 1 and op == "div" and ta[0] is a and isinstance(b, (int, float)):
            self.emit(n, "mul", ta, {"scalar": 1.0 / float(b)})
        else:
            raise self.unsupported(n, f"{op} with operands {n.args!r}",
                                   " (add needs two tensors of one shape; mul/div a scalar)")

    def function(self, n: fx.Node) -> None:
        t = n.target
        if self.skip_non_tensor(n):
            return
        args = n.args
        if t in (F.relu, torch.relu):
            self.emit(n, "relu", [args[0]])
        elif t in (operator.add, torch.add, operator.iadd):
            self.binary(n, "add")
        elif t in (operator.mul, torch.mul):
            self.binary(n, "mul")
        elif t in (operator.truediv, torch.div):
            self.binary(n, "div")
        elif t in (operator.matmul, torch.matmul, torch.bmm):
            self.emit(n, "matmul", list(args[:2]))
        elif t is torch.flatten:
            self.flatten(n, args[0], *(list(args[1:]) or [n.kwargs.get("start_dim", 0)]))
        elif t is torch.reshape:
            self.emit(n, "reshape", [args[0]], {"shape": _shape(n)})
        elif t is torch.transpose:
            self.swap(n, args[0], args[1], args[2])
        elif t is torch.permute:
            self.transpose(n, args[0], [_norm_dim(d, len(_shape(args[0]))) for d in args[1]])
        elif t in (F.softmax, torch.softmax):
            dim = args[1] if len(args) > 1 else n.kwargs["dim"]
            self.emit(n, "softmax", [args[0]], {"dim": _norm_dim(dim, len(_shape(args[0])))})
        elif t is F.gelu:
            self.emit(n, "gelu", [args[0]], {"approximate": n.kwargs.get("approximate", "none")})
        elif t is F.adaptive_avg_pool2d:
            self.adaptive(n, args[0])
        elif t is F.max_pool2d:
            kw = n.kwargs
            self.pool(n, "maxpool2d", args[0], args[1] if len(args) > 1 else kw["kernel_size"],
                      kw.get("stride") or (args[2] if len(args) > 2 else None),
                      kw.get("padding", 0), kw.get("dilation", 1), kw.get("ceil_mode", False))
        elif t is operator.getitem and _shape(n) is None:
            return
        else:
            name = getattr(t, "__name__", repr(t))
            raise self.unsupported(n, f"function {getattr(t, '__module__', '')}.{name}")

    def method(self, n: fx.Node) -> None:
        m, args = n.target, n.args
        if self.skip_non_tensor(n) or m == "size" or m == "dim":
            return
        x = args[0]
        if m in _ALIAS_METHODS:
            self.alias[n.name] = self.src(x)
        elif m in ("view", "reshape"):
            self.emit(n, "reshape", [x], {"shape": _shape(n)})
        elif m == "flatten":
            self.flatten(n, x, *(list(args[1:]) or [n.kwargs.get("start_dim", 0)]))
        elif m == "transpose":
            self.swap(n, x, args[1], args[2])
        elif m == "permute":
            dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            self.transpose(n, x, [_norm_dim(d, len(_shape(x))) for d in dims])
        elif m == "relu":
            self.emit(n, "relu", [x])
        elif m == "softmax":
            dim = args[1] if len(args) > 1 else n.kwargs["dim"]
            self.emit(n, "softmax", [x], {"dim": _norm_dim(dim, len(_shape(x)))})
        elif m in ("add", "mul", "div", "matmul"):
            if m == "matmul":
                self.emit(n, "matmul", list(args[:2]))
            else:
                self.binary(n, m)
        else:
            raise self.unsupported(n, f"tensor method .{m}()")


def trace_module(module: nn.Module, example_input) -> DataflowGraph:
    """``torch.fx`` symbolic trace + ``ShapeProp`` -> :class:`DataflowGraph` (see module docstring)."""
    if not isinstance(module, nn.Module):
        raise GraphError(f"trace() needs a torch.nn.Module, got {type(module).__name__}")
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    inputs = tuple(torch.as_tensor(x, dtype=torch.float32) for x in inputs)
    for x in inputs:
        if x.numel() == 0:
            raise GraphError(f"example input of shape {tuple(x.shape)} has a zero-size "
                             "dimension; every dimension must be at least 1")
    module = copy.deepcopy(module).eval()
    try:
        gm = fx.symbolic_trace(module)
    except Exception as exc:  # torch raises many types for untraceable control flow
        raise UnsupportedOpError(
            f"torch.fx could not trace {type(module).__name__}: {exc} "
            "(data-dependent control flow is not supported)"
        ) from exc
    n_ph = sum(1 for n in gm.graph.nodes if n.op == "placeholder")
    if n_ph != len(inputs):
        raise GraphError(f"{type(module).__name__} takes {n_ph} input(s); got {len(inputs)}")
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*inputs)
    except Exception as exc:
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise GraphError(
            f"example input of shape {shapes} does not fit {type(module).__name__}: the model "
            f"expects input shape {_expected_input(module)}; PyTorch said: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    g = _Builder(gm).run()
    for nd in g.nodes():
        if nd.op != "input" and prod(nd.out_shape) == 0:
            raise GraphError(f"node {nd.name!r} has an empty output {nd.out_shape}")
    return g
