"""``split_groups``: a grouped convolution (``groups > 1``, not depthwise) becomes ``groups``
dense convolutions on channel slices, joined by a channel concat.

Group ``i`` of ``G`` (``C/G`` input and ``K/G`` output channels) is a ``select`` of input
channels ``i*C/G ..`` (a strided copy on the accelerator) and a ``conv2d`` with the group's
weights and bias; one ``concat`` named like the grouped conv (its consumers are unchanged)
joins the ``G`` outputs. A quantised graph keeps its numbers: every group keeps the conv's
input scale, output scale and widths and takes its slice of the per-channel weight scales
and multipliers, so the concat is an exact copy and the result is the grouped conv's
integer result bit for bit (``sim.golden`` computes the grouped conv directly). Each group
runs dense on the array: no zeros are multiplied (a block-diagonal dense conv would
multiply ``G - 1`` zeros per useful weight), at the price of ``2G + ...`` copy layers
(the report lists them). Depthwise convolutions stay whole: they run on the element-wise
engine (:func:`mapping.passes.lower.is_depthwise`).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from mapping.graph import DataflowGraph, Node
from mapping.passes.quant_concat import concat_spec
from mapping.quant import QuantSpec


def is_grouped(node: Node) -> bool:
    """A ``conv2d`` with ``groups > 1`` that is not depthwise (``groups`` = in = out)."""
    from mapping.passes.lower import is_depthwise

    return (node.op == "conv2d" and int(node.attrs.get("groups", 1)) > 1
            and not is_depthwise(node))


def split_groups(g: DataflowGraph) -> DataflowGraph:
    """A new graph with every grouped conv split (module docstring); ``g`` is unchanged.
    A graph without one is returned as a copy."""
    nodes: list[Node] = []
    for n in g.nodes():
        n = copy.deepcopy(n)
        nodes += _split(n, g) if is_grouped(n) else [n]
    return DataflowGraph(nodes)


def _split(n: Node, g: DataflowGraph) -> list[Node]:
    groups = int(n.attrs["groups"])
    b, c, h, w = n.in_shapes[0]
    k = n.out_shape[1]
    cg, kg = c // groups, k // groups
    src = g.node(n.inputs[0]).quant
    out: list[Node] = []
    for i in range(groups):
        sel = Node(name=f"{n.name}_g{i}_in", op="select", inputs=[n.inputs[0]],
                   in_shapes=[n.in_shapes[0]], out_shape=(b, cg, h, w),
                   attrs={"index": tuple(range(i * cg, (i + 1) * cg)), "group_of": n.name})
        if src is not None:
            sel.quant = src.passed_on()
        rows = slice(i * kg, (i + 1) * kg)
        conv = Node(name=f"{n.name}_g{i}", op="conv2d", inputs=[sel.name],
                    in_shapes=[sel.out_shape], out_shape=(b, kg) + tuple(n.out_shape[2:]),
                    attrs={**n.attrs, "groups": 1, "group_of": n.name},
                    params={p: v[rows] if np.ndim(v) and np.shape(v)[0] == k else v
                            for p, v in n.params.items()})
        if n.quant is not None:
            conv.quant = _slice_spec(n.quant, rows, k)
        out += [sel, conv]
    convs = out[1::2]
    cat = Node(name=n.name, op="concat", inputs=[x.name for x in convs],
               in_shapes=[x.out_shape for x in convs], out_shape=n.out_shape,
               attrs={"dim": 1, "groups_of": groups})
    if n.quant is not None:  # the groups share the conv's output scale: an exact concat
        cat.quant = concat_spec(n.name, [c.quant for c in convs])
    return out + [cat]


def _slice_spec(q: QuantSpec, rows: slice, k: int) -> QuantSpec:
    """The conv's QuantSpec for output channels ``rows``: per-channel arrays sliced."""
    def part(a):
        a = None if a is None else np.asarray(a)
        return a[rows] if a is not None and a.ndim == 1 and a.shape[0] == k else a
    return replace(q, w_scale=part(q.w_scale), mult=part(q.mult), shift=part(q.shift),
                   extra=dict(q.extra))
