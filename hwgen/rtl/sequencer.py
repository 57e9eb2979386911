"""The program sequencer: input phase, layers (fetch, decode, run), output phase,
and the cycle counters. Compute layers (LAYER + STEPs) run on the DMA and the
``hwgen.rtl.tile_engine.TileEngine``; pool and add layers (one ELT word) on the
``hwgen.rtl.eltwise_engine.EltwiseEngine``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import (
    OP_ELT,
    OP_END,
    OP_LAYER,
    elt_fields,
    fields_layout,
    layer_fields,
    step_fields,
    word_bits,
)
from mapping.arch import ArchSpec


class Sequencer(wiring.Component):
    """Program sequencer: input phase, layers (fetch, decode, steps), output phase.

    ``start`` (in idle or done) begins a run: ``in_phase`` until ``in_done``,
    then the program from address 0, then ``out_phase`` until ``out_done``, then
    ``done``. A LAYER costs a fetch and a decode cycle; its steps follow back to
    back (a step ends the cycle after both the DMA and the tile engine finished,
    which is the next step's first cycle). An ELT word starts the element-wise
    engine in its decode cycle; the cycle after the engine finished is the next
    instruction's fetch. Counters: ``cycle_count`` (free
    running since reset), ``run_cycles`` (start to done), and per hardware layer
    the cycles from its fetch to its last write (``layer_sel`` -> ``layer_count``).
    """

    def __init__(self, arch: ArchSpec, instructions: list[int], n_layers: int):
        self.arch = arch
        self.instructions = list(instructions)
        self.n_layers = max(1, n_layers)
        sf = fields_layout(step_fields(arch))
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            "in_phase": Out(1), "in_done": In(1), "out_phase": Out(1), "out_done": In(1),
            "tile_go": Out(1), "tile_step": Out(sf),
            "layer": Out(fields_layout(layer_fields(arch))), "tile_busy": In(1),
            "dma_start": Out(1), "dma_busy": In(1), "dma_step": Out(sf),
            "elt_go": Out(1), "elt_instr": Out(fields_layout(elt_fields(arch))), "elt_busy": In(1),
            "cycle_count": Out(48), "run_cycles": Out(48),
            "layer_sel": In(8), "layer_count": Out(32),
        })

    def elaborate(self, platform):
        from amaranth.lib import memory
        m = Module()
        a = self.arch
        wb = word_bits(a)
        rom = memory.Memory(shape=unsigned(wb), depth=len(self.instructions),
                            init=self.instructions)
        m.submodules.program = rom
        rd = rom.read_port()
        pc = Signal(range(len(self.instructions) + 2))
        m.d.comb += [rd.addr.eq(pc), rd.en.eq(1)]
        word_step = Signal(fields_layout(step_fields(a)))
        m.d.comb += word_step.as_value().eq(rd.data)
        word_layer = Signal(fields_layout(layer_fields(a)))
        m.d.comb += word_layer.as_value().eq(rd.data)
        word_elt = Signal(fields_layout(elt_fields(a)))
        m.d.comb += word_elt.as_value().eq(rd.data)
        op = rd.data[:2]

        # 0 idle 1 load 2 fetch 3 decode 4 steps 5 output 6 done 7 element-wise layer
        state = Signal(range(8))
        elt_id = Signal(8)
        cur = Signal(fields_layout(step_fields(a)))
        first_step = Signal()
        in_step = Signal()
        pending = Signal()  # single-buffered: the tile waits for this step's DMA
        lcount = Signal(32)
        counters = Array(Signal(32, name=f"layer_cycles{i}") for i in range(self.n_layers))
        layer = Signal.like(self.layer)
        m.d.comb += [self.layer.eq(layer), self.layer_count.eq(counters[self.layer_sel]),
                     self.in_phase.eq(state == 1), self.out_phase.eq(state == 5),
                     self.busy.eq((state != 0) & (state != 6)), self.done.eq(state == 6)]
        m.d.sync += self.cycle_count.eq(self.cycle_count + 1)
        with m.If(self.busy):
            m.d.sync += self.run_cycles.eq(self.run_cycles + 1)
        m.d.sync += lcount.eq(lcount + 1)

        idle = ~self.dma_busy & ~self.tile_busy & ~pending
        step_end = (state == 4) & in_step & idle
        go = (state == 4) & (first_step | (step_end & ~cur.last))
        elt_end = (state == 7) & ~self.elt_busy
        fetch = (state == 2) | (step_end & cur.last) | elt_end

        with m.If(go):
            m.d.sync += [cur.eq(word_step), pc.eq(pc + 1), in_step.eq(1), first_step.eq(0)]
            m.d.comb += [self.dma_start.eq(word_step.dma_en), self.dma_step.eq(word_step)]
            if a.double_buffer:
                m.d.comb += [self.tile_go.eq(word_step.tile_en), self.tile_step.eq(word_step)]
            else:
                with m.If(word_step.dma_en):
                    m.d.sync += pending.eq(word_step.tile_en)
                with m.Else():
                    m.d.comb += [self.tile_go.eq(word_step.tile_en),
                                 self.tile_step.eq(word_step)]
        with m.Elif(step_end):
            m.d.sync += in_step.eq(0)
        if not a.double_buffer:
            with m.If((state == 4) & in_step & pending & ~self.dma_busy):
                m.d.comb += [self.tile_go.eq(1), self.tile_step.eq(cur)]
                m.d.sync += pending.eq(0)
        with m.If(step_end & cur.last):
            m.d.sync += counters[layer.layer_id].eq(lcount)
        with m.If(elt_end):
            m.d.sync += counters[elt_id].eq(lcount)
        with m.If(fetch):
            m.d.sync += [pc.eq(pc + 1), lcount.eq(1), state.eq(3)]

        with m.Switch(state):
            with m.Case(0, 6):
                with m.If(self.start):
                    m.d.sync += [state.eq(1), self.run_cycles.eq(0), pc.eq(0)]
            with m.Case(1):
                with m.If(self.in_done):
                    m.d.sync += state.eq(2)
            with m.Case(3):
                with m.If(op == OP_END):
                    m.d.sync += state.eq(5)
                with m.Elif(op == OP_LAYER):
                    m.d.sync += [layer.eq(word_layer), state.eq(4), first_step.eq(1)]
                with m.Elif(op == OP_ELT):  # the engine starts in the decode cycle
                    m.d.comb += [self.elt_go.eq(1), self.elt_instr.eq(word_elt)]
                    m.d.sync += [elt_id.eq(word_elt.layer_id), state.eq(7)]
            with m.Case(5):
                with m.If(self.out_done):
                    m.d.sync += state.eq(6)
        return m
