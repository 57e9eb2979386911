"""Post-processing: bias add and requantisation of accumulator rows.

Per lane (``mapping.quant.requantize`` of the wrapped biased accumulator)::

    x = wrap(acc + bias, acc_bits)
    y = clamp((x * mult + (1 << (shift - 1))) >> shift, qrange(out_bits, relu))

``>>`` is an arithmetic (floor) shift. The hardware computes the rounding as
``((x * mult) >> (shift - 1)) + 1) >> 1``, which equals the formula above for
every integer (``floor((q + 1) / 2)`` with ``q = floor(p / 2**(shift-1))``) and
needs no 63-bit rounding constant. ``shift == 0`` passes the product through
unrounded (``mapping.quant`` never produces it; the pooling unit uses it for
max pooling).

Two pipeline stages (:meth:`PostProc.latency`): (1) bias add and the
``acc_bits x 15`` multiply, (2) variable arithmetic shift, round, saturate.
``out_bits`` and ``relu`` travel with the data, so they may change between
consecutive rows.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed

from hwgen.compiler.isa import OUT_BITS_BITS
from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.interfaces import postproc_signature
from mapping.quant import MULT_BITS, SHIFT_BITS

STAGES = 2  # pipeline registers of PostProc, Pool and ResidualAdd


def check_lanes(lanes, what: str = "lanes") -> int:
    if not isinstance(lanes, int) or isinstance(lanes, bool) or not 1 <= lanes <= 256:
        raise ValueError(f"{what} = {lanes!r} is invalid: must be an integer from 1 to 256")
    return lanes


def round_clamp(m: Module, p, shift, out_bits, relu, out_width: int):
    """Combinational ``clamp(round_shift(p, shift), qrange(out_bits, relu))``.

    ``p`` is a signed value, ``shift`` an unsigned amount (0: no rounding),
    ``out_bits`` the run-time output width (2..``out_width``), ``relu`` a bit.
    Returns a ``signed(out_width)`` value.
    """
    width = len(p) + 1
    shifted = Signal(signed(width))
    m.d.comb += shifted.eq(Mux(shift == 0, p,
                               ((p >> (shift - 1)[:len(shift)]) + 1) >> 1))
    hi = Signal(signed(out_width + 1))
    lo = Signal(signed(out_width + 1))
    m.d.comb += hi.eq((Const(1, 2) << (out_bits - 1)[:len(out_bits)]) - 1)
    m.d.comb += lo.eq(Mux(relu, 0, -hi - 1))
    y = Signal(signed(out_width))
    with m.If(shifted > hi):
        m.d.comb += y.eq(hi)
    with m.Elif(shifted < lo):
        m.d.comb += y.eq(lo)
    with m.Else():
        m.d.comb += y.eq(shifted)
    return y


def check_out_width(out_width) -> int:
    if not isinstance(out_width, int) or isinstance(out_width, bool) or not 2 <= out_width <= 16:
        raise ValueError(f"out_width = {out_width!r} is invalid: must be an integer from 2 to 16")
    return out_width


class PostProc(CheckedComponent):
    """``lanes``-wide bias add + requantisation pipeline (default ``lanes = arch.cols``).

    Ports (:func:`~hwgen.rtl.interfaces.postproc_signature`, flipped): ``in_valid``;
    per lane ``acc``/``bias`` (signed ``acc_bits``), ``mult`` (unsigned
    ``MULT_BITS``), ``shift`` (unsigned ``SHIFT_BITS``); ``out_bits``
    (2..``out_width``, default ``arch.in_bits``) and ``relu`` for the row;
    ``out_valid`` and ``out`` (signed ``out_width``) :meth:`latency` cycles later.
    """

    @classmethod
    def check(cls, arch, lanes: int | None = None, out_width: int | None = None) -> None:
        check_lanes(arch.cols if lanes is None else lanes)
        check_out_width(arch.in_bits if out_width is None else out_width)

    def __init__(self, arch, lanes: int | None = None, out_width: int | None = None):
        self.arch = arch
        self.lanes = arch.cols if lanes is None else lanes
        self.out_width = arch.in_bits if out_width is None else out_width
        super().__init__(postproc_signature(arch, self.lanes, self.out_width).flip())

    @staticmethod
    def latency(arch=None) -> int:
        """Cycles from ``in_valid`` to ``out_valid`` (the same for every ArchSpec)."""
        return STAGES

    def elaborate(self, platform):
        m = Module()
        A = self.arch.acc_bits
        v1 = Signal()
        ob1 = Signal(OUT_BITS_BITS)
        relu1 = Signal()
        m.d.sync += [v1.eq(self.in_valid), ob1.eq(self.out_bits), relu1.eq(self.relu),
                     self.out_valid.eq(v1)]
        for j in range(self.lanes):
            # stage 1: wrap(acc + bias) * mult
            x = Signal(signed(A), name=f"x{j}")
            m.d.comb += x.eq(self.acc[j] + self.bias[j])  # truncation = wrap to acc_bits
            prod = Signal(signed(A + MULT_BITS + 1), name=f"prod{j}")
            sh = Signal(SHIFT_BITS, name=f"shift{j}")
            m.d.sync += [prod.eq(x * self.mult[j]), sh.eq(self.shift[j])]
            # stage 2: round, shift, saturate
            y = round_clamp(m, prod, sh, ob1, relu1, self.out_width)
            m.d.sync += self.out[j].eq(y)
        return m
