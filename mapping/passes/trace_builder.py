"""``GraphBuilder``: walks a shape-annotated ``torch.fx`` graph and emits :class:`Node` s.

Shared by the ``torch.fx`` front end (:mod:`mapping.passes.fxtrace`) and the
``torch.export`` one (:mod:`mapping.passes.export_trace`); the per-operation
handlers live in :mod:`mapping.passes.trace_ops` / :mod:`mapping.passes.trace_modules`.

- Constants: ``get_attr`` values, lifted parameters/buffers and anything computed
  only from them (``w.t()``, ``aten.permute(p_weight)``) are folded to tensors;
  handlers read them as node parameters (:meth:`GraphBuilder.const`).
- 1-D layers: a 3-D ``(N, C, L)`` tensor read by a 1-D layer is represented as
  the 4-D ``(N, C, 1, L)`` tensor ("lifted"); element-wise ops keep it lifted,
  anything else reads it back through a ``reshape``. :meth:`GraphBuilder.finish`
  merges reshape chains, drops identity reshapes and lifts a graph input read
  only by a lifting reshape (its ``attrs["torch_shape"]`` keeps the 3-D shape;
  so does an ``output`` of a lifted tensor). A reshape/transpose chain that only reorders
  channels becomes a ``select`` (:mod:`mapping.passes.channel_select`).
"""

from __future__ import annotations

import operator
import re

import numpy as np
import torch
from torch import fx

from mapping.graph import OPS, DataflowGraph, GraphError, Node, UnsupportedOpError

_RESERVED = re.compile(r"output(_\d+)?")


def shape_of(n) -> tuple[int, ...] | None:
    """The tensor shape of an fx node (``ShapeProp``'s ``tensor_meta`` or export's ``val``);
    for a tuple result (max pool with indices, native batch norm) that of element 0."""
    if not isinstance(n, fx.Node):
        return None
    tm = n.meta.get("tensor_meta")
    if isinstance(tm, (tuple, list)) and tm and not hasattr(tm, "shape"):  # not TensorMetadata
        tm = tm[0]
    if hasattr(tm, "shape"):
        return tuple(int(d) for d in tm.shape)
    v = n.meta.get("val")
    v = v[0] if isinstance(v, (tuple, list)) and v else v
    if isinstance(v, torch.Tensor):
        try:
            return tuple(int(d) for d in v.shape)
        except TypeError as exc:  # symbolic sizes
            raise GraphError(f"node {n.name!r} has a dynamic shape {tuple(v.shape)}; export "
                             "with static shapes (no dynamic_shapes)") from exc
    return None


