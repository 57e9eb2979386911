"""``DataflowGraph``: the typed dataflow graph every pass and the mapper work on.

A :class:`DataflowGraph` wraps a ``networkx.DiGraph``. Node key = unique str
name; node attribute ``"node"`` = a :class:`Node`; edge ``u -> v`` = one tensor,
with attribute ``arg`` (first argument position of ``u`` in ``v.inputs``) and
``args`` (all positions, when a tensor is used twice, e.g. ``x + x``).
``Node.inputs`` is the source of truth; edges are derived from it.

:func:`trace` builds one from a ``torch.nn.Module`` with ``torch.fx`` (``torch.export``
where fx cannot trace) or from an ``ExportedProgram`` (the front end lives in
:mod:`mapping.passes.fxtrace`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from math import prod
from typing import Any

import networkx as nx
import numpy as np

from mapping.loopnest import LoopNest

OPS = (
    "input", "linear", "conv2d", "batchnorm2d", "relu", "add", "maxpool2d", "avgpool2d",
    "flatten", "reshape", "transpose", "matmul", "mul", "softmax", "layernorm", "gelu",
    "act", "concat", "select", "output",
)
ACT_FNS = ("relu6", "hardtanh", "clamp", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish",
           "hardsigmoid", "gelu", "elu")
"""``act`` nodes: an element-wise function of one tensor, ``attrs["fn"]`` one of these, with
its parameters in ``attrs`` (``min``/``max`` for hardtanh/clamp/relu6, ``negative_slope``
for leaky_relu, ``alpha`` for elu, ``approximate`` for gelu): PyTorch's semantics."""
# ``select`` nodes: channels ``attrs["index"]`` (a tuple) of dim 1, in that order,
# ``out[:, k] = in[:, index[k]]``: chunk/split/channel slices, channel shuffles
# (mapping.passes.channel_select), the groups of a grouped conv (mapping.passes.group_split)
COMPUTE_OPS = ("linear", "conv2d", "matmul")


