"""LOOP bodies: when a run of instruction lists is one list with only the LOOP's fields
advanced by constant steps (``hwgen.compiler.isa``'s ``Op.LOOP``; docs/timing.md "Loops").

Instructions are ``(kind, field values)`` pairs (``"xfer"``, ``"step"``, ``"layer"``, ``"elt"``)
or encoded ints (which must be equal). :func:`loop_deltas` finds the deltas between two
iterations, :func:`shifted` writes out iteration ``k``; ``hwgen.compiler.spill`` uses them to
turn alike row bands, and alike blocks of a band's tiles, into LOOPs.
"""

from __future__ import annotations

from hwgen.compiler.isa import OP_BITS, Op

# the fields a LOOP advances each iteration: (kind, field) -> which delta
_LOOPED = {("xfer", "ext"): "ext", ("step", "p0"): "row", ("step", "hp0"): "hp",
           ("elt", "hp0"): "hp", ("step", "dma_src"): "wsrc", ("step", "out_base"): "out",
           ("step", "par_base"): "par"}
LOOP_DELTAS = ("a", "b", "row", "hp", "wsrc", "out", "par")


def loop_deltas(a: list, b: list) -> dict | None:
    """The LOOP deltas (``d_a`` .. ``d_par`` by name, ``dsel`` per XFER position) if ``b`` is
    ``a`` with only the LOOP's fields advanced by constant non-negative steps (at most two
    distinct XFER steps), else None."""
    if len(a) != len(b):
        return None
    ext: dict[int, int] = {}
    seen: dict[str, set] = {"row": set(), "hp": set(), "wsrc": set(), "out": set(),
                            "par": set()}
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if isinstance(x, int) or isinstance(y, int):
            if x != y:
                return None
            continue
        if x[0] != y[0] or x[1].keys() != y[1].keys():
            return None
        for name, v in x[1].items():
            what = _LOOPED.get((x[0], name))
            if not isinstance(v, int) or what is None:
                if y[1][name] != v:
                    return None
                continue
            d = y[1][name] - v
            if d < 0:
                return None
            if what == "ext":
                ext[k] = d
            else:
                seen[what].add(d)
    steps = sorted({d for d in ext.values() if d})
    if len(steps) > 2 or any(len(v) > 1 for v in seen.values()):
        return None
    if any(seen["hp"] - {0}) and any(isinstance(x, int) and x & ((1 << OP_BITS) - 1)
                                     == Op.ELT.value for x in a):
        return None  # the LOOP would advance the hp0 of an encoded ELT word too
    steps += [0] * (2 - len(steps))
    out = {"a": steps[0], "b": steps[1], **{k: next(iter(v), 0) for k, v in seen.items()}}
    out["dsel"] = {k: (steps.index(d) + 1 if d else 0) for k, d in ext.items()}
    return out


def shifted(band: list, deltas: dict, k: int) -> list:
    """``band`` as iteration ``k`` of a LOOP with ``deltas`` runs it."""
    out = []
    for n, item in enumerate(band):
        if isinstance(item, int):
            out.append(item)
            continue
        kind, f = item
        f = dict(f)
        for (kd, name), what in _LOOPED.items():
            if kd != kind or name not in f:  # (a burst-only STEP has no tile fields)
                continue
            if what == "ext":
                f[name] += k * (0, deltas["a"], deltas["b"])[deltas["dsel"].get(n, 0)]
            else:
                f[name] += k * deltas[what]
        out.append((kind, f))
    return out