def lift(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(N, C, L) -> (N, C, 1, L)``; other ranks unchanged."""
    return shape[:2] + (1,) + shape[2:] if len(shape) == 3 else shape


def norm_dim(d: int, rank: int) -> int:
    return int(d) + rank if int(d) < 0 else int(d)


def arg(n: fx.Node, i: int, name: str, default=None):
    """Argument ``i`` (positional) or ``name`` (keyword) of ``n``."""
    if len(n.args) > i:
        return n.args[i]
    return n.kwargs.get(name, default)


def _flat_nodes(a) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(a, out.append)
    return out


class GraphBuilder:
    """Emit a :class:`DataflowGraph` from an fx graph (see module docstring).

    ``consts``: fx node name -> tensor for lifted parameters/buffers; ``modules``:
    ``call_module`` target -> module;
    ``get_attr``: resolves a ``get_attr`` target; ``names``: fx name -> preferred
    graph node name; ``outputs``: which of the output node's values are results
    (default all); ``lookup(builder, n)``: the handler of a call node, or ``None``.
    """

    def __init__(self, graph: fx.Graph, lookup, *, consts=None, get_attr=None, names=None,
                 outputs=None, modules=None, tracer: str = "torch.fx",
                 unsupported_text: str = ""):
        self.graph, self.lookup = graph, lookup
        self.modules = modules or {}
        self.consts: dict[str, torch.Tensor] = dict(consts or {})
        self._get_attr = get_attr
        self.pref = names or {}
        self.out_index = outputs
        self.tracer = tracer
        self.supported = unsupported_text
        self.env: dict[str, str] = {}       # fx name -> graph node carrying its value
        self.lifted: set[str] = set()       # fx names whose value is height-1 4-D
        self.tuples: set[str] = set()       # fx names of tuple results (getitem 0 = the value)
        self.splits: dict[str, tuple] = {}  # fx name of a chunk/split -> (x, dim, pieces)
        self.nodes: dict[str, Node] = {}
        self._views: dict[tuple[str, bool], str] = {}

    # ------------------------------------------------------------ errors
    def unsupported(self, n: fx.Node, what: str, extra: str = "") -> UnsupportedOpError:
        return UnsupportedOpError(
            f"node {n.name!r}: unsupported operation {what}{extra}; supported: {self.supported}")

    # ------------------------------------------------------------ values
    def shape(self, a: fx.Node) -> tuple[int, ...]:
        """Torch shape of a tensor value."""
        s = shape_of(a) if a.name not in self.consts else tuple(self.consts[a.name].shape)
        if s is None:
            raise GraphError(f"node {a.name!r} is not a tensor")
        return s

    def is_tensor(self, a) -> bool:
        return isinstance(a, fx.Node) and (a.name in self.env or a.name in self.consts)

    def is_const(self, a) -> bool:
        return isinstance(a, fx.Node) and a.name in self.consts

    def const(self, n: fx.Node, a, what: str) -> np.ndarray | None:
        """Parameter ``a`` (``None`` stays ``None``) as float32 numpy; must be a constant."""
        if a is None:
            return None
        if not self.is_const(a):
            raise self.unsupported(n, f"{what} computed from the input",
                                   f" ({what} must be a constant: a parameter or buffer)")
        return self.consts[a.name].detach().cpu().to(torch.float32).numpy().copy()

    def scalar(self, a) -> float | None:
        """``a`` as a Python float when it is a number or a one-element constant, else None."""
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            return float(a)
        if self.is_const(a) and self.consts[a.name].numel() == 1:
            return float(self.consts[a.name].reshape(()))
        return None

    def value(self, n: fx.Node, a: fx.Node, lifted: bool) -> tuple[str, tuple[int, ...]]:
        """Graph node name and recorded shape of tensor ``a`` as read by ``n``: height-1 4-D
        when ``lifted`` and ``a`` is 3-D, else the torch shape (a reshape is added if needed)."""
        if self.is_const(a):
            raise self.unsupported(n, f"a constant tensor {a.name!r} as an operand",
                                   " (constants are supported as weights, biases and BN "
                                   "statistics, or as one-element scalars of mul/div)")
        if a.name not in self.env:
            raise self.unsupported(n, f"reading {a.name!r}, which is not a tensor")
        src, shape = self.env[a.name], self.shape(a)
        want = lifted and len(shape) == 3
        if want == (a.name in self.lifted):
            return src, lift(shape) if want else shape
        key = (src, want)
        if key not in self._views:
            have = shape if want else lift(shape)
            name = self.unique(f"{src}_h1" if want else f"{src}_1d")
            self.add(name, "reshape", [src], [have], lift(shape) if want else shape,
                     {"shape": lift(shape) if want else shape})
            self._views[key] = name
        return self._views[key], lift(shape) if want else shape

    def any_lifted(self, xs) -> bool:
        return any(isinstance(x, fx.Node) and x.name in self.lifted for x in xs)

    # ------------------------------------------------------------ emission
    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.nodes or _RESERVED.fullmatch(name):
            name, k = f"{base}_{k}", k + 1
        return name

    def name_for(self, n: fx.Node) -> str:
        return self.unique(self.pref.get(n.name, n.name))

    def add(self, name, op, inputs, in_shapes, out_shape, attrs=None, params=None) -> Node:
        assert op in OPS, op
        node = Node(name=name, op=op, inputs=list(inputs), in_shapes=list(in_shapes),
                    out_shape=tuple(out_shape), attrs=dict(attrs or {}),
                    params={k: v for k, v in (params or {}).items() if v is not None})
        self.nodes[name] = node
        return node

    def emit(self, n: fx.Node, op: str, inputs, attrs=None, params=None, *, lifted=False,
             name: str | None = None, out_shape=None) -> str:
        """Add one node for fx node ``n`` reading tensors ``inputs``. ``lifted``: 3-D inputs
        and a 3-D output are height-1 4-D (1-D layers, element-wise ops on lifted values)."""
        vals = [self.value(n, a, lifted) for a in inputs]
        torch_out = shape_of(n) if out_shape is None else out_shape
        out = lift(torch_out) if lifted else torch_out
        name = name or self.name_for(n)
        self.add(name, op, [v[0] for v in vals], [v[1] for v in vals], out, attrs, params)
        self.bind(n, name, lifted and len(torch_out) == 3)
        return name

    def bind(self, n: fx.Node, name: str, lifted: bool) -> None:
        self.env[n.name] = name
        if lifted:
            self.lifted.add(n.name)
        else:
            self.lifted.discard(n.name)

    def alias(self, n: fx.Node, a: fx.Node) -> None:
        """``n`` is the same value as ``a`` (identity-like ops)."""
        if self.is_const(a):
            self.consts[n.name] = self.consts[a.name]
            return
        if a.name not in self.env:
            raise self.unsupported(n, f"reading {a.name!r}, which is not a tensor")
        self.bind(n, self.env[a.name], a.name in self.lifted)

    # ------------------------------------------------------------ walk
    def run(self) -> DataflowGraph:
        for n in self.graph.nodes:
            if n.op == "placeholder":
                if n.name in self.consts:
                    continue
                shape = shape_of(n)
                if shape is None:
                    raise GraphError(f"input {n.name!r} is not a tensor")
                name = self.unique(n.name)
                self.add(name, "input", [], [], shape, {"tracer": self.tracer})
                self.bind(n, name, False)
            elif n.op == "get_attr":
                v = self._get_attr(n.target) if self._get_attr else None
                if isinstance(v, torch.Tensor):
                    self.consts[n.name] = v
            elif n.op == "output":
                self.output(n)
            elif not self.fold(n) and not self.skip_non_tensor(n):
                handler = self.lookup(self, n)
                if handler is None:
                    raise self.unsupported(n, describe(n, self.modules))
                handler(self, n)
        return self.finish()

    def fold(self, n: fx.Node) -> bool:
        """Evaluate ``n`` now when every tensor it reads is a constant."""
        if n.op not in ("call_function", "call_method"):
            return False
        ins = _flat_nodes((n.args, n.kwargs))
        if not all(a.name in self.consts for a in ins):  # no inputs: torch.ones(...) etc.
            return False
        args, kwargs = fx.node.map_arg((n.args, n.kwargs), lambda a: self.consts[a.name])
        try:
            with torch.no_grad():
                v = (n.target(*args, **kwargs) if n.op == "call_function"
                     else getattr(args[0], n.target)(*args[1:], **kwargs))
        except Exception:  # noqa: BLE001 - leave it to the handlers
            return False
        if not isinstance(v, torch.Tensor):
            return False
        self.consts[n.name] = v
        return True

    def skip_non_tensor(self, n: fx.Node) -> bool:
        """Values that are not tensors (``x.size(0)``, shape arithmetic): only shape arguments.
        A tensor operand that was skipped is caught by :meth:`value`."""
        if shape_of(n) is not None:
            return False
        return not (n.target is operator.getitem and isinstance(n.args[0], fx.Node)
                    and n.args[0].name in self.tuples)

    def output(self, n: fx.Node) -> None:
        outs = n.args[0] if isinstance(n.args[0], (tuple, list)) else (n.args[0],)
        if self.out_index is not None:
            outs = [outs[i] for i in self.out_index]
        for k, o in enumerate(outs):
            if not isinstance(o, fx.Node) or o.name not in self.env:
                raise self.unsupported(n, "returning a non-tensor or constant value")
            src, shape = self.env[o.name], self.shape(o)
            rec = lift(shape) if o.name in self.lifted else shape
            attrs = {"torch_shape": shape} if o.name in self.lifted else {}
            self.add("output" if k == 0 else f"output_{k}", "output", [src], [rec], rec, attrs)

    # ------------------------------------------------------------ cleanup
    def finish(self) -> DataflowGraph:
        g = DataflowGraph(list(self.nodes.values()))
        for name in self._views.values():
            if name in g and not g.consumers(name):
                g.remove(name)
        changed = True
        while changed:
            changed = False
            for r in g.nodes():
                if r.op not in ("reshape", "flatten"):
                    continue
                src = g.node(r.inputs[0])
                only = g.consumers(src.name) == [r.name]
                if r.op == "flatten":  # a whole-sample flatten ignores an earlier reshape
                    whole = (r.attrs["start_dim"] == 1
                             and r.attrs["end_dim"] in (-1, len(r.in_shapes[0]) - 1))
                    if not (whole and src.op == "reshape" and only
                            and src.in_shapes[0][0] == src.out_shape[0]):
                        continue
                    g.set_inputs(r.name, [src.inputs[0]])
                    r.in_shapes = list(src.in_shapes)
                    r.attrs["end_dim"] = -1
                    g.remove(src.name)
                elif src.op == "reshape" and only:
                    g.set_inputs(r.name, [src.inputs[0]])
                    r.in_shapes = list(src.in_shapes)
                    g.remove(src.name)
                elif tuple(r.in_shapes[0]) == tuple(r.out_shape):
                    g.bypass(r.name)
                elif (src.op == "input" and only and len(src.out_shape) == 3
                      and tuple(r.out_shape) == lift(src.out_shape)):
                    src.attrs["torch_shape"] = tuple(src.out_shape)
                    src.out_shape = tuple(r.out_shape)
                    g.bypass(r.name)
                else:
                    continue
                changed = True
                break
        from mapping.passes.channel_select import fold_channel_shuffles

        return fold_channel_shuffles(g)


def describe(n: fx.Node, modules: dict | None = None) -> str:
    """A readable name of the operation of ``n`` (for errors); ``modules`` (name -> module)
    lets a call_module name its class, as in ``module Softplus (act)``."""
    t = n.target
    if n.op == "call_method":
        return f"tensor method .{t}()"
    if n.op == "call_module":
        m = (modules or {}).get(t)
        return f"module {type(m).__name__} ({t})" if m is not None else f"module {t}"
    if isinstance(t, torch._ops.OpOverload):
        return f"aten op {t}"
    name = getattr(t, "__name__", repr(t))
    return f"function {getattr(t, '__module__', '') or ''}.{name}"
