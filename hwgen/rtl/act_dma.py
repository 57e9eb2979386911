"""Activation DMA: moves activations between the scratchpad and external memory (XFER).

One XFER (``hwgen.compiler.isa.xfer_layout``) is ``runs`` bursts of ``words`` external
words, run ``r`` from word address ``ext + r*wstride``; its word ``i`` holds the scratchpad
elements ``sp + r*sp_stride + i*apw + l`` (``apw`` = ``mapping.timing.act_per_word``, lane
``l`` in bits ``[l*in_bits, ...)``) of which only the ``count`` elements from lane ``off``
of word 0 on are moved (the rest of the first and last word belong to other rows or
tensors: masked). A run's request is presented the cycle after the previous run's last
word.

- Load: the request the cycle after ``go``; each arriving word is written to the
  scratchpad in its arrival cycle (word ``i`` at ``t + ext_latency + ceil((i+1)/b)``).
- Store: the request the cycle after ``go``, with the scratchpad read of word 0; word
  ``i`` is presented on ``wdata`` (data and a bit mask) from the cycle after its read and
  the read of word ``i+1`` is issued in the cycle word ``i`` is taken (the read data is
  held meanwhile), so the memory takes word ``i`` at ``t + ceil((i+1)/b)``.

``busy`` is high from the cycle after ``go`` to the last write (load) or the cycle the
last word is taken (store): ``mapping.timing.xfer_cycles``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import xfer_layout
from hwgen.rtl.dma import ext_port_signature
from hwgen.rtl.interfaces import act_read_signature, act_write_signature, xfer_command_signature
from mapping.arch import ArchSpec
from mapping.hwconst import bits_for
from mapping.timing import act_per_word


class ActivationDMA(wiring.Component):
    """Runs XFER instructions: ``cmd`` (:func:`~hwgen.rtl.interfaces.xfer_command_signature`),
    ``ext`` the external-memory port, ``act_wr``/``act_rd`` the scratchpad (``apw`` lanes)."""

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.apw = act_per_word(arch)
        super().__init__({
            "cmd": In(xfer_command_signature(arch)),
            "ext": Out(ext_port_signature(arch)),
            "act_wr": Out(act_write_signature(arch, self.apw)),
            "act_rd": Out(act_read_signature(arch, self.apw)),
        })

    def elaborate(self, platform):
        m = Module()
        a, apw, cmd, ext = self.arch, self.apw, self.cmd, self.ext
        b = a.in_bits
        ins = Signal(xfer_layout(a))
        pos_bits = bits_for(a.act_words + 2 * apw) + 1
        pos = Signal(pos_bits)  # element index (from word 0's lane 0) of this word's lane 0
        end = Signal(pos_bits)  # off + count
        words = Signal.like(ins.words)
        runs = Signal.like(ins.runs)
        m.d.comb += [ext.req.payload.addr.eq(ins.ext), ext.req.payload.len.eq(ins.words),
                     ext.req.payload.write.eq(ins.store)]

        def lane_on(p, lane):  # element p + lane is one of the transfer's
            return (p + lane >= ins.off) & (p + lane < end)

        # load: the arriving word's lanes into the scratchpad
        m.d.comb += self.act_wr.addr.eq(ins.sp + pos)
        for lane in range(apw):
            m.d.comb += self.act_wr.data[lane].eq(ext.resp.payload[lane * b:(lane + 1) * b])
        arrived = Signal()
        for lane in range(apw):
            m.d.comb += self.act_wr.mask[lane].eq(arrived & lane_on(pos, lane))
        # store: the word read from the scratchpad, its mask
        m.d.comb += ext.wdata.payload.data.eq(Cat(*(self.act_rd.data[lane] for lane in range(apw))))
        m.d.comb += ext.wdata.payload.mask.eq(
            Cat(*(lane_on(pos, lane).replicate(b) for lane in range(apw)),
                Const(0, a.ext_word_bits - apw * b)))
        rd_pos = Signal(pos_bits)
        for lane in range(apw):
            m.d.comb += self.act_rd.addr[lane].eq(ins.sp + rd_pos + lane)

        def next_run():  # after a run's last word: the next run, or done
            with m.If(runs == 1):
                m.next = "IDLE"
            with m.Else():
                m.d.sync += [runs.eq(runs - 1), pos.eq(0), words.eq(ins.words),
                             ins.ext.eq(ins.ext + ins.wstride), ins.sp.eq(ins.sp + ins.sp_stride)]
                m.next = "REQUEST"

        with m.FSM(name="act_dma"):
            with m.State("IDLE"):
                with m.If(cmd.go):
                    m.d.sync += [ins.eq(cmd.instr), pos.eq(0), words.eq(cmd.instr.words),
                                 runs.eq(cmd.instr.runs),
                                 end.eq(cmd.instr.off + cmd.instr.count)]
                    m.next = "REQUEST"
            with m.State("REQUEST"):  # present the request (a store reads word 0 meanwhile)
                m.d.comb += [cmd.busy.eq(1), ext.req.valid.eq(1)]
                with m.If(ins.store):
                    m.d.comb += [rd_pos.eq(0), self.act_rd.en.eq(1)]
                with m.If(ext.req.ready):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += cmd.busy.eq(1)
                with m.If(ins.store):  # one word per taken wdata; read the next as it goes
                    m.d.comb += [ext.wdata.valid.eq(1), rd_pos.eq(pos + apw),
                                 self.act_rd.en.eq(ext.wdata.ready & (words != 1))]
                    with m.If(ext.wdata.ready):
                        m.d.sync += [pos.eq(pos + apw), words.eq(words - 1)]
                        with m.If(words == 1):
                            next_run()
                with m.Else():  # one word per valid response, written as it arrives
                    m.d.comb += [ext.resp.ready.eq(1), arrived.eq(ext.resp.valid)]
                    with m.If(ext.resp.valid):
                        m.d.sync += [pos.eq(pos + apw), words.eq(words - 1)]
                        with m.If(words == 1):
                            next_run()
        return m
