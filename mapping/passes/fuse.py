"""``fuse_activations``: fold ReLUs and scalar multiplies into their producers."""

from __future__ import annotations

import math

from mapping.graph import DataflowGraph
from mapping.quant import CLAMP_FNS, clamp_bounds

RELU_PRODUCERS = ("conv2d", "linear", "matmul", "add")


def fuse_activations(g: DataflowGraph) -> DataflowGraph:
    """A new graph with ReLUs fused into their producers and scalar muls into matmuls.

    - ``relu`` whose input is a conv2d/linear/matmul/add or a ``mul`` of two tensors (all
      requantise their result) read only by that relu:
      the producer gets ``attrs["fused_relu"] = True`` and the relu disappears.
    - likewise a clamp from 0 (``act`` ReLU6, hardtanh / clamp with ``min = 0`` and a
      finite ``max``) not read by a concat: the producer also gets ``attrs["fused_max"]``,
      and :func:`mapping.passes.quantize.quantize` gives it an output scale at most
      ``max / qmax``, so the requantisation's clamp at ``qmax`` *is* the clamp at ``max``
      (one rounding instead of two, and no lookup table: TFLite fuses ReLU6 the same way).
    - ``mul`` by a scalar whose input is a matmul read only by it: the matmul's
      ``attrs["scale"]`` is multiplied by the scalar and the mul disappears.

    Consumers of a removed node read its producer (same argument position).
    The input graph is not modified.
    """
    g = g.copy()
    for node in g.nodes():
        top = _clamp_top(g, node)
        if node.op == "relu" or top is not None:
            src = g.node(node.inputs[0])
            tensor_mul = src.op == "mul" and "scalar" not in src.attrs  # requantised
            if ((src.op in RELU_PRODUCERS or tensor_mul) and not src.attrs.get("fused_relu")
                    and g.consumers(src.name) == [node.name]):
                src.attrs["fused_relu"] = True
                if top is not None:
                    src.attrs["fused_max"] = top
                g.bypass(node.name)
        elif node.op == "mul" and "scalar" in node.attrs:
            src = g.node(node.inputs[0])
            if (src.op == "matmul" and not src.attrs.get("fused_relu")
                    and g.consumers(src.name) == [node.name]):
                src.attrs["scale"] = src.attrs.get("scale", 1.0) * node.attrs["scalar"]
                g.bypass(node.name)
    return g


def _clamp_top(g: DataflowGraph, node) -> float | None:
    """``max`` of an ``act`` clamping to ``[0, max]`` (ReLU6, hardtanh / clamp from 0) that
    no concat reads (its inputs share one scale, which need not reach ``max / qmax``)."""
    if node.op != "act" or node.attrs.get("fn") not in CLAMP_FNS:
        return None
    lo, hi = clamp_bounds(node.attrs)
    if lo != 0.0 or hi is None or not (hi > 0 and math.isfinite(hi)):
        return None
    if any(g.node(c).op == "concat" for c in g.consumers(node.name)):
        return None
    return float(hi)
