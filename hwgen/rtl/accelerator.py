"""``Accelerator``: the generated top level (ArchSpec + Program + weights -> Amaranth).

Ports: ``start``/``busy``/``done``; ``inp`` (input stream, one ``in_bits``
element per cycle, NHWC order) and ``out`` (output stream, same format);
``cycle_count`` (free running), ``run_cycles`` (start to done) and the
per-layer counters (``layer_sel`` -> ``layer_count``); with
``weight_store="external"`` also ``ext``, the DMA's external-memory port
(see ``hwgen.rtl.dma``). The program and the per-channel parameters are always
baked in; the weights are baked into a ROM behind the same port by default.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.program import MULT_BITS, SHIFT_BITS, Program, param_bits
from hwgen.rtl.dma import WeightDMA, WeightROM, ext_port_signature
from hwgen.rtl.eltwise_engine import EltwiseEngine
from hwgen.rtl.memory import AccumulatorBuffer, ActivationScratchpad, ConstTable, WeightScratchpad
from hwgen.rtl.sequencer import Sequencer
from hwgen.rtl.tile_engine import TileEngine, tag_layout
from mapping.arch import ArchSpec

DEFAULT_ROM_BUDGET_BITS = 32 * 2**20  # 4 MiB of baked weights


class GenerationError(ValueError):
    """The accelerator cannot be generated; the message says what is wrong and what is allowed."""


def _datapath_classes(array_cls, postproc_cls):
    if array_cls is None:
        from hwgen.rtl.array import SystolicArray as array_cls
    if postproc_cls is None:
        from hwgen.rtl.postproc import PostProc as postproc_cls
    return array_cls, postproc_cls


class Accelerator(wiring.Component):
    """The accelerator for ``arch`` running ``program``.

    ``weights``: the weight-store image (``program.weight_image`` by default);
    baked into a ROM when ``arch.weight_store == "rom"`` (at most
    ``rom_budget_bits``), else served by the external memory on ``ext``.
    ``array_cls``/``postproc_cls`` default to ``hwgen.rtl.array.SystolicArray`` and
    ``hwgen.rtl.postproc.PostProc``.
    """

    def __init__(self, arch: ArchSpec, program: Program, weights: list[int] | None = None, *,
                 rom_budget_bits: int = DEFAULT_ROM_BUDGET_BITS, array_cls=None,
                 postproc_cls=None):
        try:
            self._setup(arch, program, weights, rom_budget_bits, array_cls, postproc_cls)
        except ValueError:
            self._MustUse__silence = True  # rejected: no "created but never used" warning
            raise

    def _setup(self, arch, program, weights, rom_budget_bits, array_cls, postproc_cls):
        if not isinstance(arch, ArchSpec):
            raise GenerationError(f"arch must be an ArchSpec, got {type(arch).__name__}")
        arch.validate()
        if not isinstance(program, Program):
            raise GenerationError(f"program must be a hwgen.compiler.program.Program, got "
                                  f"{type(program).__name__}")
        if program.arch != arch:
            raise GenerationError("the program was compiled for a different ArchSpec "
                                  f"({program.arch.name!r}); recompile it for {arch.name!r}")
        self.arch = arch
        self.program = program
        self.weights = list(program.weight_image if weights is None else weights)
        if len(self.weights) < len(program.weight_image):
            raise GenerationError(f"weight image has {len(self.weights)} words, the program "
                                  f"reads {len(program.weight_image)}")
        wbits = len(self.weights) * arch.ext_word_bits
        if arch.weight_store == "rom" and wbits > rom_budget_bits:
            raise GenerationError(
                f"weights need {wbits} ROM bits, more than the ROM budget of {rom_budget_bits} "
                "bits; use weight_store='external' or raise rom_budget_bits")
        if any(w < 0 or w >> arch.ext_word_bits for w in self.weights):
            raise GenerationError(f"weight image words must be unsigned {arch.ext_word_bits}-bit")
        self.array_cls, self.postproc_cls = _datapath_classes(array_cls, postproc_cls)
        self.tag_width = Shape.cast(tag_layout(arch)).width
        if self.tag_width > 64:
            raise GenerationError(f"tag of {self.tag_width} bits exceeds the array's 64-bit limit "
                                  "(acc_words too large)")
        self.array_latency = self.array_cls.latency(arch)
        self.post_latency = self.postproc_cls.latency(arch)
        el = signed(arch.in_bits)
        sig = {
            "start": In(1), "busy": Out(1), "done": Out(1),
            "inp": In(stream.Signature(el)), "out": Out(stream.Signature(el)),
            "cycle_count": Out(48), "run_cycles": Out(48),
            "layer_sel": In(8), "layer_count": Out(32),
        }
        if arch.weight_store == "external":
            sig["ext"] = Out(ext_port_signature(arch))
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        a, prog = self.arch, self.program
        R, C = a.rows, a.cols
        seq = m.submodules.seq = Sequencer(a, prog.instructions, len(prog.layers))
        eng = m.submodules.engine = TileEngine(a, self.array_latency, self.post_latency)
        elt = m.submodules.eltwise = EltwiseEngine(a)
        act = m.submodules.act = ActivationScratchpad(a)
        wsp = m.submodules.wsp = WeightScratchpad(a)
        accb = m.submodules.accbuf = AccumulatorBuffer(a)
        pb = param_bits(a)
        par = m.submodules.params = ConstTable(Shape.cast(pb), prog.params, C)
        arr = m.submodules.array = self.array_cls(a, tag_width=self.tag_width)
        pp = m.submodules.postproc = self.postproc_cls(a, lanes=C)
        dma = m.submodules.dma = WeightDMA(a)
        if a.weight_store == "rom":
            rom = m.submodules.weight_rom = WeightROM(a, self.weights)
            wiring.connect(m, dma.ext, rom.port)
        else:
            wiring.connect(m, dma.ext, wiring.flipped(self.ext))

        # sequencer <-> engines, counters
        m.d.comb += [
            seq.start.eq(self.start), self.busy.eq(seq.busy), self.done.eq(seq.done),
            eng.go.eq(seq.tile_go), eng.step.eq(seq.tile_step), eng.layer.eq(seq.layer),
            seq.tile_busy.eq(eng.busy),
            elt.go.eq(seq.elt_go), elt.instr.eq(seq.elt_instr), seq.elt_busy.eq(elt.busy),
            dma.start.eq(seq.dma_start), dma.src.eq(seq.dma_step.dma_src),
            dma.words.eq(seq.dma_step.dma_words), dma.count.eq(seq.dma_step.dma_count),
            dma.dst.eq(seq.dma_step.dma_dst), seq.dma_busy.eq(dma.busy),
            self.cycle_count.eq(seq.cycle_count), self.run_cycles.eq(seq.run_cycles),
            seq.layer_sel.eq(self.layer_sel), self.layer_count.eq(seq.layer_count),
        ]
        # weight scratchpad
        m.d.comb += [wsp.wr_addr.eq(dma.wr_addr), wsp.wr_mask.eq(dma.wr_mask),
                     wsp.wr_data.eq(dma.wr_data), wsp.rd_en.eq(eng.w_rd_en),
                     wsp.rd_addr.eq(eng.w_rd_addr), eng.w_rd_data.eq(wsp.rd_data)]
        # array
        m.d.comb += [arr.in_valid.eq(eng.arr_in_valid), arr.in_first.eq(eng.arr_in_first),
                     arr.in_data.eq(eng.arr_in_data), arr.in_tag.eq(eng.arr_in_tag.as_value()),
                     eng.arr_out_valid.eq(arr.out_valid),
                     eng.arr_out_tag.as_value().eq(arr.out_tag)]
        if a.dataflow == "ws":
            m.d.comb += [arr.preload_valid.eq(eng.arr_preload_valid),
                         arr.preload_row.eq(eng.arr_in_w)]
        else:
            m.d.comb += [arr.in_last.eq(eng.arr_in_last), arr.in_w.eq(eng.arr_in_w)]
        # accumulator buffer, parameters, post-processing
        m.d.comb += [accb.in_valid.eq(eng.acc_in_valid), accb.in_addr.eq(eng.acc_in_addr),
                     accb.in_mask.eq(eng.acc_in_mask), accb.in_data.eq(arr.out_data),
                     accb.in_accumulate.eq(eng.acc_in_accumulate),
                     accb.rd_en.eq(eng.acc_rd_en), accb.rd_addr.eq(eng.acc_rd_addr),
                     par.rd_en.eq(eng.par_rd_en), par.rd_addr.eq(eng.par_rd_addr)]
        m.d.comb += [pp.in_valid.eq(eng.pp_in_valid), eng.pp_out_valid.eq(pp.out_valid),
                     pp.out_bits.eq(seq.layer.out_bits), pp.relu.eq(seq.layer.relu)]
        for j in range(C):
            word = par.rd_data[j]
            m.d.comb += [
                pp.acc[j].eq(accb.rd_data[j]),
                pp.bias[j].eq(word[:a.acc_bits].as_signed()),
                pp.mult[j].eq(word[a.acc_bits:a.acc_bits + MULT_BITS]),
                pp.shift[j].eq(word[a.acc_bits + MULT_BITS:a.acc_bits + MULT_BITS + SHIFT_BITS]),
            ]
        # activation scratchpad: tile engine, element-wise engine, input and output streams
        in_cnt = Signal(range(prog.input_count + 1))
        with m.If(self.start):
            m.d.sync += in_cnt.eq(0)
        m.d.comb += [self.inp.ready.eq(seq.in_phase & (in_cnt < prog.input_count)),
                     seq.in_done.eq(in_cnt == prog.input_count)]
        with m.If(seq.in_phase):
            m.d.comb += [act.wr_addr.eq(prog.input_base + in_cnt), act.wr_data[0].eq(self.inp.payload),
                         act.wr_mask.eq(self.inp.valid & self.inp.ready)]
            with m.If(self.inp.valid & self.inp.ready):
                m.d.sync += in_cnt.eq(in_cnt + 1)
        with m.Elif(elt.busy):
            m.d.comb += [act.wr_addr.eq(elt.act_wr_addr), act.wr_mask.eq(elt.act_wr_mask)]
            for j in range(R):
                m.d.comb += act.wr_data[j].eq(elt.act_wr_data[j])
        with m.Else():
            m.d.comb += [act.wr_addr.eq(eng.act_wr_addr), act.wr_mask.eq(eng.act_wr_mask)]
            for j in range(C):
                m.d.comb += act.wr_data[j].eq(pp.out[j])
        out_cnt = Signal(range(prog.output_count + 1))
        ov = Signal()
        advance = ~ov | self.out.ready
        with m.If(self.start):
            m.d.sync += [out_cnt.eq(0), ov.eq(0)]
        m.d.comb += [self.out.valid.eq(ov), self.out.payload.eq(act.rd_data[0]),
                     seq.out_done.eq((out_cnt == prog.output_count) & advance)]
        with m.If(seq.out_phase):
            m.d.comb += [act.rd_en.eq(advance), act.rd_addr[0].eq(prog.output_base + out_cnt)]
            with m.If(advance):
                m.d.sync += ov.eq(out_cnt < prog.output_count)
                with m.If(out_cnt < prog.output_count):
                    m.d.sync += out_cnt.eq(out_cnt + 1)
        with m.Elif(elt.busy):
            m.d.comb += act.rd_en.eq(elt.act_rd_en)
            for r in range(R):
                m.d.comb += act.rd_addr[r].eq(elt.act_rd_addr[r])
        with m.Else():
            m.d.comb += act.rd_en.eq(eng.act_rd_en)
            for r in range(R):
                m.d.comb += act.rd_addr[r].eq(eng.act_rd_addr[r])
        m.d.comb += [eng.act_rd_data.eq(act.rd_data), elt.act_rd_data.eq(act.rd_data)]
        return m

