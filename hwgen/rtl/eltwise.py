"""Vector-wide elementwise units: residual add and max/avg pooling.

Both are ``lanes``-wide (default ``arch.rows``, the activation scratchpad's
read lanes), take ``in_valid`` and produce ``out_valid`` a fixed
:meth:`latency` later (two stages, the rounding/saturation of
:func:`hwgen.rtl.postproc.round_clamp`), with no backpressure. ``out_bits``
(2..``out_width``) and ``relu`` travel with the data.

ResidualAdd (``mapping.quant.requantize_add``)
    ``y = clamp((a*ma + b*mb + (1 << (sh-1))) >> sh, qrange(out_bits, relu))``
    with both operands presented in the same cycle (the controller holds the
    first operand it reads in a register). Built with ``mul=True`` (a program with a
    tensor multiply, ``EltKind.MUL``) it also multiplies: with ``mul`` high,
    ``y = clamp((wrap(a*b, acc_bits)*ma + (1 << (sh-1))) >> sh, qrange(out_bits, relu))``
    (``mapping.quant``'s ``mul`` of two tensors), the product registered first (one stage
    more: :meth:`ResidualAdd.mul_latency`) and then through the ``ma`` multiplier of the add.

Lookup (``act`` of ``mapping.quant``: :func:`mapping.quant.lut`)
    ``out = table[base + in]`` per lane: the address is registered (stage 1),
    then read from the lookup ROM (stage 2, one ``lib.memory`` copy per lane,
    all holding every table of the program; depth padded to a power of two so
    any address is in range). ``base`` is the ROM address of input value 0.

Pool (``maxpool2d`` / ``avgpool2d`` of ``mapping.quant``)
    One window element (one value per lane) per valid cycle; ``in_first``
    marks the first element of a window, ``in_last`` the last; the result
    leaves :meth:`Pool.latency` cycles after the ``in_last`` element.
    ``in_pad`` marks a padding element: it never wins a max and adds 0 to a
    sum. ``avg`` selects average pooling: the window sum (``arch.acc_bits``
    wide, so windows up to ``2**(acc_bits - in_bits)`` elements are exact) is
    requantised with ``mult``/``shift`` (the multiplier of ``1/window``);
    max pooling only saturates to ``qrange(out_bits, relu)``.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import LUT_ADDR_BITS, OUT_BITS_BITS, max_avg_window
from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.postproc import STAGES, check_lanes, check_out_width, round_clamp
from mapping.hwconst import bits_for
from mapping.quant import MULT_BITS, SHIFT_BITS


class _LaneUnit(CheckedComponent):
    """An element-wise unit ``lanes`` wide (default ``arch.rows``) whose results are
    ``out_width`` bits (default ``arch.in_bits``); both checked before it exists."""

    @classmethod
    def check(cls, arch, lanes: int | None = None, out_width: int | None = None) -> None:
        check_lanes(arch.rows if lanes is None else lanes)
        check_out_width(arch.in_bits if out_width is None else out_width)

    def __init__(self, arch, signature: dict, lanes: int | None, out_width: int | None):
        self.arch = arch
        self.lanes = arch.rows if lanes is None else lanes
        self.out_width = arch.in_bits if out_width is None else out_width
        super().__init__(signature)


class ResidualAdd(_LaneUnit):
    """``lanes``-wide requantising add of two activation vectors ``a`` and ``b``.

    Ports: ``in_valid``, ``a``, ``b`` (signed ``arch.in_bits`` per lane), ``ma``,
    ``mb`` (unsigned ``MULT_BITS``), ``shift`` (unsigned ``SHIFT_BITS``, 1..62), ``out_bits``, ``relu``;
    ``out_valid``, ``out`` (signed ``out_width``, default ``arch.in_bits``). With ``mul=True``
    also ``mul`` (held for the layer): multiply instead of add (module docstring).
    """

    @classmethod
    def check(cls, arch, lanes: int | None = None, out_width: int | None = None,
              mul: bool = False) -> None:
        super().check(arch, lanes, out_width)

    def __init__(self, arch, lanes: int | None = None, out_width: int | None = None,
                 mul: bool = False):
        lanes = arch.rows if lanes is None else lanes
        out_width = arch.in_bits if out_width is None else out_width
        vec = data.ArrayLayout(signed(arch.in_bits), lanes)
        self.has_mul = bool(mul)
        super().__init__(arch, {
            "in_valid": In(1), "a": In(vec), "b": In(vec),
            "ma": In(MULT_BITS), "mb": In(MULT_BITS), "shift": In(SHIFT_BITS),
            "out_bits": In(OUT_BITS_BITS), "relu": In(1),
            **({"mul": In(1)} if self.has_mul else {}),
            "out_valid": Out(1), "out": Out(data.ArrayLayout(signed(out_width), lanes)),
        }, lanes, out_width)

    @staticmethod
    def latency(arch=None) -> int:
        """Cycles from ``in_valid`` to ``out_valid`` of an add."""
        return STAGES

    @staticmethod
    def mul_latency(arch=None) -> int:
        """Cycles from ``in_valid`` to ``out_valid`` of a multiply: the product register, then
        the add's stages."""
        return 1 + STAGES

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        v1, ob1, relu1 = Signal(), Signal(OUT_BITS_BITS), Signal()
        sh1 = Signal(SHIFT_BITS)
        valid, prods, pw = self.in_valid, None, a.in_bits + 1
        if self.has_mul:
            pw = min(2 * a.in_bits, a.acc_bits)  # the product wraps to acc_bits, as golden's
            pv = Signal()
            m.d.sync += pv.eq(self.in_valid & self.mul)
            valid = Mux(self.mul, pv, self.in_valid)
            prods = [Signal(signed(pw), name=f"prod{j}") for j in range(self.lanes)]
            for j, pr in enumerate(prods):  # assignment truncates: wrap modulo 2**pw
                m.d.sync += pr.eq(self.a[j] * self.b[j])
        m.d.sync += [v1.eq(valid), ob1.eq(self.out_bits), relu1.eq(self.relu),
                     sh1.eq(self.shift), self.out_valid.eq(v1)]
        width = max(a.in_bits + 1, pw) + MULT_BITS + 1
        for j in range(self.lanes):
            p = Signal(signed(width), name=f"p{j}")
            if prods is None:
                m.d.sync += p.eq(self.a[j] * self.ma + self.b[j] * self.mb)
            else:  # one ma multiplier for both: the add's a, or the product
                x = Mux(self.mul, prods[j], self.a[j])
                y = Mux(self.mul, 0, self.b[j])
                m.d.sync += p.eq(x * self.ma + y * self.mb)
            m.d.sync += self.out[j].eq(round_clamp(m, p, sh1, ob1, relu1, self.out_width))
        return m


