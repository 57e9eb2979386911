"""``fold_batchnorm``: fold ``conv2d -> batchnorm2d`` (2-D, 1-D as height 1, grouped) and
``linear -> batchnorm2d`` on ``(N, C)`` features (BatchNorm1d after a Linear) into the layer."""

from __future__ import annotations

import numpy as np

from mapping.graph import DataflowGraph


def fold_batchnorm(g: DataflowGraph) -> DataflowGraph:
    """A new graph where every BN fed by a conv2d or linear (its only consumer) is folded in.

    The BN's channel axis (dim 1) must be the layer's output channel: any conv2d
    (grouped too: the weight is ``(K, C/groups, R, S)``, scaled per ``K``), a linear
    only when the BN input is 2-D ``(N, C)``.

    ``w' = w * gamma / sqrt(var + eps)`` per output channel and
    ``b' = (b - mean) * gamma / sqrt(var + eps) + beta`` (``b = 0`` when the conv
    has no bias; a bias is created). Computed in float64, stored as float32
    like the original parameters. The input graph is not modified.
    """
    g = g.copy()
    for bn in g.nodes():
        if bn.op != "batchnorm2d":
            continue
        conv = g.node(bn.inputs[0])
        fits = conv.op == "conv2d" or (conv.op == "linear" and len(bn.in_shapes[0]) == 2)
        if not fits or conv.attrs.get("fused_relu") or g.consumers(conv.name) != [bn.name]:
            continue
        p = bn.params
        c = p["running_mean"].shape[0]
        gamma = p.get("weight", np.ones(c)).astype(np.float64)
        beta = p.get("bias", np.zeros(c)).astype(np.float64)
        k = gamma / np.sqrt(p["running_var"].astype(np.float64) + bn.attrs["eps"])
        w = conv.params["weight"].astype(np.float64)
        b = conv.params.get("bias", np.zeros(c)).astype(np.float64)
        conv.params["weight"] = (w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        conv.params["bias"] = ((b - p["running_mean"]) * k + beta).astype(np.float32)
        conv.attrs["folded_bn"] = bn.name
        g.bypass(bn.name)
    return g
