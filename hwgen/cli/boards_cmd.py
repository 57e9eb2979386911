"""``hwgen boards``: the FPGA boards and devices hwgen knows, with their budgets."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "boards", help="list FPGA boards and devices with their resource budgets",
        description="List the FPGA boards and devices in the catalogue (budgets from the "
        "vendors' data sheets).")
    p.add_argument("--devices", action="store_true", help="list devices instead of boards")
    p.set_defaults(func=run)


def table(rows: list[list[str]]) -> str:
    """Left-aligned text columns (first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _device_cells(d) -> list[str]:
    bram = f"{d.bram_blocks} x {d.bram_bits // 1024}K"
    spram = f"{d.spram_blocks} x {d.spram_bits // 1024}K" if d.spram_blocks else "-"
    return [d.family, f"{d.luts} LUT{d.lut_inputs}", str(d.ffs), str(d.dsps), bram, spram,
            d.package + (f"-{d.speed}" if d.speed else ""),
            "yes" if d.supports_pnr else "no (synth only)"]


def run(args) -> int:
    from boards.catalogue import BOARDS, DEVICES

    head = ["family", "LUTs", "FFs", "DSPs", "BRAM (blocks x bits)", "SPRAM", "package",
            "nextpnr"]
    if args.devices:
        rows = [["device", *head]]
        rows += [[d.name, *_device_cells(d)] for d in DEVICES.values()]
    else:
        rows = [["board", "device", "clock", *head]]
        rows += [[b.name, b.device.name, f"{b.clock_mhz:g} MHz", *_device_cells(b.device)]
                 for b in BOARDS.values()]
    print(table(rows))
    return 0
