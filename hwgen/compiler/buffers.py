"""Activation-scratchpad allocation of a program's tensors by live range.

A buffer is live from its producing layer (``first``; -1 for the streamed-in
input) to its last reader (``last``; the program output lives to the end).
Layers are visited in order; before layer ``i`` the buffers whose last reader
came before ``i`` are freed, then the buffers produced by ``i`` are placed
first-fit (lowest address) beside every buffer still live, so a layer's output
never overlaps its inputs or a residual operand waiting for its add.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwgen.compiler.layers import ProgramError


@dataclass
class Buffer:
    """One tensor's storage: ``size`` elements live over layers ``first..last``."""

    name: str
    size: int
    first: int
    last: int
    base: int = -1


def _first_fit(size: int, taken: list[tuple[int, int]]) -> int:
    """Lowest address where ``size`` elements avoid every ``(base, end)`` in ``taken``."""
    at = 0
    for b, e in sorted(taken):
        if at + size <= b:
            return at
        at = max(at, e)
    return at


def allocate(buffers: list[Buffer], layer_names: list[str], act_words: int) -> None:
    """Set ``base`` of every buffer; ProgramError (naming the layer, the tensor, the
    live tensors and the words needed) if the scratchpad is too small."""
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].first, i))
    live: list[Buffer] = []
    for i in order:
        buf = buffers[i]
        live = [b for b in live if b.last >= buf.first]
        taken = [(b.base, b.base + b.size) for b in live]
        base = _first_fit(buf.size, taken)
        if base + buf.size > act_words:
            where = (f"layer {layer_names[buf.first]}" if buf.first >= 0
                     else "the streamed-in input")
            others = ", ".join(f"'{b.name}' ({b.size} at {b.base}..{b.base + b.size - 1})"
                               for b in live) or "none"
            raise ProgramError(
                f"{where}: tensor '{buf.name}' ({buf.size} elements) and the live tensors "
                f"[{others}] exceed act_words={act_words}: this layer needs "
                f"{base + buf.size} words ({buf.size + sum(b.size for b in live)} live "
                "elements); raise act_words or use a smaller model")
        buf.base = base
        live.append(buf)
