"""``lower``: give every compute node (linear, conv2d, matmul) its ``LoopNest``.

- ``linear`` on input ``(..., K)``: ``LoopNest.gemm(M, N, K)`` with ``M`` the
  product of all leading dims (batch x tokens), ``N = out_features``.
- ``conv2d``: ``LoopNest.conv(N, K, C, H, W, R, S, stride, padding, dilation)``
  with ``N`` the batch of the traced shape; ``stride``/``padding``/``dilation``
  attributes are an int or an ``(h, w)`` pair (``mapping.graph.pair``), so a
  Conv1d (a height-1 conv2d) and non-square convolutions lower alike.
- a *depthwise* ``conv2d`` (:func:`is_depthwise`: ``groups`` = in channels = out
  channels, weight ``(C, 1, R, S)``) gets **no** nest: a weight-stationary systolic
  array shares each input activation across its columns, so a depthwise conv could use
  one column only (or multiply zeros); it runs on the element-wise engine instead
  (``hwgen.rtl.depthwise``, ``mapping.timing.dw_cycles``) and the mapper skips it
  (``DataflowGraph.compute_nodes`` lists nodes with a nest).
- other grouped convs (``1 < groups < channels``, or a channel multiplier) are split first
  into one dense conv per group on a channel slice, joined by a concat
  (:mod:`mapping.passes.group_split`): no zeros multiplied.
- channel shuffles are absorbed: tensors may be stored with their channels permuted, and
  their consumers read them so (:mod:`mapping.passes.channel_layout`).
- ``matmul`` of two activations ``a (..., M, K) @ b (..., K, N)``: the second
  operand plays the weight role. With a 2-D ``b`` all leading dims of ``a``
  fold into ``M`` (``attrs["batch"] = 1``). Otherwise the leading dims are
  independent GEMMs (e.g. attention heads): ``attrs["batch"]`` = product of
  the leading dims and the nest is *one* of them (``M = a.shape[-2]``); the
  layer runs the nest ``batch`` times (``Node.macs`` counts all of them).

Operand widths come from the ``QuantSpec``s (input producer's ``bits``, the
node's ``w_bits`` and ``bits``); an unquantised graph gets 8/8/8.
"""

from __future__ import annotations

from math import prod

from mapping.graph import DataflowGraph, Node, pair
from mapping.loopnest import LoopNest


def is_depthwise(node: Node) -> bool:
    """A ``conv2d`` with ``groups`` = in channels = out channels (> 1)."""
    if node.op != "conv2d":
        return False
    g = int(node.attrs.get("groups", 1))
    k, c = node.params["weight"].shape[:2]
    return g > 1 and c == 1 and k == g and node.in_shapes[0][1] == g


def lower(g: DataflowGraph) -> DataflowGraph:
    """A new graph whose linear/conv2d/matmul nodes carry ``nest``, grouped convs split
    (input not modified)."""
    from mapping.passes.channel_layout import store_permuted
    from mapping.passes.group_split import split_groups

    g = store_permuted(split_groups(g))
    for node in g.nodes():
        if node.op not in ("linear", "conv2d", "matmul"):
            continue
        if is_depthwise(node):
            node.nest = None  # element-wise engine, not the array (module docstring)
            continue
        q, src = node.quant, g.node(node.inputs[0]).quant
        bits = {"in_bits": src.bits if src else 8,
                "w_bits": (q.w_bits or 8) if q else 8,
                "out_bits": q.bits if q else 8}
        a = node.in_shapes[0]
        if node.op == "linear":
            n_out, k = node.params["weight"].shape
            node.nest = LoopNest.gemm(prod(a[:-1]), n_out, k, **bits)
            node.attrs["batch"] = 1
        elif node.op == "conv2d":
            k, c, r, s = node.params["weight"].shape
            at = node.attrs
            node.nest = LoopNest.conv(a[0], k, c, a[2], a[3], r, s, stride=pair(at["stride"]),
                                      padding=pair(at["padding"]),
                                      dilation=pair(at["dilation"]), **bits)
        else:
            b = node.in_shapes[1]
            if len(b) == 2:
                node.attrs["batch"] = 1
                node.nest = LoopNest.gemm(prod(a[:-1]), b[-1], a[-1], **bits)
            else:
                node.attrs["batch"] = prod(node.out_shape[:-2])
                node.nest = LoopNest.gemm(a[-2], b[-1], a[-1], **bits)
    return g
