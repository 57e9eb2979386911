"""``fuse_activations``: fold ReLUs and scalar multiplies into their producers."""

from __future__ import annotations

from mapping.graph import DataflowGraph

RELU_PRODUCERS = ("conv2d", "linear", "matmul", "add")


def fuse_activations(g: DataflowGraph) -> DataflowGraph:
    """A new graph with ReLUs fused into their producers and scalar muls into matmuls.

    - ``relu`` whose input is a conv2d/linear/matmul/add or a ``mul`` of two tensors (all
      requantise their result) read only by that relu:
      the producer gets ``attrs["fused_relu"] = True`` and the relu disappears.
    - ``mul`` by a scalar whose input is a matmul read only by it: the matmul's
      ``attrs["scale"]`` is multiplied by the scalar and the mul disappears.

    Consumers of a removed node read its producer (same argument position).
    The input graph is not modified.
    """
    g = g.copy()
    for node in g.nodes():
        if node.op == "relu":
            src = g.node(node.inputs[0])
            tensor_mul = src.op == "mul" and "scalar" not in src.attrs  # requantised
            if ((src.op in RELU_PRODUCERS or tensor_mul) and not src.attrs.get("fused_relu")
                    and g.consumers(src.name) == [node.name]):
                src.attrs["fused_relu"] = True
                g.bypass(node.name)
        elif node.op == "mul" and "scalar" in node.attrs:
            src = g.node(node.inputs[0])
            if (src.op == "matmul" and not src.attrs.get("fused_relu")
                    and g.consumers(src.name) == [node.name]):
                src.attrs["scale"] = src.attrs.get("scale", 1.0) * node.attrs["scalar"]
                g.bypass(node.name)
    return g
