"""Per-access energy table (pJ) of the cost model, from published 45 nm figures.

Source: M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, 45 nm, 0.9 V:

- integer add: 8 bit 0.03 pJ, 32 bit 0.1 pJ;
- integer multiply: 8 bit 0.2 pJ, 32 bit 3.1 pJ;
- SRAM read of 64 bits: 8 KB array 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ;
- DRAM: 1.3-2.6 nJ per 64-bit access.

Scaling rules (documented in docs/mapper.md, all estimates):

- adder energy is linear in width: interpolate/extrapolate linearly through
  (8 bit, 0.03 pJ) and (32 bit, 0.1 pJ);
- multiplier energy is quadratic in width (an array multiplier has a*b
  partial-product cells): ``0.2 pJ * (a*b)/64`` (gives 3.2 pJ at 32x32, the
  published 3.1 pJ within 3%);
- SRAM energy per 64-bit access: piecewise linear in log(size)-log(energy)
  through the three published points, extrapolated with the nearest segment's
  slope; an access of ``b`` bits costs ``b/64`` of a 64-bit access; a write
  costs the same as a read (Horowitz gives reads only);
- DRAM: the midpoint 1.95 nJ per 64 bits, scaled linearly by the word width;
- the baked weight ROM is priced as an SRAM holding the layer's packed
  weights (a ROM read costs no more than an SRAM read of the same size).

One MAC = one ``in_bits x w_bits`` multiply + one ``acc_bits`` add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest

ADD_PJ = ((8, 0.03), (32, 0.1))  # (bits, pJ)
MULT_8BIT_PJ = 0.2
SRAM_64BIT_PJ = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))  # (bytes, pJ)
DRAM_64BIT_PJ = (1300.0 + 2600.0) / 2

# access keys in summation order (the order is part of the float result: keep it fixed)
ACCESS_KEYS = (
    "store.w.read",
    "wbuf.w.write",
    "wbuf.w.read",
    "act.in.read",
    "act.out.write",
    "acc.psum.read",
    "acc.psum.write",
    "acc.out.read",
)


def add_pj(bits: int) -> float:
    """Energy of one ``bits``-wide integer add."""
    (b0, e0), (b1, e1) = ADD_PJ
    return e0 + (e1 - e0) * (bits - b0) / (b1 - b0)


def mult_pj(a_bits: int, b_bits: int) -> float:
    """Energy of one ``a_bits x b_bits`` integer multiply."""
    return MULT_8BIT_PJ * (a_bits * b_bits) / 64.0


def sram_64bit_pj(size_bytes: float) -> float:
    """Energy of one 64-bit access to an SRAM array of ``size_bytes``."""
    if size_bytes <= 0:
        raise ValueError(f"SRAM size must be positive, got {size_bytes}")
    pts = [(math.log(s), math.log(e)) for s, e in SRAM_64BIT_PJ]
    x = math.log(size_bytes)
    seg = 0 if x < pts[1][0] else 1
    (x0, y0), (x1, y1) = pts[seg], pts[seg + 1]
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def sram_access_pj(words: int, word_bits: int, access_bits: int) -> float:
    """One ``access_bits``-wide access to an SRAM of ``words`` x ``word_bits``."""
    return sram_64bit_pj(words * word_bits / 8) * access_bits / 64.0


@dataclass(frozen=True)
class EnergyTable:
    """pJ per access for each key of :data:`ACCESS_KEYS`, plus ``mac`` pJ per MAC."""

    per_access: dict[str, float]
    mac: float

    def energy(self, counts: dict, macs) -> float:
        """Total pJ; works on scalars and on numpy arrays of counts (same float result)."""
        e = macs * self.mac
        for key in ACCESS_KEYS:
            e = e + counts[key] * self.per_access[key]
        return e


def energy_table(nest: LoopNest, arch: ArchSpec) -> EnergyTable:
    """The per-access energies of one layer on ``arch`` (see the module docstring)."""
    wpw = arch.weights_per_ext_word
    if arch.weight_store == "external":
        store = DRAM_64BIT_PJ * arch.ext_word_bits / 64.0
    else:
        rom_words = max(1, math.ceil(nest.weight_count / wpw))
        store = sram_access_pj(rom_words, arch.ext_word_bits, arch.ext_word_bits)
    wbuf = sram_access_pj(arch.w_words, arch.w_bits, nest.w_bits)
    act_r = sram_access_pj(arch.act_words, arch.in_bits, nest.in_bits)
    act_w = sram_access_pj(arch.act_words, arch.in_bits, nest.out_bits)
    acc = sram_access_pj(arch.acc_words, arch.acc_bits, arch.acc_bits)
    per = {
        "store.w.read": store,
        "wbuf.w.write": wbuf,
        "wbuf.w.read": wbuf,
        "act.in.read": act_r,
        "act.out.write": act_w,
        "acc.psum.read": acc,
        "acc.psum.write": acc,
        "acc.out.read": acc,
    }
    return EnergyTable(per_access=per, mac=mult_pj(nest.in_bits, nest.w_bits) + add_pj(arch.acc_bits))
