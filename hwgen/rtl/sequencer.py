"""The program sequencer: input phase, layers (fetch, decode, run), output phase,
and the cycle counters. Compute layers (LAYER + STEPs) run on the DMA and the
``hwgen.rtl.tile_engine.TileEngine``; pool and add layers (one ELT word) on the
``hwgen.rtl.eltwise_engine.EltwiseEngine``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import Op, elt_layout, layer_layout, step_layout, word_bits, xfer_layout
from hwgen.rtl.interfaces import (
    counter_signature,
    dma_command_signature,
    elt_command_signature,
    phase_signature,
    run_signature,
    tile_command_signature,
    xfer_command_signature,
)
from mapping.arch import ArchSpec
from mapping.hwconst import LAYER_COUNTER_BITS, LAYER_ID_BITS


class Sequencer(wiring.Component):
    """Program sequencer: input phase, layers (fetch, decode, steps), output phase.

    ``run.start`` (in idle or done) begins a run: ``in_phase`` until its ``done``,
    then the program from address 0, then ``out_phase`` until its ``done``, then
    ``run.done``. A LAYER costs a fetch and a decode cycle; its steps follow back to
    back (a step ends the cycle after both the DMA and the tile engine finished,
    which is the next step's first cycle). An ELT word starts the element-wise
    engine in its decode cycle; the cycle after the engine finished is the next
    instruction's fetch. Masters of ``tile``, ``dma`` and ``elt`` (the engines'
    commands); an XFER word starts the activation DMA (``xfer``) in its decode cycle
    like an ELT word. ``counters``: ``cycle_count`` (free running since reset),
    ``run_cycles`` (start to done), and per hardware layer the sum over its
    instructions of the cycles from each one's fetch to its last write (``layer_sel`` ->
    ``layer_count``; cleared at ``run.start``): one span for a layer of one instruction
    group, all its band loads, runs and stores in a spilled program.
    """

    def __init__(self, arch: ArchSpec, instructions: list[int], n_layers: int):
        self.arch = arch
        self.instructions = list(instructions)
        self.n_layers = max(1, n_layers)
        super().__init__({
            "run": In(run_signature()),
            "in_phase": Out(phase_signature()), "out_phase": Out(phase_signature()),
            "tile": Out(tile_command_signature(arch)),
            "dma": Out(dma_command_signature(arch)),
            "elt": Out(elt_command_signature(arch)),
            "xfer": Out(xfer_command_signature(arch)),
            "counters": Out(counter_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        rom = memory.Memory(shape=unsigned(word_bits(a)), depth=len(self.instructions),
                            init=self.instructions)
        m.submodules.program = rom
        rd = rom.read_port()
        pc = Signal(range(len(self.instructions) + 2))
        m.d.comb += [rd.addr.eq(pc), rd.en.eq(1)]
        # the ROM word read as each instruction (every layout starts with ``op``)
        word_step, word_layer, word_elt, word_xfer = (
            lay(rd.data[:lay.size])
            for lay in (step_layout(a), layer_layout(a), elt_layout(a), xfer_layout(a)))

        tile, cnt = self.tile, self.counters
        elt_id = Signal(LAYER_ID_BITS)
        cur = Signal(step_layout(a))
        first_step = Signal()
        in_step = Signal()
        pending = Signal()  # single-buffered: the tile waits for this step's DMA
        lcount = Signal(LAYER_COUNTER_BITS)
        counters = Array(Signal(LAYER_COUNTER_BITS, name=f"layer_cycles{i}")
                         for i in range(self.n_layers))
        layer = Signal(layer_layout(a))
        m.d.comb += [tile.layer.eq(layer), cnt.layer_count.eq(counters[cnt.layer_sel]),
                     self.in_phase.rewind.eq(self.run.start),
                     self.out_phase.rewind.eq(self.run.start)]
        m.d.sync += cnt.cycle_count.eq(cnt.cycle_count + 1)
        with m.If(self.run.busy):
            m.d.sync += cnt.run_cycles.eq(cnt.run_cycles + 1)
        m.d.sync += lcount.eq(lcount + 1)

        def fetch():  # fetch the next instruction; its decode is the next cycle
            m.d.sync += [pc.eq(pc + 1), lcount.eq(1)]
            m.next = "DECODE"

        def begin():  # a run starts: the input phase, the layer counters from 0
            with m.If(self.run.start):
                m.d.sync += [cnt.run_cycles.eq(0), pc.eq(0), *(c.eq(0) for c in counters)]
                m.next = "INPUT"

        def count(layer_id):  # an instruction of layer ``layer_id`` ends: add its cycles
            m.d.sync += counters[layer_id].eq(counters[layer_id] + lcount)

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                begin()
            with m.State("INPUT"):
                m.d.comb += self.in_phase.active.eq(1)
                with m.If(self.in_phase.done):
                    m.next = "FETCH"
            with m.State("FETCH"):
                fetch()
            with m.State("DECODE"):
                with m.If(word_layer.op == Op.END):
                    m.next = "OUTPUT"
                with m.Elif(word_layer.op == Op.LAYER):
                    m.d.sync += [layer.eq(word_layer), first_step.eq(1)]
                    m.next = "STEPS"
                with m.Elif(word_layer.op == Op.ELT):  # the engine starts in the decode cycle
                    m.d.comb += [self.elt.go.eq(1), self.elt.instr.eq(word_elt)]
                    m.d.sync += elt_id.eq(word_elt.layer_id)
                    m.next = "ELT"
                with m.Elif(word_layer.op == Op.XFER):  # the DMA starts in the decode cycle
                    m.d.comb += [self.xfer.go.eq(1), self.xfer.instr.eq(word_xfer)]
                    m.d.sync += elt_id.eq(word_xfer.layer_id)
                    m.next = "XFER"
            with m.State("STEPS"):  # each STEP (burst and / or tile) once the previous ended
                dma = self.dma
                step_end = in_step & ~dma.busy & ~tile.busy & ~pending
                with m.If(first_step | (step_end & ~cur.last)):
                    m.d.sync += [cur.eq(word_step), pc.eq(pc + 1), in_step.eq(1),
                                 first_step.eq(0)]
                    m.d.comb += [dma.start.eq(word_step.dma_en), dma.src.eq(word_step.dma_src),
                                 dma.words.eq(word_step.dma_words),
                                 dma.count.eq(word_step.dma_count), dma.dst.eq(word_step.dma_dst)]
                    if a.double_buffer:  # the burst is the next tile's: both start now
                        m.d.comb += [tile.go.eq(word_step.tile_en), tile.step.eq(word_step)]
                    else:  # the tile waits for its own burst
                        with m.If(word_step.dma_en):
                            m.d.sync += pending.eq(word_step.tile_en)
                        with m.Else():
                            m.d.comb += [tile.go.eq(word_step.tile_en),
                                         tile.step.eq(word_step)]
                with m.Elif(step_end):
                    m.d.sync += in_step.eq(0)
                if not a.double_buffer:
                    with m.If(in_step & pending & ~dma.busy):
                        m.d.comb += [tile.go.eq(1), tile.step.eq(cur)]
                        m.d.sync += pending.eq(0)
                with m.If(step_end & cur.last):  # the layer's last write: count it, go on
                    count(layer.layer_id)
                    fetch()
            with m.State("ELT"):
                with m.If(~self.elt.busy):
                    count(elt_id)
                    fetch()
            with m.State("XFER"):
                with m.If(~self.xfer.busy):
                    count(elt_id)
                    fetch()
            with m.State("OUTPUT"):
                m.d.comb += self.out_phase.active.eq(1)
                with m.If(self.out_phase.done):
                    m.next = "DONE"
            with m.State("DONE"):
                begin()
        m.d.comb += [self.run.busy.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("DONE")),
                     self.run.done.eq(fsm.ongoing("DONE"))]
        return m
