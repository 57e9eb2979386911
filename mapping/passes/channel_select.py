"""``fold_channel_shuffles``: a chain of ``reshape``/``transpose`` nodes that leaves an
``(N, C, H, W)`` tensor's shape unchanged and only reorders its channels (the channel
shuffle of ShuffleNet: ``view(N, g, C/g, H, W)``, ``transpose(1, 2)``, ``view(N, C, H,
W)``) becomes one ``select`` of the permuted channels, which the accelerator runs as
strided copies (``hwgen.build.movement.select_layers``).

The permutation is found by running the chain on the element indices (numpy), so any
reshape/transpose sequence that happens to be a channel permutation folds, and nothing
else does. The intermediate nodes go when nothing else reads them.
"""

from __future__ import annotations

import numpy as np

from mapping.graph import DataflowGraph, Node

LAYOUT = ("reshape", "transpose")


def channel_permutation(chain: list[Node], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The channel order ``chain`` (reshape/transpose nodes, first to last) gives a tensor of
    ``shape`` ``(N, C, H, W)``, or ``None`` when it moves elements across pixels."""
    n, c, h, w = shape
    idx = np.arange(c * h * w).reshape(1, c, h, w)
    for node in chain:
        if node.op == "reshape":
            idx = idx.reshape((1,) + tuple(node.out_shape[1:]))
        else:
            idx = idx.transpose(node.attrs["perm"])
    if idx.shape != (1, c, h, w):
        return None
    perm = idx[0, :, 0, 0] // (h * w)
    want = perm.reshape(c, 1, 1) * (h * w) + np.arange(h * w).reshape(1, h, w)
    if not np.array_equal(idx[0], want) or sorted(perm.tolist()) != list(range(c)):
        return None
    return tuple(int(p) for p in perm)


def _chain(g: DataflowGraph, last: Node) -> tuple[Node, list[Node]] | None:
    """``(source, chain)``: the layout nodes back from ``last`` to the nearest tensor of
    ``last``'s shape (every node but ``last`` read only by the next), at least two."""
    chain = [last]
    while True:
        src = g.node(chain[0].inputs[0])
        if tuple(src.out_shape) == tuple(last.out_shape) and len(chain) >= 2:
            return src, chain
        if src.op not in LAYOUT or len(g.consumers(src.name)) != 1:
            return None
        chain.insert(0, src)


def fold_channel_shuffles(g: DataflowGraph) -> DataflowGraph:
    """Replace every reshape/transpose chain that permutes channels by a ``select``
    (module docstring); ``g`` is modified in place and returned."""
    changed = True
    while changed:
        changed = False
        for last in g.nodes():
            if last.op not in LAYOUT or len(last.out_shape) != 4:
                continue
            found = _chain(g, last)
            perm = found and channel_permutation(found[1], tuple(found[0].out_shape))
            if not perm:
                continue
            src, chain = found
            last.op, last.attrs = "select", {"dim": 1, "index": perm, "shuffle": True}
            last.in_shapes = [tuple(src.out_shape)]
            g.set_inputs(last.name, [src.name])
            for node in reversed(chain[:-1]):
                g.remove(node.name)
            changed = True
            break
    return g
