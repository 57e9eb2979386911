"""The program sequencer: input phase, layers (fetch, decode, run), output phase,
and the cycle counters. Compute layers (LAYER + STEPs) run on the DMA and the
``hwgen.rtl.tile_engine.TileEngine``; pool and add layers (one ELT word) on the
``hwgen.rtl.eltwise_engine.EltwiseEngine``.
"""

from __future__ import annotations

from amaranth.hdl import Array, C, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import (
    EXT_ADDR_BITS,
    OP_BITS,
    PARAM_ADDR_BITS,
    Op,
    dims_bits,
    elt_layout,
    layer_layout,
    loop_layout,
    step_layout,
    word_bits,
    xfer_layout,
)
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
from mapping.hwconst import LAYER_COUNTER_BITS, LAYER_ID_BITS, bits_for


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
        self.loops = any(w & ((1 << OP_BITS) - 1) == Op.LOOP.value for w in self.instructions)
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
        pc = Signal(range(len(self.instructions) + 2))  # the word read now (then the next)
        # LOOP: the body [loop_start, loop_end) runs again while iterations are left; the
        # read address wraps from loop_end to loop_start, each iteration's field offsets
        # (off_*) grow by the deltas and travel with the word read (dat_*: the ROM's latency)
        # (built only for a program with LOOP words)
        loop_on = Signal()
        loop_start, loop_end = Signal.like(pc), Signal.like(pc)
        left = Signal(dims_bits(a))
        deltas = [Signal(EXT_ADDR_BITS, name=f"d_{n}") for n in ("a", "b")] + \
            [Signal(dims_bits(a), name=f"d_{n}") for n in ("row", "hp")] + \
            [Signal(EXT_ADDR_BITS, name="d_wsrc"), Signal(bits_for(a.act_words), name="d_out"),
             Signal(PARAM_ADDR_BITS, name="d_par")]
        offs = [Signal.like(d, name=f"off{d.name[1:]}") for d in deltas]
        dats = [Signal.like(d, name=f"dat{d.name[1:]}") for d in deltas]
        if self.loops:
            wrap = loop_on & (pc == loop_end) & (left != 0)
            eff_pc = Mux(wrap, loop_start, pc)
            in_body = loop_on & (eff_pc >= loop_start) & (eff_pc < loop_end)
            m.d.sync += [dat.eq(Mux(in_body, off + Mux(wrap, d, 0), 0))
                         for dat, off, d in zip(dats, offs, deltas, strict=True)]
        else:
            wrap, eff_pc = C(0, 1), pc
        m.d.comb += [rd.addr.eq(eff_pc), rd.en.eq(1)]
        dat_a, dat_b, dat_row, dat_hp, dat_wsrc, dat_out, dat_par = dats
        # the ROM word read as each instruction (every layout starts with ``op``), with the
        # loop's offsets applied
        word_step, word_layer, word_elt, word_xfer, word_loop = (
            lay(rd.data[:lay.size])
            for lay in (step_layout(a), layer_layout(a), elt_layout(a), xfer_layout(a),
                        loop_layout(a)))
        step_mod, elt_mod, xfer_mod = (Signal(lay(a)) for lay in (step_layout, elt_layout,
                                                                   xfer_layout))
        m.d.comb += [step_mod.eq(word_step), step_mod.p0.eq(word_step.p0 + dat_row),
                     step_mod.hp0.eq(word_step.hp0 + dat_hp),
                     step_mod.dma_src.eq(word_step.dma_src + dat_wsrc),
                     step_mod.out_base.eq(word_step.out_base + dat_out),
                     step_mod.par_base.eq(word_step.par_base + dat_par),
                     elt_mod.eq(word_elt), elt_mod.hp0.eq(word_elt.hp0 + dat_hp),
                     xfer_mod.eq(word_xfer),
                     xfer_mod.ext.eq(word_xfer.ext + Mux(word_xfer.dsel == 1, dat_a,
                                                         Mux(word_xfer.dsel == 2, dat_b, 0)))]

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

        def advance():  # the word at eff_pc is taken: read the next (a loop wraps)
            m.d.sync += pc.eq(eff_pc + 1)
            if self.loops:
                with m.If(wrap):
                    m.d.sync += [left.eq(left - 1),
                                 *(o.eq(o + d) for o, d in zip(offs, deltas, strict=True))]

        def fetch():  # fetch the next instruction; its decode is the next cycle
            advance()
            m.d.sync += lcount.eq(1)
            m.next = "DECODE"

        def begin():  # a run starts: the input phase, the layer counters from 0
            with m.If(self.run.start):
                m.d.sync += [cnt.run_cycles.eq(0), pc.eq(0), loop_on.eq(0),
                             *(c.eq(0) for c in counters)]
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
                    m.d.comb += [self.elt.go.eq(1), self.elt.instr.eq(elt_mod)]
                    m.d.sync += elt_id.eq(word_elt.layer_id)
                    m.next = "ELT"
                with m.Elif(word_layer.op == Op.XFER):  # the DMA starts in the decode cycle
                    m.d.comb += [self.xfer.go.eq(1), self.xfer.instr.eq(xfer_mod)]
                    m.d.sync += elt_id.eq(word_xfer.layer_id)
                    m.next = "XFER"
                with m.Elif((word_layer.op == Op.LOOP) & self.loops):  # body follows
                    m.d.sync += [loop_on.eq(1), loop_start.eq(pc), loop_end.eq(pc + word_loop.body),
                                 left.eq(word_loop.count - 1),
                                 deltas[0].eq(word_loop.d_a), deltas[1].eq(word_loop.d_b),
                                 deltas[2].eq(word_loop.d_row), deltas[3].eq(word_loop.d_hp),
                                 deltas[4].eq(word_loop.d_wsrc), deltas[5].eq(word_loop.d_out),
                                 deltas[6].eq(word_loop.d_par),
                                 *(o.eq(0) for o in offs),
                                 counters[word_loop.layer_id].eq(
                                     counters[word_loop.layer_id] + lcount + 1)]
                    m.next = "FETCH"
            with m.State("STEPS"):  # each STEP (burst and / or tile) once the previous ended
                dma = self.dma
                step_end = in_step & ~dma.busy & ~tile.busy & ~pending
                with m.If(first_step | (step_end & ~cur.last)):
                    advance()
                    m.d.sync += [cur.eq(step_mod), in_step.eq(1), first_step.eq(0)]
                    m.d.comb += [dma.start.eq(word_step.dma_en), dma.src.eq(step_mod.dma_src),
                                 dma.words.eq(word_step.dma_words),
                                 dma.count.eq(word_step.dma_count), dma.dst.eq(word_step.dma_dst)]
                    if a.double_buffer:  # the burst is the next tile's: both start now
                        m.d.comb += [tile.go.eq(word_step.tile_en), tile.step.eq(step_mod)]
                    else:  # the tile waits for its own burst
                        with m.If(word_step.dma_en):
                            m.d.sync += pending.eq(word_step.tile_en)
                        with m.Else():
                            m.d.comb += [tile.go.eq(word_step.tile_en),
                                         tile.step.eq(step_mod)]
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
