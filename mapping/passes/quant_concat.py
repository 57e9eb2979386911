"""One scale for the inputs of every ``concat``, so concatenation is an exact copy.

The inputs of a concat must share one integer scale (the accelerator copies them into
channel slices of one tensor, ``hwgen.compiler.copy_layer``). :func:`concat_scales`
finds the *producers* that set each input's scale (walking back through ops that keep
their input's scale: pooling, relu, layout ops, nested concats) and gives them all the
largest of their calibrated scales and the concat's own, so each producer requantises
straight to the shared scale and no input saturates.
"""

from __future__ import annotations

from mapping import quant as Q
from mapping.graph import DataflowGraph
from mapping.quant import QuantError

KEEPS_SCALE = ("maxpool2d", "avgpool2d", "relu", "flatten", "reshape", "transpose", "select",
               "concat")
"""Ops whose output scale is their (first) input's: walked through to the producer."""
SETS_SCALE = ("input", "linear", "conv2d", "add", "matmul", "act", *Q.HOST_OPS)
"""Ops that requantise to any output scale (``mul`` of two tensors too)."""


def _producers(g: DataflowGraph, name: str, concat: str) -> set[str]:
    n = g.node(name)
    if n.op in KEEPS_SCALE:
        ins = n.inputs if n.op == "concat" else n.inputs[:1]
        return set().union(*(_producers(g, i, concat) for i in ins))
    if n.op in SETS_SCALE or (n.op == "mul" and "scalar" not in n.attrs):
        return {name}
    raise QuantError(f"node {concat!r}: concat input {name!r} (op {n.op!r}) cannot requantise "
                     f"to the concat's scale; supported producers: {', '.join(SETS_SCALE)}, "
                     f"through {', '.join(KEEPS_SCALE)}")


def concat_scales(g: DataflowGraph, max_abs: dict[str, float], bits: dict) -> dict[str, float]:
    """``producer name -> output scale`` for the producers of every concat's inputs
    (``bits``: node name -> ``(act_bits, w_bits)``; producers of one concat need the
    same activation width)."""
    group: dict[str, str] = {}  # union-find over producers and concats

    def find(x: str) -> str:
        while group.setdefault(x, x) != x:
            x = group[x]
        return x

    for n in g.nodes():
        if n.op != "concat":
            continue
        prods = set().union(*(_producers(g, i, n.name) for i in n.inputs))
        widths = {bits[p][0] for p in prods} | {bits[n.name][0]}
        if len(widths) > 1:
            raise QuantError(f"node {n.name!r}: concat inputs and output need one activation "
                             f"width; producers {sorted(prods)} have {sorted(widths)} bits")
        root = find(n.name)
        for p in prods:
            group[find(p)] = root
    scale: dict[str, float] = {}
    for x in group:
        s = Q.act_scale(max_abs[x], bits[x][0])
        r = find(x)
        scale[r] = max(scale.get(r, 0.0), s)
    return {x: scale[find(x)] for x in group if g.node(x).op != "concat"}


def concat_spec(name: str, ins: list) -> Q.QuantSpec:
    """The concat's QuantSpec: its inputs' common scale and width (relu if all are)."""
    if len({q.scale for q in ins}) != 1 or len({q.bits for q in ins}) != 1:
        raise QuantError(f"node {name!r}: concat inputs have scales "
                         f"{[q.scale for q in ins]} and widths {[q.bits for q in ins]}; "
                         "they must share one (mapping.passes.quant_concat)")
    return Q.QuantSpec(bits=ins[0].bits, scale=ins[0].scale, relu=all(q.relu for q in ins),
                       in_scales=tuple(q.scale for q in ins))