def pair(v) -> tuple[int, int]:
    """A conv/pool geometry attribute as ``(h, w)``: an int means the same on both axes."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


class GraphError(ValueError):
    """A malformed graph or a lookup of a node that does not exist."""


class UnsupportedOpError(GraphError):
    """A PyTorch operation the flow cannot map; names the node, the op and the supported set."""


@dataclass
class Node:
    """One operation: canonical ``op``, ordered ``inputs`` (node names), shapes incl. batch,
    ``attrs`` (stride, padding, kernel, eps, dim, perm, scalar, fused_relu, ...),
    ``params`` (numpy weight/bias/BN stats), ``quant`` (a ``QuantSpec`` after
    quantisation) and ``nest`` (a ``LoopNest`` after lowering, compute nodes only)."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)
    out_shape: tuple[int, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    quant: Any = None
    nest: LoopNest | None = None

    @property
    def param_count(self) -> int:
        return int(sum(v.size for k, v in self.params.items() if not k.startswith("q")))

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass (0 for non-compute ops)."""
        if self.op == "linear":
            return prod(self.in_shapes[0][:-1]) * self.params["weight"].size
        if self.op == "conv2d":
            k, c, r, s = self.params["weight"].shape
            return prod(self.out_shape) * c * r * s
        if self.op == "matmul":
            return prod(self.out_shape) * self.in_shapes[0][-1]
        return 0


class DataflowGraph:
    """Typed dataflow graph (see module docstring). Build with :func:`mapping.graph.trace`."""

    def __init__(self, nodes: list[Node] | None = None):
        self.nx = nx.DiGraph()
        self._order: dict[str, int] = {}
        for n in nodes or []:
            self.add(n)

    # ------------------------------------------------------------ building
    def add(self, node: Node) -> Node:
        if node.name in self._order:
            raise GraphError(f"duplicate node name {node.name!r}")
        if node.op not in OPS:
            raise GraphError(f"node {node.name!r}: unknown op {node.op!r}; ops: {', '.join(OPS)}")
        self._order[node.name] = max(self._order.values(), default=-1) + 1
        self.nx.add_node(node.name, node=node)
        self._connect(node)
        return node

    def _connect(self, node: Node) -> None:
        for u in list(self.nx.predecessors(node.name)):
            self.nx.remove_edge(u, node.name)
        for pos, src in enumerate(node.inputs):
            if src not in self._order:
                raise GraphError(f"node {node.name!r} reads {src!r}, which does not exist")
            if self.nx.has_edge(src, node.name):
                self.nx.edges[src, node.name]["args"].append(pos)
            else:
                self.nx.add_edge(src, node.name, arg=pos, args=[pos])

    def set_inputs(self, name: str, inputs: list[str]) -> None:
        """Replace a node's inputs (and its edges)."""
        node = self.node(name)
        node.inputs = list(inputs)
        self._connect(node)

    def replace_uses(self, old: str, new: str) -> None:
        """Every consumer of ``old`` reads ``new`` instead."""
        for c in self.consumers(old):
            self.set_inputs(c, [new if i == old else i for i in self.node(c).inputs])

    def remove(self, name: str) -> None:
        """Remove a node that no longer has consumers."""
        if self.consumers(name):
            raise GraphError(f"cannot remove {name!r}: still read by {self.consumers(name)}")
        self.nx.remove_node(name)
        del self._order[name]

    def bypass(self, name: str, keep: str | None = None) -> None:
        """Remove ``name``; its consumers read ``keep`` (default: its first input)."""
        node = self.node(name)
        self.replace_uses(name, keep if keep is not None else node.inputs[0])
        self.remove(name)

    # ------------------------------------------------------------- queries
    def nodes(self) -> list[Node]:
        """All nodes in a deterministic topological order (trace order breaks ties)."""
        names = nx.lexicographical_topological_sort(self.nx, key=self._order.__getitem__)
        return [self.nx.nodes[n]["node"] for n in names]

    def node(self, name: str) -> Node:
        try:
            return self.nx.nodes[name]["node"]
        except KeyError:
            raise GraphError(
                f"no node named {name!r}; nodes: {', '.join(self._order)}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._order

    def __len__(self) -> int:
        return len(self._order)

    def consumers(self, name: str) -> list[str]:
        return sorted(self.nx.successors(name), key=self._order.__getitem__)

    @property
    def inputs(self) -> list[str]:
        return [n.name for n in self.nodes() if n.op == "input"]

    @property
    def outputs(self) -> list[str]:
        """Names of the ``output`` nodes, in order (each forwards one result tensor)."""
        return [n.name for n in self.nodes() if n.op == "output"]

    def compute_nodes(self) -> list[Node]:
        """Nodes with a ``LoopNest`` (after ``lower``), in topological order."""
        return [n for n in self.nodes() if n.nest is not None]

    def copy(self) -> DataflowGraph:
        """Deep copy (nodes, params, quant specs)."""
        return copy.deepcopy(self)

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes())

    # ------------------------------------------------------------- display
    def summary(self) -> str:
        """A plain-text table: name, op, inputs, output shape, params, MACs, quant."""
        rows = [("name", "op", "inputs", "output", "params", "MACs", "quant")]
        for n in self.nodes():
            op = n.op + ("+relu" if n.attrs.get("fused_relu") else "")
            op += " (host)" if n.attrs.get("host") else ""
            rows.append((
                n.name, op, ", ".join(n.inputs) or "-",
                "x".join(str(d) for d in n.out_shape),
                f"{n.param_count:,}" if n.param_count else "-",
                f"{n.macs:,}" if n.macs else "-",
                n.quant.describe() if n.quant is not None else "-",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        params = sum(n.param_count for n in self.nodes())
        lines.append(f"{len(self)} nodes, {params:,} parameters, {self.total_macs:,} MACs")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DataflowGraph({len(self)} nodes, {self.total_macs:,} MACs)"


def trace(module, example_input=None) -> DataflowGraph:
    """Trace ``module`` (an ``nn.Module``, or a ``torch.export.ExportedProgram`` whose
    ``example_input`` is optional) into a :class:`DataflowGraph`: torch.fx, else
    torch.export (see :mod:`mapping.passes.fxtrace`; accepted ops: ``trace_ops.SUPPORTED``)."""
    from mapping.passes.fxtrace import trace_module

    return trace_module(module, example_input)
