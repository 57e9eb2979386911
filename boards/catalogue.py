"""FPGA device and board catalogue: resource budgets and the names the tools need.

Budgets are taken from the vendors' data sheets:

- Lattice ECP5 and ECP5-5G Family Data Sheet, FPGA-DS-02012, Table 1.1 "ECP5 and
  ECP5-5G Family Selection Guide" (LUTs, EBR SRAM blocks of 18 Kbit, 18 x 18
  multipliers) and the package pin-out tables (user I/O per package).
- Lattice iCE40 UltraPlus Family Data Sheet, FPGA-DS-02008, Table 1.1 "iCE40
  UltraPlus Family Selection Guide" (LUTs, 4 Kbit EBR, 1 Mbit SPRAM as four
  256 Kbit blocks, eight 16 x 16 MAC blocks, I/O per package).
- Lattice iCE40 LP/HX Family Data Sheet, DS1040, Table 1.1 "iCE40 LP/HX Family
  Selection Guide" (LUTs, 4 Kbit RAM blocks, I/O per package; no DSP blocks).
- Xilinx 7 Series FPGAs Data Sheet: Overview, DS180, Table 4 "Artix-7 FPGA
  Feature Summary by Device" (slices x 4 LUT6 and 8 flip-flops, DSP48E1 slices,
  36 Kbit block RAMs).

On the Lattice parts every logic cell holds one LUT4 and one flip-flop, so the
flip-flop budget equals the LUT budget; a 7-series slice holds 4 LUT6 and 8
flip-flops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

FAMILIES = ("ecp5", "ice40", "xc7")


class UnknownBoardError(KeyError):
    """No board or device of that name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class Device:
    """One FPGA part and its resource budget.

    ``luts`` counts LUT4s on Lattice parts and LUT6s on Xilinx parts;
    ``dsps`` counts the family's multiplier block (ECP5 MULT18X18D, iCE40
    SB_MAC16, Xilinx DSP48E1); ``bram_blocks`` counts block RAMs of
    ``bram_bits`` bits each (ECP5 DP16KD 18 Kbit, iCE40 SB_RAM40_4K 4 Kbit,
    Xilinx RAMB36E1 36 Kbit); ``spram_blocks`` counts UltraPlus SB_SPRAM256KA
    blocks of ``spram_bits``. ``nextpnr_device``/``package``/``speed`` are the
    nextpnr arguments (``None`` for families without an open place-and-route).
    """

    name: str
    family: str
    luts: int
    ffs: int
    dsps: int
    bram_blocks: int
    bram_bits: int
    user_io: int
    package: str
    speed: str
    spram_blocks: int = 0
    spram_bits: int = 0
    nextpnr_device: str | None = None
    lut_inputs: int = 4
    datasheet: str = ""

    @property
    def bram_total_bits(self) -> int:
        return self.bram_blocks * self.bram_bits

    @property
    def supports_pnr(self) -> bool:
        return self.nextpnr_device is not None

    def budget(self) -> dict[str, int]:
        """Resource name -> available count (the keys used by ``fit``)."""
        out = {"lut": self.luts, "ff": self.ffs, "dsp": self.dsps, "bram": self.bram_blocks}
        if self.spram_blocks:
            out["spram"] = self.spram_blocks
        return out


@dataclass(frozen=True)
class Board:
    """A development board: a name, its FPGA and its main clock."""

    name: str
    device: Device
    clock_mhz: float
    description: str

    @property
    def family(self) -> str:
        return self.device.family


_ECP5 = "Lattice FPGA-DS-02012 (ECP5/ECP5-5G family data sheet), Table 1.1"
_UP = "Lattice FPGA-DS-02008 (iCE40 UltraPlus family data sheet), Table 1.1"
_HX = "Lattice DS1040 (iCE40 LP/HX family data sheet), Table 1.1"
_XC7 = "Xilinx DS180 (7 series overview), Table 4 (Artix-7)"

DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        # ECP5: LUTs 24K/44K/84K, EBR 56/108/208 x 18 Kbit, 28/72/156 MULT18X18D;
        # user I/O of the CABGA381 package (CSFBGA285 on the OrangeCrab: 118).
        Device("LFE5U-25F", "ecp5", luts=24_288, ffs=24_288, dsps=28, bram_blocks=56,
               bram_bits=18_432, user_io=197, package="CABGA381", speed="6",
               nextpnr_device="25k", datasheet=_ECP5),
        Device("LFE5U-45F", "ecp5", luts=43_848, ffs=43_848, dsps=72, bram_blocks=108,
               bram_bits=18_432, user_io=203, package="CABGA381", speed="6",
               nextpnr_device="45k", datasheet=_ECP5),
        Device("LFE5U-85F", "ecp5", luts=83_640, ffs=83_640, dsps=156, bram_blocks=208,
               bram_bits=18_432, user_io=205, package="CABGA381", speed="6",
               nextpnr_device="85k", datasheet=_ECP5),
        # iCE40 UP5K: 5280 LUTs, 30 x 4 Kbit EBR, 4 x 256 Kbit SPRAM, 8 SB_MAC16.
        Device("iCE40UP5K", "ice40", luts=5_280, ffs=5_280, dsps=8, bram_blocks=30,
               bram_bits=4_096, user_io=39, package="sg48", speed="",
               spram_blocks=4, spram_bits=262_144, nextpnr_device="up5k", datasheet=_UP),
        # iCE40 HX8K: 7680 LUTs, 32 x 4 Kbit RAM, no DSP.
        Device("iCE40HX8K", "ice40", luts=7_680, ffs=7_680, dsps=0, bram_blocks=32,
               bram_bits=4_096, user_io=206, package="ct256", speed="",
               nextpnr_device="hx8k", datasheet=_HX),
        # Artix-7: 5200/15850 slices x 4 LUT6 / 8 FF, 90/240 DSP48E1, 50/135 RAMB36.
        Device("XC7A35T", "xc7", luts=20_800, ffs=41_600, dsps=90, bram_blocks=50,
               bram_bits=36_864, user_io=250, package="csg324", speed="1",
               lut_inputs=6, datasheet=_XC7),
        Device("XC7A100T", "xc7", luts=63_400, ffs=126_800, dsps=240, bram_blocks=135,
               bram_bits=36_864, user_io=300, package="csg324", speed="1",
               lut_inputs=6, datasheet=_XC7),
    )
}

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("ulx3s-85f", DEVICES["LFE5U-85F"], 25.0,
              "Radiona ULX3S, LFE5U-85F-6BG381C"),
        Board("orangecrab-25f", replace(DEVICES["LFE5U-25F"], package="CSFBGA285", speed="8",
                                       user_io=118), 48.0,
              "Good Stuff Department OrangeCrab r0.2, LFE5U-25F-8MG285C"),
        Board("icebreaker", DEVICES["iCE40UP5K"], 12.0,
              "1BitSquared iCEBreaker, iCE40UP5K-SG48"),
        Board("hx8k-breakout", DEVICES["iCE40HX8K"], 12.0,
              "Lattice iCE40-HX8K Breakout Board, iCE40HX8K-CT256"),
        Board("arty-a7-35", DEVICES["XC7A35T"], 100.0,
              "Digilent Arty A7-35T, XC7A35TICSG324-1L (synthesis only)"),
        Board("arty-a7-100", DEVICES["XC7A100T"], 100.0,
              "Digilent Arty A7-100T, XC7A100TCSG324-1 (synthesis only)"),
    )
}


def names() -> list[str]:
    """All board names, then all device names."""
    return [*BOARDS, *DEVICES]


def get(name: str | Board | Device) -> Board | Device:
    """A board or a device by name (case-insensitive); passes ``Board``/``Device`` through."""
    if isinstance(name, (Board, Device)):
        return name
    if not isinstance(name, str):
        raise TypeError(f"board/device name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    for table in (BOARDS, DEVICES):
        for k, v in table.items():
            if k.lower() == key:
                return v
    raise UnknownBoardError(
        f"unknown board or device {name!r}; boards: {', '.join(BOARDS)}; "
        f"devices: {', '.join(DEVICES)}"
    )


def device_of(name: str | Board | Device) -> Device:
    """The ``Device`` behind a board or device name."""
    item = get(name)
    return item.device if isinstance(item, Board) else item


def family_of(name: str | Board | Device) -> str:
    """A family name (``ecp5``, ``ice40``, ``xc7``) given itself, a board or a device."""
    if isinstance(name, str) and name.strip().lower() in FAMILIES:
        return name.strip().lower()
    try:
        return device_of(name).family
    except UnknownBoardError:
        raise UnknownBoardError(
            f"unknown family, board or device {name!r}; families: {', '.join(FAMILIES)}; "
            f"boards: {', '.join(BOARDS)}; devices: {', '.join(DEVICES)}"
        ) from None
