"""``store_permuted``: keep channel shuffles out of the data path.

A channel shuffle (a ``select`` that permutes every channel) costs one strided copy per
channel, and a slice of a shuffled tensor as many (ShuffleNetV2 has sixteen of each: 1,845
copy layers). Instead, a tensor may be *stored* with its channels in another order,
``order[k]`` = the logical channel held at stored position ``k``, and each consumer reads
it that way:

- a ``select`` gathers its channels in stored order (ascending stored positions, so the
  fewest runs of consecutive channels, ``hwgen.build.movement.channel_runs``); its output
  keeps the gathered order. A select that gathers every channel in place is no copy at
  all: it is removed (the channel shuffle itself);
- a dense ``conv2d`` / ``linear`` takes the order into its weights' input channels (exact:
  a sum does not care about its order); its output is in logical order;
- a depthwise conv permutes its per-channel weights, bias and requantisation the same way;
  ``relu``, ``act``, pooling keep the order; a ``concat`` concatenates its inputs' orders;
- an ``add`` of two tensors in one order keeps it; anything else (an add of two orders,
  flatten, reshape, transpose, the output) first gets its input in logical order by a
  ``select`` that gathers it back.

Every node's logical result is unchanged, so ``sim.golden`` computes the same outputs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mapping.graph import DataflowGraph, Node

KEEPS_ORDER = ("relu", "act", "maxpool2d", "avgpool2d")


def store_permuted(g: DataflowGraph) -> DataflowGraph:
    """A new graph with channel shuffles absorbed (module docstring); ``g`` is unchanged.
    A graph without a ``select`` is returned as is (a copy)."""
    from mapping.passes.lower import is_depthwise

    g = g.copy()
    if not any(n.op == "select" for n in g.nodes()):
        return g
    order: dict[str, tuple[int, ...] | None] = {}
    for n in g.nodes():
        ins = [order.get(i) for i in n.inputs]
        if n.op == "select":
            order[n.name] = _gather(n, ins[0])
        elif n.op in ("conv2d", "linear") and not is_depthwise(n) and ins[0] is not None \
                and len(n.in_shapes[0]) in (2, 4):
            _permute_inputs(n, ins[0])
        elif is_depthwise(n) and ins[0] is not None:
            _permute_channels(n, ins[0])
            order[n.name] = ins[0]
        elif n.op in KEEPS_ORDER:
            order[n.name] = ins[0]
        elif n.op == "concat" and n.attrs.get("dim") == 1 and any(o is not None for o in ins):
            out, base = [], 0
            for o, shape in zip(ins, n.in_shapes, strict=True):
                out += [base + c for c in (o if o is not None else range(shape[1]))]
                base += shape[1]
            order[n.name] = tuple(out)
        elif n.op == "add" and ins[0] == ins[1]:
            order[n.name] = ins[0]
        else:
            for i, o in zip(list(n.inputs), ins, strict=True):
                if o is not None:
                    _restore(g, n, i, o)
    for n in g.nodes():  # gathers of every channel in place: no copy
        if n.op == "select" and n.attrs["index"] == tuple(range(n.in_shapes[0][1])):
            g.bypass(n.name)
    return g


def _identity(o) -> bool:
    return o is None or tuple(o) == tuple(range(len(o)))


def _gather(n: Node, src: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """Rewrite select ``n`` to read its input's stored order ``src`` in ascending stored
    positions; the stored order of its output (``None``: logical)."""
    index = tuple(int(i) for i in n.attrs["index"])
    pos = np.argsort(np.asarray(src)) if src is not None else np.arange(n.in_shapes[0][1])
    stored = [int(pos[c]) for c in index]  # where each wanted channel is stored
    by_pos = sorted(range(len(index)), key=stored.__getitem__)
    n.attrs["index"] = tuple(stored[k] for k in by_pos)
    out = tuple(by_pos)  # stored position j holds logical output channel by_pos[j]
    return None if _identity(out) else out


def _permute_inputs(n: Node, o: tuple[int, ...]) -> None:
    """Dense conv/linear reading a tensor stored in order ``o``: weight input channel ``k``
    becomes the one of logical channel ``o[k]``."""
    for p in ("weight", "qweight"):
        if p in n.params:
            n.params[p] = np.ascontiguousarray(np.asarray(n.params[p])[:, list(o)])


def _permute_channels(n: Node, o: tuple[int, ...]) -> None:
    """Depthwise conv on a tensor stored in order ``o``: its per-channel numbers follow."""
    idx = list(o)
    c = len(o)
    for p, v in list(n.params.items()):
        if np.ndim(v) and np.shape(v)[0] == c:
            n.params[p] = np.ascontiguousarray(np.asarray(v)[idx])
    q = n.quant
    if q is not None:
        n.quant = replace(q, **{f: np.asarray(getattr(q, f))[idx]
                                for f in ("w_scale", "mult", "shift")
                                if np.ndim(getattr(q, f)) == 1 and np.shape(getattr(q, f))[0] == c})


def _restore(g: DataflowGraph, n: Node, src: str, o: tuple[int, ...]) -> None:
    """Give ``n`` its input ``src`` (stored in order ``o``) in logical order: a select."""
    shape = tuple(g.node(src).out_shape)
    name = f"{src}_logical"
    if name not in g:
        sel = Node(name=name, op="select", inputs=[src], in_shapes=[shape], out_shape=shape,
                   attrs={"dim": 1, "index": tuple(int(p) for p in np.argsort(np.asarray(o)))})
        q = g.node(src).quant
        sel.quant = None if q is None else q.passed_on()
        g.add(sel)
    g.set_inputs(n.name, [name if i == src else i for i in n.inputs])