class Pool(_LaneUnit):
    """``lanes``-wide max/avg pooling over windows streamed one element per cycle.

    Ports: ``in_valid``, ``in_first``, ``in_last``, ``in_pad``, ``in_data``
    (signed ``arch.in_bits`` per lane), ``avg`` (0: max, 1: average), ``mult``
    (unsigned ``MULT_BITS``), ``shift`` (unsigned ``SHIFT_BITS``), ``out_bits``, ``relu``; ``out_valid``,
    ``out`` (signed ``out_width``, default ``arch.in_bits``). ``avg``, ``mult``,
    ``shift``, ``out_bits``, ``relu`` are sampled with the ``in_last`` element.
    ``avg=False``: built for max pooling only (no window sum, no multiplier; the ``avg``,
    ``mult`` and ``shift`` ports are ignored).
    """

    @classmethod
    def check(cls, arch, lanes: int | None = None, out_width: int | None = None,
              avg: bool = True) -> None:
        super().check(arch, lanes, out_width)

    def __init__(self, arch, lanes: int | None = None, out_width: int | None = None,
                 avg: bool = True):
        self.has_avg = bool(avg)
        lanes = arch.rows if lanes is None else lanes
        out_width = arch.in_bits if out_width is None else out_width
        super().__init__(arch, {
            "in_valid": In(1), "in_first": In(1), "in_last": In(1), "in_pad": In(1),
            "in_data": In(data.ArrayLayout(signed(arch.in_bits), lanes)),
            "avg": In(1), "mult": In(MULT_BITS), "shift": In(SHIFT_BITS),
            "out_bits": In(OUT_BITS_BITS), "relu": In(1),
            "out_valid": Out(1), "out": Out(data.ArrayLayout(signed(out_width), lanes)),
        }, lanes, out_width)

    @staticmethod
    def latency(arch=None) -> int:
        """Cycles from the ``in_last`` element to ``out_valid``."""
        return STAGES

    @staticmethod
    def max_window(arch) -> int:
        """Largest window whose sum is exact in the ``acc_bits``-wide accumulator."""
        return max_avg_window(arch)

    def elaborate(self, platform):
        m = Module()
        A, B = self.arch.acc_bits, self.arch.in_bits
        if not self.has_avg:  # max pooling only: a running max of in_bits
            A = B  # noqa: N806
        avg = self.avg if self.has_avg else Const(0)
        done = self.in_valid & self.in_last
        v1, ob1, relu1 = Signal(), Signal(OUT_BITS_BITS), Signal()
        sh1 = Signal(SHIFT_BITS)
        m.d.sync += [v1.eq(done), ob1.eq(self.out_bits), relu1.eq(self.relu),
                     sh1.eq(Mux(avg, self.shift, 0)), self.out_valid.eq(v1)]
        lowest = -(1 << (B - 1))
        for j in range(self.lanes):
            run = Signal(signed(A), name=f"run{j}")  # running max or sum of the window
            elem = Signal(signed(B), name=f"elem{j}")
            m.d.comb += elem.eq(Mux(self.in_pad, Mux(avg, 0, lowest), self.in_data[j]))
            base = Mux(self.in_first, Mux(avg, 0, lowest), run)
            nxt = Signal(signed(A), name=f"next{j}")
            if self.has_avg:
                m.d.comb += nxt.eq(Mux(avg, base + elem, Mux(elem > base, elem, base)))
            else:
                m.d.comb += nxt.eq(Mux(elem > base, elem, base))
            with m.If(self.in_valid):
                m.d.sync += run.eq(nxt)
            p = Signal(signed(A + MULT_BITS + 1), name=f"p{j}")
            m.d.sync += p.eq(Mux(avg, nxt * self.mult, nxt) if self.has_avg else nxt)
            m.d.sync += self.out[j].eq(round_clamp(m, p, sh1, ob1, relu1, self.out_width))
        return m


