"""Turning a family's primitive cell counts (Yosys ``stat``) into resource counts.

Resource keys: ``lut`` (LUT4 on Lattice, LUT6 on Xilinx, including LUTs used
as carry logic or distributed RAM), ``ff``, ``carry`` (carry cells: ECP5
CCU2C covers 2 bits, iCE40 SB_CARRY 1 bit, Xilinx CARRY4 4 bits), ``dsp``,
``bram`` (block RAMs in the family's native size: ECP5 DP16KD 18 Kbit, iCE40
SB_RAM40_4K 4 Kbit, Xilinx RAMB36E1 36 Kbit, a RAMB18E1 counting as half),
``spram`` (iCE40 UltraPlus SB_SPRAM256KA) and ``io`` (I/O buffers).
"""

from __future__ import annotations

import re

RESOURCES = ("lut", "ff", "carry", "dsp", "bram", "spram", "io")

# ECP5: a CCU2C occupies both LUT4s of a slice; a TRELLIS_DPR16X4 (16x4 distributed
# RAM) occupies two slices (4 LUT4s) plus the write-control slice (FPGA-DS-02012 2.2).
_ECP5_LUT_WEIGHT = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 4}
_ECP5_FF = {"TRELLIS_FF"}
_ECP5_DSP = {"MULT18X18D"}
_ECP5_BRAM = {"DP16KD": 1.0, "PDPW16KD": 1.0}
_ECP5_IO = {"TRELLIS_IO", "BB", "IB", "OB"}

_ICE40_LUT_WEIGHT = {"SB_LUT4": 1}
_ICE40_DSP = {"SB_MAC16"}
_ICE40_BRAM_RE = re.compile(r"^SB_RAM40_4K")
_ICE40_IO = {"SB_IO", "SB_GB_IO"}

# Xilinx 7 series LUT-based primitives and how many LUT6 sites each uses (UG474, UG953).
_XC7_LUT_WEIGHT = {
    "LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1, "LUT6_2": 1,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM32M": 4, "RAM64M": 4,
}
_XC7_FF = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
_XC7_DSP = {"DSP48E1"}
_XC7_BRAM = {"RAMB36E1": 1.0, "RAMB18E1": 0.5}
_XC7_IO = {"IBUF", "OBUF", "IOBUF", "OBUFT", "IBUFDS", "OBUFDS"}


def _weighted(cells: dict[str, int], weights: dict[str, float]) -> float:
    return sum(n * weights[c] for c, n in cells.items() if c in weights)


def _count(cells: dict[str, int], names: set[str]) -> int:
    return sum(n for c, n in cells.items() if c in names)


def summarise(family: str, cells: dict[str, int]) -> dict[str, float]:
    """Resource counts for ``family`` from a cell-type -> count mapping."""
    if family == "ecp5":
        return {
            "lut": _weighted(cells, _ECP5_LUT_WEIGHT),
            "ff": _count(cells, _ECP5_FF),
            "carry": cells.get("CCU2C", 0),
            "dsp": _count(cells, _ECP5_DSP),
            "bram": _weighted(cells, _ECP5_BRAM),
            "spram": 0,
            "io": _count(cells, _ECP5_IO),
        }
    if family == "ice40":
        return {
            "lut": _weighted(cells, _ICE40_LUT_WEIGHT),
            "ff": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
            "carry": cells.get("SB_CARRY", 0),
            "dsp": _count(cells, _ICE40_DSP),
            "bram": sum(n for c, n in cells.items() if _ICE40_BRAM_RE.match(c)),
            "spram": cells.get("SB_SPRAM256KA", 0),
            "io": _count(cells, _ICE40_IO),
        }
    if family == "xc7":
        return {
            "lut": _weighted(cells, _XC7_LUT_WEIGHT),
            "ff": _count(cells, _XC7_FF),
            "carry": cells.get("CARRY4", 0),
            "dsp": _count(cells, _XC7_DSP),
            "bram": _weighted(cells, _XC7_BRAM),
            "spram": 0,
            "io": _count(cells, _XC7_IO),
        }
    raise ValueError(f"unknown FPGA family {family!r}; families: ecp5, ice40, xc7")
