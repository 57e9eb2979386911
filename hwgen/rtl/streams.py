"""The input and output streams of a run, between the top-level ports and the
activation scratchpad (docs/timing.md, "Whole model": one element per cycle).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.interfaces import act_read_signature, act_write_signature, phase_signature
from mapping.arch import ArchSpec


class InputStream(wiring.Component):
    """Writes ``count`` elements of ``inp`` to the scratchpad from ``base``, one per
    cycle while ``phase.active`` (``inp.ready`` until all are in, then ``phase.done``);
    ``phase.rewind`` starts over."""

    def __init__(self, arch: ArchSpec, base: int, count: int):
        self.base, self.count = base, count
        super().__init__({
            "phase": In(phase_signature()),
            "inp": In(stream.Signature(signed(arch.in_bits))),
            "act_wr": Out(act_write_signature(arch, 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(self.count + 1))
        inp = self.inp
        with m.If(self.phase.rewind):
            m.d.sync += cnt.eq(0)
        m.d.comb += [inp.ready.eq(self.phase.active & (cnt < self.count)),
                     self.phase.done.eq(cnt == self.count)]
        with m.If(self.phase.active):
            m.d.comb += [self.act_wr.addr.eq(self.base + cnt), self.act_wr.data[0].eq(inp.payload),
                         self.act_wr.mask.eq(inp.valid & inp.ready)]
            with m.If(inp.valid & inp.ready):
                m.d.sync += cnt.eq(cnt + 1)
        return m


class OutputStream(wiring.Component):
    """Streams ``count`` elements from the scratchpad at ``base`` out on ``out`` while
    ``phase.active`` (one scratchpad read per accepted element, ``out.valid`` the
    cycle after); ``phase.done`` in the cycle the last one is taken;
    ``phase.rewind`` starts over."""

    def __init__(self, arch: ArchSpec, base: int, count: int):
        self.base, self.count = base, count
        super().__init__({
            "phase": In(phase_signature()),
            "out": Out(stream.Signature(signed(arch.in_bits))),
            "act_rd": Out(act_read_signature(arch, 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(self.count + 1))
        ov = Signal()  # out.valid: an element was read and is not yet taken
        advance = ~ov | self.out.ready
        with m.If(self.phase.rewind):
            m.d.sync += [cnt.eq(0), ov.eq(0)]
        m.d.comb += [self.out.valid.eq(ov), self.out.payload.eq(self.act_rd.data[0]),
                     self.phase.done.eq((cnt == self.count) & advance)]
        with m.If(self.phase.active):
            m.d.comb += [self.act_rd.en.eq(advance), self.act_rd.addr[0].eq(self.base + cnt)]
            with m.If(advance):
                m.d.sync += ov.eq(cnt < self.count)
                with m.If(cnt < self.count):
                    m.d.sync += cnt.eq(cnt + 1)
        return m
