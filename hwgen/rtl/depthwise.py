"""The depthwise-convolution unit of the element-wise engine (``EltKind.DW``).

Why not the array: a weight-stationary systolic array shares each input activation across
its ``cols`` columns (the output channels). In a depthwise convolution (``groups`` = in
channels = out channels) every input channel feeds exactly one output channel, so the
array could use one column per pass, or multiply zeros in all the others. The
element-wise engine already walks ``kh x kw`` windows with strides and padding over an
NHWC tensor, ``rows`` channels in parallel lanes (the pooling walk); ``DepthwiseMac``
gives each lane a multiply-accumulate instead of a max/sum:

    acc[c] = wrap(sum over taps of x[tap, c] * w[c, tap], acc_bits)    (padding taps: 0)
    out[c] = requantize(wrap(acc[c] + bias[c]), mult[c], shift[c], out_bits, relu)

the requantisation being ``hwgen.rtl.postproc.PostProc`` itself (the array's
post-processing, ``mapping.quant.requantize``), so golden, array and depthwise layers share
one arithmetic. The weights and per-channel parameters are two ROMs built from the
program (``Program.dw_weights``: one row of ``rows`` weights per channel group and kernel
tap, in walk order; ``Program.dw_params``: one row of ``rows`` parameter-table entries,
``hwgen.compiler.isa.param_layout``, per channel group), shared by every depthwise layer.

Timing (``mapping.timing.DW_LATENCY`` = 4 from the read of a window's last tap to its
write): the engine presents ``w_addr``/``p_addr`` in the cycle it reads the scratchpad;
the data, the ROM rows and ``in_*`` arrive the cycle after (MAC, registered: 1), then
``PostProc`` (2). ``DepthwiseMac.latency()`` = 3 counts from that data cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import LUT_ADDR_BITS, OUT_BITS_BITS, param_layout
from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.postproc import STAGES, PostProc, check_lanes
from mapping.hwconst import bits_for

DW_ADDR_BITS = LUT_ADDR_BITS  # ROM row addresses (the ELT word's ``tab`` field)


def _rom(m: Module, name: str, width: int, rows: list[int], addr) -> Signal:
    """A ``width``-bit ROM of ``rows`` (depth padded to a power of two: every address in
    range), read synchronously at ``addr``; returns the read data."""
    ab = bits_for(len(rows))
    init = [int(r) for r in rows] + [0] * ((1 << ab) - len(rows))
    rom = m.submodules[name] = memory.Memory(shape=unsigned(width), depth=1 << ab, init=init)
    rp = rom.read_port()
    m.d.comb += rp.addr.eq(addr[:ab])
    return rp.data


class DepthwiseMac(CheckedComponent):
    """``lanes``-wide (default ``arch.rows``) depthwise multiply-accumulate and
    requantisation over windows streamed one tap per cycle (module docstring).

    Ports: ``w_addr``, ``p_addr`` (ROM rows, in the scratchpad-read cycle); one cycle
    later ``in_valid``, ``in_first``/``in_last`` (bracket a window), ``in_pad`` (padding
    tap: adds 0), ``in_data`` (signed ``in_bits`` per lane); ``out_bits``, ``relu`` (held
    for the layer); ``out_valid``, ``out`` (signed ``in_bits`` per lane) :meth:`latency`
    cycles after the ``in_last`` tap.
    """

    @classmethod
    def check(cls, arch, weights: list[int], params: list[int],
              lanes: int | None = None) -> None:
        check_lanes(arch.rows if lanes is None else lanes)
        if not weights or not params:
            raise ValueError("the depthwise unit needs at least one weight row and one "
                             "parameter row (a program with a depthwise layer)")

    def __init__(self, arch, weights: list[int], params: list[int], lanes: int | None = None):
        self.arch = arch
        self.lanes = arch.rows if lanes is None else lanes
        self.weights, self.params = list(weights), list(params)
        vec = data.ArrayLayout(signed(arch.in_bits), self.lanes)
        super().__init__({
            "w_addr": In(DW_ADDR_BITS), "p_addr": In(DW_ADDR_BITS),
            "in_valid": In(1), "in_first": In(1), "in_last": In(1), "in_pad": In(1),
            "in_data": In(vec), "out_bits": In(OUT_BITS_BITS), "relu": In(1),
            "out_valid": Out(1), "out": Out(vec),
        })

    @staticmethod
    def latency(arch=None) -> int:
        """Cycles from the ``in_last`` tap to ``out_valid``: MAC (1) + PostProc (2)."""
        return 1 + STAGES

    def elaborate(self, platform):
        m = Module()
        a, L = self.arch, self.lanes  # noqa: N806
        play = param_layout(a)
        wrow = _rom(m, "weight_rom", L * a.w_bits, self.weights, self.w_addr)
        prow = _rom(m, "param_rom", L * play.size, self.params, self.p_addr)
        pp = m.submodules.postproc = PostProc(a, lanes=L)
        done = Signal()  # the sums of a finished window are in `run`
        m.d.sync += done.eq(self.in_valid & self.in_last)
        m.d.comb += [pp.in_valid.eq(done), pp.out_bits.eq(self.out_bits), pp.relu.eq(self.relu),
                     self.out_valid.eq(pp.out_valid)]
        for j in range(L):
            w = Signal(signed(a.w_bits), name=f"w{j}")
            m.d.comb += w.eq(wrow[j * a.w_bits:(j + 1) * a.w_bits])
            x = Mux(self.in_pad, 0, self.in_data[j])
            run = Signal(signed(a.acc_bits), name=f"run{j}")  # wraps modulo 2**acc_bits
            with m.If(self.in_valid):
                m.d.sync += run.eq(Mux(self.in_first, 0, run) + x * w)
            par = Signal(play, name=f"par{j}")  # the window's parameters, held with `run`
            with m.If(self.in_valid & self.in_last):
                m.d.sync += par.eq(prow[j * play.size:(j + 1) * play.size])
            m.d.comb += [pp.acc[j].eq(run), pp.bias[j].eq(par.bias), pp.mult[j].eq(par.mult),
                         pp.shift[j].eq(par.shift), self.out[j].eq(pp.out[j])]
        return m
