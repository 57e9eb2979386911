"""An I/O wrapper that lets a many-port design be placed on a package with few pins.

For Fmax estimation the design's own ports do not matter, but nextpnr must
give every top-level port a pin. ``make_wrapper`` writes a Verilog top
``hwgen_pnr_wrap`` with only the clock(s) and three pins: every non-clock input
is driven by a serial-in shift register and every output is captured by a
parallel-load shift register that shifts out serially. All design paths stay
register-to-register, nothing can be optimised away (every output bit reaches
the pin ``hwgen_so``), and the wrapper adds one flip-flop per port bit.
"""

from __future__ import annotations

import re

from boards.report import Port

WRAPPER_TOP = "hwgen_pnr_wrap"
_CLOCK_RE = re.compile(r"^(clk|clock)$|(_|^)clk$", re.IGNORECASE)
_SIMPLE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def vid(name: str) -> str:
    """``name`` as a Verilog identifier (escaped when it is not a simple one)."""
    return name if _SIMPLE_ID.match(name) else f"\\{name} "


def default_clocks(ports: tuple[Port, ...] | list[Port]) -> list[str]:
    """1-bit inputs named ``clk``, ``clock`` or ``*_clk``."""
    return [p.name for p in ports
            if p.direction == "input" and p.width == 1 and _CLOCK_RE.search(p.name)]


def make_wrapper(top: str, ports: tuple[Port, ...] | list[Port],
                 clocks: list[str] | None = None) -> str:
    """Verilog text of ``hwgen_pnr_wrap`` instantiating ``top`` (see module docstring)."""
    clocks = default_clocks(ports) if clocks is None else list(clocks)
    names = {p.name for p in ports}
    missing = [c for c in clocks if c not in names]
    if missing:
        raise ValueError(f"clock port(s) {', '.join(missing)} not among the ports of {top}: "
                         f"{', '.join(sorted(names))}")
    if not clocks:
        raise ValueError(f"{top} has no clock input (looked for clk, clock or *_clk); "
                         "pass clocks=[...] naming the clock port(s)")
    inout = [p.name for p in ports if p.direction == "inout"]
    if inout:
        raise ValueError(f"{top} has inout port(s) {', '.join(inout)}: the I/O wrapper "
                         "supports inputs and outputs only")
    ins = [p for p in ports if p.direction == "input" and p.name not in clocks]
    outs = [p for p in ports if p.direction == "output"]
    if not outs:
        raise ValueError(f"{top} has no outputs: synthesis would remove all its logic")
    clk = vid(clocks[0])
    iw = sum(p.width for p in ins)
    ow = sum(p.width for p in outs)

    header = [f"input wire {vid(c)}" for c in clocks]
    header += ["input wire hwgen_si", "input wire hwgen_load", "output wire hwgen_so"]
    lines = [f"module {WRAPPER_TOP}(" + ", ".join(header) + ");"]
    conns = [f".{vid(c)}({vid(c)})" for c in clocks]
    if iw:
        lines.append(f"  reg [{iw - 1}:0] hwgen_isr = {iw}'d0;")
        shift = "hwgen_si" if iw == 1 else f"{{hwgen_isr[{iw - 2}:0], hwgen_si}}"
        lines.append(f"  always @(posedge {clk}) hwgen_isr <= {shift};")
        lo = 0
        for p in ins:
            conns.append(f".{vid(p.name)}(hwgen_isr[{lo + p.width - 1}:{lo}])")
            lo += p.width
    lines.append(f"  wire [{ow - 1}:0] hwgen_o;")
    lines.append(f"  reg [{ow - 1}:0] hwgen_osr = {ow}'d0;")
    shifted = "1'b0" if ow == 1 else f"{{hwgen_osr[{ow - 2}:0], 1'b0}}"
    lines.append(f"  always @(posedge {clk}) hwgen_osr <= hwgen_load ? hwgen_o : {shifted};")
    lines.append(f"  assign hwgen_so = hwgen_osr[{ow - 1}];")
    lo = 0
    for p in outs:
        conns.append(f".{vid(p.name)}(hwgen_o[{lo + p.width - 1}:{lo}])")
        lo += p.width
    lines.append(f"  {vid(top)} hwgen_dut(" + ", ".join(conns) + ");")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
