"""Small Amaranth designs for the synthesis tests (written to Verilog files)."""

from __future__ import annotations

from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class MacArray(wiring.Component):
    """rows x cols registered signed multiply-accumulators; a row's activation is shared."""

    def __init__(self, rows: int, cols: int, a_bits: int = 8, w_bits: int = 8,
                 acc_bits: int = 32):
        self.rows, self.cols = rows, cols
        self.a_bits, self.w_bits, self.acc_bits = a_bits, w_bits, acc_bits
        super().__init__({
            "a": In(signed(a_bits)).array(rows),
            "w": In(signed(w_bits)).array(rows, cols),
            "clear": In(1),
            "acc": Out(signed(acc_bits)).array(rows, cols),
        })

    def elaborate(self, platform):
        m = Module()
        for r in range(self.rows):
            for c in range(self.cols):
                a = Signal(signed(self.a_bits))
                w = Signal(signed(self.w_bits))
                p = Signal(signed(self.a_bits + self.w_bits))
                acc = Signal(signed(self.acc_bits))
                m.d.sync += [a.eq(self.a[r]), w.eq(self.w[r][c]), p.eq(a * w)]
                with m.If(self.clear):
                    m.d.sync += acc.eq(0)
                with m.Else():
                    m.d.sync += acc.eq(acc + p)
                m.d.comb += self.acc[r][c].eq(acc)
        return m


class SimpleRam(wiring.Component):
    """One write port, one synchronous read port over ``depth`` x ``width`` bits."""

    def __init__(self, depth: int, width: int):
        self.depth, self.width = depth, width
        super().__init__({
            "waddr": In(range(depth)), "wdata": In(width), "we": In(1),
            "raddr": In(range(depth)), "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                     r.addr.eq(self.raddr), self.rdata.eq(r.data)]
        return m


def mac_array_verilog(directory: Path, rows: int, cols: int, **widths) -> tuple[Path, str]:
    name = f"mac{rows}x{cols}"
    path = Path(directory) / f"{name}.v"
    if not path.exists():
        path.write_text(verilog.convert(MacArray(rows, cols, **widths), name=name))
    return path, name


def ram_verilog(directory: Path, depth: int, width: int) -> tuple[Path, str]:
    name = f"ram{depth}x{width}"
    path = Path(directory) / f"{name}.v"
    if not path.exists():
        path.write_text(verilog.convert(SimpleRam(depth, width), name=name))
    return path, name