class Lookup(_LaneUnit):
    """``lanes``-wide table lookup (the ``act`` lookup-table activation).

    ``table``: the lookup ROM (every table of the program, ``Program.luts``), signed
    ``arch.in_bits`` entries. Ports: ``in_valid``, ``in_data`` (signed ``arch.in_bits``
    per lane), ``base`` (unsigned ``LUT_ADDR_BITS``: the ROM address of input value 0);
    ``out_valid``, ``out`` (``table[base + in_data]`` per lane), :meth:`latency` cycles
    after ``in_valid``.
    """

    @classmethod
    def check(cls, arch, table: list[int], lanes: int | None = None) -> None:
        super().check(arch, lanes)
        lo, hi = -(1 << (arch.in_bits - 1)), (1 << (arch.in_bits - 1)) - 1
        if not table or any(not lo <= int(v) <= hi for v in table):
            raise ValueError(f"the lookup table needs at least one entry, each a signed "
                             f"{arch.in_bits}-bit value ({lo}..{hi})")

    def __init__(self, arch, table: list[int], lanes: int | None = None):
        lanes = arch.rows if lanes is None else lanes
        self.addr_bits = bits_for(len(table))
        self.depth = 1 << self.addr_bits  # every address in range
        self.table = [int(v) for v in table] + [0] * (self.depth - len(table))
        vec = data.ArrayLayout(signed(arch.in_bits), lanes)
        super().__init__(arch, {
            "in_valid": In(1), "in_data": In(vec), "base": In(LUT_ADDR_BITS),
            "out_valid": Out(1), "out": Out(vec),
        }, lanes, arch.in_bits)

    @staticmethod
    def latency(arch=None) -> int:
        """Cycles from ``in_valid`` to ``out_valid``: address register + ROM read."""
        return STAGES

    def elaborate(self, platform):
        m = Module()
        v1 = Signal()
        m.d.sync += [v1.eq(self.in_valid), self.out_valid.eq(v1)]
        for j in range(self.lanes):
            addr = Signal(self.addr_bits, name=f"addr{j}")
            m.d.sync += addr.eq((self.base + self.in_data[j])[:self.addr_bits])
            rom = memory.Memory(shape=signed(self.arch.in_bits), depth=self.depth,
                                init=self.table)
            m.submodules[f"rom_copy{j}"] = rom
            rp = rom.read_port()
            m.d.comb += [rp.addr.eq(addr), self.out[j].eq(rp.data)]
        return m
