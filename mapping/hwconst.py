"""Widths and formulas of the generated hardware that more than one layer uses.

Pure Python, no dependencies: ``hwgen.compiler`` (instruction fields, range
checks) and ``hwgen.rtl`` (ports, memories, counters) import them from here.
``boards`` imports nothing of ours and restates :func:`bits_for` and
:func:`bank_count`; ``tests/boards/test_constants_agree.py`` checks that copy.
The requantisation widths (``MULT_BITS``, ``SHIFT_BITS``) are part of the
quantisation contract and live in :mod:`mapping.quant`; the latencies are the
timing contract, :mod:`mapping.timing`.
"""

from __future__ import annotations

LAYER_ID_BITS = 8  # a hardware layer's index: instruction field, counter select
MAX_LAYERS = 1 << LAYER_ID_BITS  # hardware layers in one program
CYCLE_COUNTER_BITS = 48  # free-running and start-to-done counters
LAYER_COUNTER_BITS = 32  # per-layer cycle counters


def bits_for(n: int) -> int:
    """Bits of an unsigned address that can hold 0..n-1 (at least 1)."""
    return max(1, (max(n, 1) - 1).bit_length())


def bank_count(*lanes: int) -> int:
    """The smallest power of two >= every lane count given (banks of a memory)."""
    need = max(1, *lanes)
    return 1 << (need - 1).bit_length()
