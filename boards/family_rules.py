"""Family rules of the resource model: how Yosys maps multipliers and memories.

Restates, per FPGA family, the ``mul2dsp`` multiplier splitting and the
``memory_libmap`` cost comparison (block RAM, distributed RAM or logic) that the
synthesis scripts of ``boards.synth`` use, so ``boards.resource_model`` can derive
DSP and block-RAM counts exactly without running Yosys.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


class ResourceModelError(ValueError):
    """Bad model input, unknown family or missing calibration; the message says what is allowed."""


# ---------------------------------------------------------------- family rules
@dataclass(frozen=True)
class FamilyRules:
    """How Yosys maps multipliers and memories for one family.

    ``dsp_*``: the ``mul2dsp`` parameters of the family's synthesis script;
    ``bram_shapes``: (depth, width) configurations of one block RAM;
    ``lutram``: (depth, width, cost) of one distributed-RAM cell, counted as
    ``lutram_luts`` LUTs by ``boards.cells``; costs as in ``memory_libmap``.
    """

    dsp_a_max: int
    dsp_b_max: int
    dsp_a_partial: int
    dsp_min: int
    signed_only: bool
    bram_shapes: tuple[tuple[int, int], ...]
    bram_cost: float
    lutram: tuple[int, int, float]
    lutram_luts: int
    lutram_mux_cost: float
    logic_cost_ram: float = 1.0
    logic_cost_rom: float = 1.0 / 16


# ECP5 (synth_lattice -family ecp5): mul2dsp 18x18, min width 2 (MULT18X18D);
# DP16KD 16384x1 .. 1024x18, PDPW16KD 512x36 (brams_16kd.txt, cost 128);
# TRELLIS_DPR16X4 16x4 (lutrams_trellis.txt, cost 4).
RULES: dict[str, FamilyRules] = {
    "ecp5": FamilyRules(
        dsp_a_max=18, dsp_b_max=18, dsp_a_partial=18, dsp_min=2, signed_only=False,
        bram_shapes=((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
        bram_cost=128.0, lutram=(16, 4, 4.0), lutram_luts=4,
        # not read from Yosys: bracketed by measured choices, 0.381 < k <= 0.457
        # (128x12 1R -> block, 128x10 4R -> distributed; see the tests)
        lutram_mux_cost=0.42,
    ),
}


def rules(family: str) -> FamilyRules:
    try:
        return RULES[family]
    except KeyError:
        raise ResourceModelError(f"no resource model rules for family {family!r}; "
                                 f"calibrated families: {', '.join(RULES)}") from None


# bits_for and bank_count restate mapping.hwconst (boards imports nothing of ours);
# tests/boards/test_constants_agree.py checks them against the originals.
def bits_for(n: int) -> int:
    """Bits of an unsigned value 0..n-1, at least 1 (``mapping.hwconst.bits_for``)."""
    return max(1, (max(n, 1) - 1).bit_length())


def bank_count(*lanes: int) -> int:
    """Smallest power of two >= every lane count (``mapping.hwconst.bank_count``)."""
    need = max(1, *lanes)
    return 1 << (need - 1).bit_length()


def dsp_blocks(a_bits: int, b_bits: int, family: str = "ecp5") -> int:
    """DSP blocks of one ``a_bits x b_bits`` signed multiplier (Yosys ``mul2dsp``).

    Operands are swapped so A is the wider; A is cut into ``a_partial``-bit
    chunks, B into ``b_max``-bit chunks; a chunk narrower than ``dsp_min`` stays
    in logic. Zero when an operand is narrower than ``dsp_min``.
    """
    r = rules(family)
    a, b = max(a_bits, b_bits), min(a_bits, b_bits)
    if b < r.dsp_min:
        return 0
    head = 1 if r.signed_only else 0

    def chunks(width: int, first: int, partial: int) -> int:
        if width <= first:
            return 1 if width >= r.dsp_min else 0
        n = (width - first + partial - head - 1) // (partial - head)
        last = width - n * (partial - head)
        return n + (1 if last >= r.dsp_min else 0)

    return chunks(a, r.dsp_a_max, r.dsp_a_partial) * chunks(b, r.dsp_b_max, r.dsp_b_max)


# ---------------------------------------------------------------- memories
@dataclass(frozen=True)
class Memory:
    """One memory as hwgen generates it: ``banks`` identical banks, each built as
    ``copies`` identical arrays (one per read port, as Yosys duplicates them)."""

    name: str
    depth: int
    width: int
    copies: int
    rom: bool
    banks: int = 1

    @property
    def arrays(self) -> int:
        return self.banks * self.copies


def block_count(depth: int, width: int, family: str = "ecp5") -> int:
    """Fewest block RAMs holding ``depth x width`` in one of the family's shapes."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in rules(family).bram_shapes)


@functools.lru_cache(maxsize=65536)
def map_memory(mem: Memory, family: str = "ecp5") -> tuple[str, int]:
    """(``"block"`` | ``"dist"`` | ``"logic"``, count per copy): the cheapest mapping.

    Costs as ``memory_libmap``: block RAM ``bram_cost`` per block, distributed
    RAM ``cost`` per cell plus ``lutram_mux_cost`` per 2:1 read-multiplexer bit
    over cells stacked in depth (not for ROMs), logic ``logic_cost_*`` per bit;
    a memory with several read ports is one copy per port either way; a RAM
    tie goes to block RAM, a ROM tie to logic (both measured). The count is
    blocks, cells or bits.
    """
    r = rules(family)
    blocks = block_count(mem.depth, mem.width, family)
    bits = mem.depth * mem.width
    if mem.rom:  # measured: a 2048-bit ROM (cost 128 = one block) stays in logic
        return ("logic", bits) if r.logic_cost_rom * bits <= r.bram_cost * blocks \
            else ("block", blocks)
    d, w, cost = r.lutram
    rows = math.ceil(mem.depth / d)
    cells = rows * math.ceil(mem.width / w)
    dist_cost = cost * cells + r.lutram_mux_cost * (rows - 1) * mem.width  # + depth read mux
    options = [(r.bram_cost * blocks, 0, "block", blocks), (dist_cost, 1, "dist", cells),
               (r.logic_cost_ram * bits, 2, "logic", bits)]
    _, _, kind, n = min(options)
    return kind, n
