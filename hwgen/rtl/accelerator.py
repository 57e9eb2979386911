"""``Accelerator``: the generated top level (ArchSpec + Program + weights -> Amaranth).

Ports: ``start``/``busy``/``done``; ``inp`` (input stream, one ``in_bits``
element per cycle, NHWC order) and ``out`` (output stream, same format);
``cycle_count`` (free running), ``run_cycles`` (start to done) and the
per-layer counters (``layer_sel`` -> ``layer_count``); with
``weight_store="external"`` also ``ext``, the DMA's external-memory port
(see ``hwgen.rtl.dma``). The program and the per-channel parameters are always
baked in; the weights are baked into a ROM behind the same port by default. A spilled
program (``Program.spilled``: activations in external memory, ``hwgen.compiler.spill``)
adds the activation DMA (``hwgen.rtl.act_dma``) and the ``ext`` port even with baked
weights; with external weights both DMAs share it (they never run at once: XFER and
STEP instructions are sequential).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import PARAM_ADDR_BITS, param_bits
from hwgen.compiler.program import Program
from hwgen.rtl.act_dma import ActivationDMA
from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.dma import WeightDMA, WeightROM, ext_port_signature
from hwgen.rtl.eltwise_engine import EltwiseEngine
from hwgen.rtl.interfaces import PortView, counter_signature, route, run_signature
from hwgen.rtl.memory import AccumulatorBuffer, ActivationScratchpad, ConstTable, WeightScratchpad
from hwgen.rtl.sequencer import Sequencer
from hwgen.rtl.streams import InputStream, OutputStream
from hwgen.rtl.tile_engine import TileEngine, tag_layout
from mapping.arch import ArchSpec

DEFAULT_ROM_BUDGET_BITS = 32 * 2**20  # 4 MiB of baked weights
MAX_TAG_BITS = 64  # the array's tag limit


class GenerationError(ValueError):
    """The accelerator cannot be generated; the message says what is wrong and what is allowed."""


def _datapath_classes(array_cls, postproc_cls):
    if array_cls is None:
        from hwgen.rtl.array import SystolicArray as array_cls
    if postproc_cls is None:
        from hwgen.rtl.postproc import PostProc as postproc_cls
    return array_cls, postproc_cls


class Accelerator(CheckedComponent):
    """The accelerator for ``arch`` running ``program``.

    ``weights``: the weight-store image (``program.weight_image`` by default);
    baked into a ROM when ``arch.weight_store == "rom"`` (at most
    ``rom_budget_bits``), else served by the external memory on ``ext``.
    ``array_cls``/``postproc_cls`` default to ``hwgen.rtl.array.SystolicArray`` and
    ``hwgen.rtl.postproc.PostProc``. Arguments that cannot be generated raise
    :class:`GenerationError` before the component exists.
    """

    @classmethod
    def check(cls, arch: ArchSpec, program: Program, weights: list[int] | None = None, *,
              rom_budget_bits: int = DEFAULT_ROM_BUDGET_BITS, array_cls=None,
              postproc_cls=None) -> None:
        if not isinstance(arch, ArchSpec):
            raise GenerationError(f"arch must be an ArchSpec, got {type(arch).__name__}")
        arch.validate()
        if not isinstance(program, Program):
            raise GenerationError(f"program must be a hwgen.compiler.program.Program, got "
                                  f"{type(program).__name__}")
        if program.arch != arch:
            raise GenerationError("the program was compiled for a different ArchSpec "
                                  f"({program.arch.name!r}); recompile it for {arch.name!r}")
        weights = list(program.weight_image if weights is None else weights)
        if len(weights) < len(program.weight_image):
            raise GenerationError(f"weight image has {len(weights)} words, the program "
                                  f"reads {len(program.weight_image)}")
        wbits = len(weights) * arch.ext_word_bits
        if arch.weight_store == "rom" and wbits > rom_budget_bits:
            raise GenerationError(
                f"weights need {wbits} ROM bits, more than the ROM budget of {rom_budget_bits} "
                "bits; use weight_store='external' or raise rom_budget_bits")
        if any(w < 0 or w >> arch.ext_word_bits for w in weights):
            raise GenerationError(f"weight image words must be unsigned {arch.ext_word_bits}-bit")
        lut_bits = len(program.luts) * arch.in_bits * arch.rows  # one ROM copy per lane
        if lut_bits > rom_budget_bits:
            raise GenerationError(
                f"activation lookup tables need {lut_bits} ROM bits ({len(program.luts)} "
                f"entries x {arch.in_bits} bits x {arch.rows} lanes), more than the ROM budget "
                f"of {rom_budget_bits} bits; use fewer activation bits or raise rom_budget_bits")
        dww, dwp = len(program.dw_weights), len(program.dw_params)  # rows of arch.rows lanes
        dw_bits = arch.rows * (dww * arch.w_bits + dwp * param_bits(arch))
        if dw_bits > rom_budget_bits:
            raise GenerationError(
                f"depthwise weights and parameters need {dw_bits} ROM bits ({dww} weight rows "
                f"x {arch.rows} x {arch.w_bits} bits + {dwp} parameter rows x {arch.rows} x "
                f"{param_bits(arch)} bits), more than the ROM budget of {rom_budget_bits} bits; "
                "use fewer weight bits or raise rom_budget_bits")
        tag_width = Shape.cast(tag_layout(arch)).width
        if tag_width > MAX_TAG_BITS:
            raise GenerationError(f"tag of {tag_width} bits exceeds the array's "
                                  f"{MAX_TAG_BITS}-bit limit (acc_words too large)")

    def __init__(self, arch: ArchSpec, program: Program, weights: list[int] | None = None, *,
                 rom_budget_bits: int = DEFAULT_ROM_BUDGET_BITS, array_cls=None,
                 postproc_cls=None):
        self.arch = arch
        self.program = program
        self.weights = list(program.weight_image if weights is None else weights)
        self.array_cls, self.postproc_cls = _datapath_classes(array_cls, postproc_cls)
        self.tag_width = Shape.cast(tag_layout(arch)).width
        self.array_latency = self.array_cls.latency(arch)
        self.post_latency = self.postproc_cls.latency(arch)
        el = signed(arch.in_bits)
        sig = {
            **run_signature().flip().members,  # flat: start, busy, done
            "inp": In(stream.Signature(el)), "out": Out(stream.Signature(el)),
            **counter_signature().members,  # flat: the counters keep their port names
        }
        if arch.weight_store == "external" or program.spilled:
            sig["ext"] = Out(ext_port_signature(arch))
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        a, prog = self.arch, self.program
        C = a.cols
        seq = m.submodules.seq = Sequencer(a, prog.instructions, len(prog.layers))
        eng = m.submodules.engine = TileEngine(a, self.array_latency, self.post_latency)
        elt = m.submodules.eltwise = EltwiseEngine(
            a, prog.luts, prog.dw_weights, prog.dw_params,
            copies=any(li.kind == "copy" for li in prog.layers),
            muls=any(li.kind == "mul" for li in prog.layers),
            avgs=any(li.kind == "avgpool" for li in prog.layers),
            adds=any(li.kind == "add" for li in prog.layers))
        act = m.submodules.act = ActivationScratchpad(a)
        wsp = m.submodules.wsp = WeightScratchpad(a)
        accb = m.submodules.accbuf = AccumulatorBuffer(a)
        par = m.submodules.params = ConstTable(unsigned(param_bits(a)), prog.params, C,
                                               addr_bits=PARAM_ADDR_BITS)
        arr = m.submodules.array = self.array_cls(a, tag_width=self.tag_width)
        pp = m.submodules.postproc = self.postproc_cls(a, lanes=C)
        dma = m.submodules.dma = WeightDMA(a)
        sin = m.submodules.instream = InputStream(a, prog.input_base, prog.input_count)
        sout = m.submodules.outstream = OutputStream(a, prog.output_base, prog.output_count)

        # control: sequencer -> engines, streams; counters (the top's flat ports seen as
        # the run (host side) and counter (sequencer side) interfaces)
        wiring.connect(m, PortView(self, run_signature()), seq.run)
        wiring.connect(m, seq.tile, eng.cmd)
        wiring.connect(m, seq.elt, elt.cmd)
        wiring.connect(m, seq.dma, dma.cmd)
        xdma = None
        if prog.spilled:
            xdma = m.submodules.act_dma = ActivationDMA(a)
            wiring.connect(m, seq.xfer, xdma.cmd)
        wiring.connect(m, seq.in_phase, sin.phase)
        wiring.connect(m, seq.out_phase, sout.phase)
        wiring.connect(m, seq.counters, wiring.flipped(PortView(self, counter_signature())))
        wiring.connect(m, wiring.flipped(self.inp), sin.inp)
        wiring.connect(m, sout.out, wiring.flipped(self.out))
        # weights: store -> DMA -> weight scratchpad -> tile engine
        if a.weight_store == "rom":
            rom = m.submodules.weight_rom = WeightROM(a, self.weights)
            wiring.connect(m, dma.ext, rom.port)
            if xdma is not None:
                wiring.connect(m, xdma.ext, wiring.flipped(self.ext))
        elif xdma is None:
            wiring.connect(m, dma.ext, wiring.flipped(self.ext))
        else:
            _share_ext(m, self.ext, [(xdma.cmd.busy, xdma.ext), (None, dma.ext)])
        wiring.connect(m, dma.wr, wsp.wr)
        wiring.connect(m, eng.w_rd, wsp.rd)
        # datapath: tile engine <-> array, accumulator buffer, parameters, post-processing
        wiring.connect(m, eng.arr, arr)
        wiring.connect(m, eng.acc_upd, accb.upd)
        wiring.connect(m, eng.acc_rd, accb.rd)
        wiring.connect(m, eng.par_rd, par.rd)
        wiring.connect(m, eng.pp, pp)
        # the activation scratchpad's masters take turns: streams, element-wise, tile engine
        xw = [(xdma.cmd.busy, xdma.act_wr)] if xdma is not None else []
        xr = [(xdma.cmd.busy, xdma.act_rd)] if xdma is not None else []
        route(m, act.wr, [(seq.in_phase.active, sin.act_wr), (elt.cmd.busy, elt.act_wr), *xw,
                          (None, eng.act_wr)])
        route(m, act.rd, [(seq.out_phase.active, sout.act_rd), (elt.cmd.busy, elt.act_rd), *xr,
                          (None, eng.act_rd)])
        return m


def _share_ext(m: Module, port, masters) -> None:
    """Two DMAs take turns on the external-memory ``port``: the first while its condition
    holds, else the second (each sees the port's responses, ready only when it has it)."""
    (cond, first), (_, second) = masters
    for name in ("req", "wdata"):
        p, f, s = getattr(port, name), getattr(first, name), getattr(second, name)
        m.d.comb += [p.valid.eq(Mux(cond, f.valid, s.valid)),
                     p.payload.eq(Mux(cond, f.payload.as_value(), s.payload.as_value())),
                     f.ready.eq(p.ready & cond), s.ready.eq(p.ready & ~cond)]
    m.d.comb += [first.resp.valid.eq(port.resp.valid & cond),
                 second.resp.valid.eq(port.resp.valid & ~cond),
                 first.resp.payload.eq(port.resp.payload), second.resp.payload.eq(port.resp.payload),
                 port.resp.ready.eq(Mux(cond, first.resp.ready, second.resp.ready))]
