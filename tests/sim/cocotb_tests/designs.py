"""Small Amaranth designs that exercise the co-simulation machinery.

- :class:`StreamAccumulator`: signed input stream -> running sum stream
  (wrapping at ``out_width`` bits), plus a free-running ``cycles`` counter.
- :class:`DmaReader`: on ``start`` requests ``words`` words at ``addr`` over
  an external-memory request/response port, sums them, and counts the cycles
  from ``start`` to the last word in ``cycles``.
- :class:`LintSample`: code that makes Verilator warn (lint-suppression test).
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

ADDR_BITS = 16
WORDS_BITS = 16
DATA_BITS = 32
REQ_LAYOUT = data.StructLayout({"addr": unsigned(ADDR_BITS), "words": unsigned(WORDS_BITS)})


class StreamAccumulator(wiring.Component):
    """``o`` carries the running sum of every ``i`` value so far (one output per input).

    Throughput one value per cycle: ``i.ready = ~o.valid | o.ready``.
    ``cycles`` counts clock edges since reset was released.
    """

    def __init__(self, in_width: int = 8, out_width: int = 24):
        self.out_width = out_width
        super().__init__({
            "i": In(stream.Signature(signed(in_width))),
            "o": Out(stream.Signature(signed(out_width))),
            "cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(self.out_width))
        m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            new = (total + self.i.payload)[:self.out_width]
            m.d.sync += [total.eq(new), self.o.payload.eq(new), self.o.valid.eq(1)]
        return m


class DmaReader(wiring.Component):
    """Read a burst from external memory and sum it.

    ``start`` seen at edge s -> request valid from the next cycle; the
    response is always accepted; the last word at edge E clears ``busy`` and
    pulses ``done`` and leaves ``cycles = E - s``.
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "addr": In(ADDR_BITS), "words": In(WORDS_BITS),
            "busy": Out(1), "done": Out(1), "sum": Out(DATA_BITS), "cycles": Out(32),
            "req": Out(stream.Signature(REQ_LAYOUT)),
            "rsp": In(stream.Signature(unsigned(DATA_BITS))),
        })

    def elaborate(self, platform):
        m = Module()
        remaining = Signal(WORDS_BITS)
        m.d.sync += self.done.eq(0)
        m.d.comb += self.rsp.ready.eq(self.busy & ~self.req.valid)
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(~self.busy & self.start):
            m.d.sync += [self.busy.eq(1), self.req.valid.eq(1), self.cycles.eq(0),
                         self.sum.eq(0), remaining.eq(self.words),
                         self.req.payload.addr.eq(self.addr),
                         self.req.payload.words.eq(self.words)]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += self.req.valid.eq(0)
        with m.If(self.rsp.valid & self.rsp.ready):
            m.d.sync += [self.sum.eq(self.sum + self.rsp.payload), remaining.eq(remaining - 1)]
            with m.If(remaining == 1):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m


class LintSample(wiring.Component):
    """Mixed signed/unsigned arithmetic and comparisons: Verilator lint warnings by construction."""

    def __init__(self):
        super().__init__({"a": In(signed(8)), "b": In(8), "y": Out(signed(16)), "z": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.a * self.b.as_signed())
        m.d.comb += self.z.eq((self.b >= 0) | (self.a < self.b.as_signed()))
        return m


def to_verilog(component: wiring.Component, name: str) -> str:
    """Verilog text of ``component`` with toplevel module ``name``."""
    return verilog.convert(component, name=name)
