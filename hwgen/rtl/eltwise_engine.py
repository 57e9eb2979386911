"""The element-wise engine: one pooling, residual-add or lookup-table layer (one ELT word).

Both kinds work on ``rows`` consecutive elements at a time (the activation
scratchpad's ``rows`` read lanes; the write port is ``max(rows, cols)`` wide)
and issue one scratchpad read per cycle, back to back from the cycle after
``go`` (the sequencer's decode cycle) to the last issue; every result is
written ``mapping.timing.ELT_LATENCY`` = 3 cycles after the read that completes
it (scratchpad read 1 + ``Pool``/``ResidualAdd`` 2). So a layer of ``I`` issue
cycles keeps ``busy`` high for ``I + 3`` cycles (docs/timing.md).

Pool (``hwgen.rtl.eltwise.Pool``): for each output pixel ``(n, p, q)`` in NHWC
order, for each group of ``rows`` channels, for each window tap ``(i, j)``
(row-major): one read of ``rows`` consecutive channels of input pixel
``(p*sh - ph + i, q*sw - pw + j)``; taps outside the input are padding
(``in_pad``). Issue cycles: ``N*P*Q * ceil(C/rows) * kh*kw``. The window
origin ``pix`` and ``(hp, wq)`` follow a mixed-radix walk with compiled deltas
(``dq``, ``dp``, ``dn``), the tap offset ``koff`` one with ``C`` and ``dtap``.

Add (``hwgen.rtl.eltwise.ResidualAdd``): for each group of ``rows`` elements, one
cycle reads ``a`` (``src``), the next ``b`` (``src2``); ``a`` is held one cycle
so both reach the unit together. Issue cycles: ``2 * ceil(elements/rows)``.

Lookup (``hwgen.rtl.eltwise.Lookup``, only built when the program has lookup tables):
for each group of ``rows`` elements one read of ``src``; each lane's value indexes the
lookup ROM at ``tab + value``. Issue cycles: ``ceil(elements/rows)``.

Copy (``EltKind.COPY``: concatenation, broadcast): for each of ``N`` pixels, for each
group of ``rows`` channels, one read at ``pix + c0`` written at ``obase + c0``; after a
pixel's last group ``pix`` steps by ``dq`` (source pixel stride) and ``obase`` by ``dp``
(destination pixel stride). The values pass through the ``Pool`` unit as a one-tap max
(the compiler encodes ``kh = kw = H = W = 1``), so no datapath of its own. Issue cycles:
``N * ceil(count/rows)``.

Multiply (``EltKind.MUL``: a squeeze-excitation gate ``x * s``, only built when the program
has one): the copy walk with two reads per group of ``rows`` channels, ``x`` at ``pix + c0``
and then the gate at ``src2 + c0`` (the same for every pixel; a same-shape product is one
pixel of all its elements), through ``ResidualAdd`` built with its multiply mode; each result
written ``mapping.timing.MUL_LATENCY`` = 4 cycles after the gate's read. Issue cycles:
``2 * N * ceil(count/rows)``.

Depthwise convolution (``hwgen.rtl.depthwise.DepthwiseMac``, only built when the program
has depthwise layers): the pool walk, with the tap offsets stepping by the dilations
(``ma``, ``mb``; the in-row address step ``dcol``) and, beside it, the depthwise ROM rows
(weights: ``tab`` + running tap count of the pixel; parameters: ``src2`` + channel
group). Issue cycles as a pool; results written ``mapping.timing.DW_LATENCY`` = 4 cycles
after the read of a window's last tap.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import EltKind, delta_bits, dims_bits
from hwgen.rtl.depthwise import DW_ADDR_BITS, DepthwiseMac
from hwgen.rtl.eltwise import Lookup, Pool, ResidualAdd
from hwgen.rtl.interfaces import act_read_signature, act_write_signature, elt_command_signature
from mapping.arch import ArchSpec
from mapping.hwconst import bits_for
from mapping.timing import (
    DW_LATENCY,  # scratchpad read (1) + DepthwiseMac (3)
    ELT_LATENCY,  # scratchpad read (1) + Pool / ResidualAdd (2)
    MUL_LATENCY,  # scratchpad read (1) + product (1) + ResidualAdd (2)
)


class EltwiseEngine(wiring.Component):
    """Runs one ELT instruction. ``cmd`` (:func:`~hwgen.rtl.interfaces.elt_command_signature`):
    ``go`` takes ``instr``; ``busy`` is high from the cycle after ``go`` to the layer's
    last scratchpad write, inclusive.

    Masters of ``act_rd`` (``rows`` lanes) and ``act_wr`` (``rows`` consecutive lanes)
    of the activation scratchpad. What a program never uses is not built: the ``Pool`` unit
    always (max pooling; its window sum and multiplier only when ``avgs``: the program has
    an average pool); ``ResidualAdd`` when ``adds`` or ``muls`` (its multiply mode and the
    multiply walk only when ``muls``); the ``Lookup`` unit with its ROM of ``luts``
    (``Program.luts``) when there are any; the depthwise MAC when there are depthwise
    weights; the copy walk when ``copies``.
    """

    def __init__(self, arch: ArchSpec, luts: list[int] | None = None,
                 dw_weights: list[int] | None = None, dw_params: list[int] | None = None,
                 copies: bool = False, muls: bool = False, avgs: bool = True,
                 adds: bool = True):
        self.arch = arch
        self.copies = copies  # the copy walk is built only for a program with copy layers
        self.muls = muls  # the multiply walk and product stage: only with multiply layers
        self.avgs = avgs  # the average pool's sum and multiplier: only with average pools
        self.adds = adds or muls  # ResidualAdd: only with add (or multiply) layers
        self.luts = list(luts or [])
        self.dw_weights, self.dw_params = list(dw_weights or []), list(dw_params or [])
        super().__init__({
            "cmd": In(elt_command_signature(arch)),
            "act_rd": Out(act_read_signature(arch)),
            "act_wr": Out(act_write_signature(arch, arch.rows)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        R = a.rows  # noqa: N806
        db, sb = dims_bits(a), delta_bits(a)
        aw = bits_for(a.act_words)
        cmd, rd_data = self.cmd, self.act_rd.data
        pool = m.submodules.pool = Pool(a, lanes=R, avg=self.avgs)
        add = None
        if self.adds:
            add = m.submodules.add = ResidualAdd(a, lanes=R, mul=self.muls)
        lut = None
        if self.luts:
            lut = m.submodules.lut = Lookup(a, self.luts, lanes=R)
        dw = None
        if self.dw_weights:
            dw = m.submodules.dw = DepthwiseMac(a, self.dw_weights, self.dw_params, lanes=R)

        ins = Signal.like(cmd.instr)
        lats = [ELT_LATENCY] + ([DW_LATENCY] if dw is not None else []) \
            + ([MUL_LATENCY] if self.muls else [])
        cnt = Signal(range(max(lats) + 1))
        issue = Signal()
        is_add = (ins.kind == EltKind.ADD) if add is not None else Const(0)
        # copy: through the Pool unit as a one-tap max; no walk built when the program has none
        is_copy = (ins.kind == EltKind.COPY) if self.copies else Const(0)
        is_lut = (ins.kind == EltKind.LUT) if lut is not None else Const(0)
        is_mul = (ins.kind == EltKind.MUL) if self.muls else Const(0)
        flat = is_add | is_lut  # walks consecutive elements (add, lut), not pool windows
        # pool walk
        i, j, c0, q, p, n = (Signal(db, name=x) for x in ("tap_i", "tap_j", "c0", "q", "p", "n"))
        koff, pix, hp, wq = (Signal(signed(sb), name=x) for x in ("koff", "pix", "hp", "wq"))
        obase = Signal(aw + 1)
        # depthwise: tap offsets in input rows / columns (dilated), ROM rows
        ih, jw = (i, j) if dw is None else (Signal(db, name="tap_ih"), Signal(db, name="tap_jw"))
        is_dw = (ins.kind == EltKind.DW) if dw is not None else Const(0)
        wrow, prow = Signal(DW_ADDR_BITS), Signal(DW_ADDR_BITS)
        latency = ELT_LATENCY if dw is None else Mux(is_dw, DW_LATENCY, ELT_LATENCY)
        # add walk
        off = Signal(db + 1)
        sub = Signal()  # 0: operand a, 1: operand b

        h, w = hp + ih, wq + jw
        pad = ~((h >= 0) & (h < ins.H) & (w >= 0) & (w < ins.W))
        first = (i == 0) & (j == 0)
        last_tap = (i == ins.kh - 1) & (j == ins.kw - 1)
        done_pix = (q == ins.Q - 1) & (p == ins.P - 1) & (n == ins.N - 1)
        walk = pix + koff if not self.muls else Mux(is_mul & sub, ins.src2, pix + koff)
        base = Mux(flat, Mux(sub, ins.src2, ins.src) + off, walk + c0)
        wr_at = Mux(flat, ins.dst + off, obase + c0)
        left = Mux(flat, ins.count - off, ins.count - c0)
        m.d.comb += self.act_rd.en.eq(issue)
        for r in range(R):
            m.d.comb += self.act_rd.addr[r].eq(base + r)

        with m.FSM(name="elt"):
            with m.State("IDLE"):
                with m.If(cmd.go):
                    g = cmd.instr
                    m.d.sync += [ins.eq(g), i.eq(0), j.eq(0), koff.eq(0), c0.eq(0),
                                 q.eq(0), p.eq(0), n.eq(0), pix.eq(g.pix0), hp.eq(g.hp0),
                                 wq.eq(g.wq0), obase.eq(g.dst), off.eq(0), sub.eq(0)]
                    if dw is not None:
                        m.d.sync += [ih.eq(0), jw.eq(0), wrow.eq(g.tab), prow.eq(g.src2)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):  # one read per cycle
                m.d.comb += [cmd.busy.eq(1), issue.eq(1)]
                with m.If(is_add):
                    m.d.sync += sub.eq(~sub)
                    with m.If(sub):
                        m.d.sync += off.eq(off + R)
                        with m.If(off + R >= ins.count):
                            m.d.sync += cnt.eq(ELT_LATENCY)
                            m.next = "DRAIN"
                with m.Elif(is_lut):  # one read per group
                    m.d.sync += off.eq(off + R)
                    with m.If(off + R >= ins.count):
                        m.d.sync += cnt.eq(ELT_LATENCY)
                        m.next = "DRAIN"
                with m.Elif((is_copy | is_mul) if self.muls else is_copy):  # the copy walk
                    group_done = Const(1)  # copy: one read per group; multiply: x, the gate
                    if self.muls:
                        m.d.sync += sub.eq(is_mul & ~sub)
                        group_done = ~is_mul | sub
                    with m.If(group_done):  # next channel group, then the next pixel
                        m.d.sync += c0.eq(c0 + R)
                        with m.If(c0 + R >= ins.count):
                            m.d.sync += [c0.eq(0), n.eq(n + 1), pix.eq(pix + ins.dq),
                                         obase.eq(obase + ins.dp)]
                            with m.If(n == ins.N - 1):
                                m.d.sync += cnt.eq(Mux(is_mul, MUL_LATENCY, ELT_LATENCY)
                                                   if self.muls else ELT_LATENCY)
                                m.next = "DRAIN"
                with m.Elif(last_tap):  # pool: the window is done
                    m.d.sync += [i.eq(0), j.eq(0), koff.eq(0), c0.eq(c0 + R)]
                    if dw is not None:
                        m.d.sync += [ih.eq(0), jw.eq(0), wrow.eq(wrow + 1), prow.eq(prow + 1)]
                    with m.If(c0 + R >= ins.count):  # last channel group: next pixel
                        m.d.sync += [c0.eq(0), obase.eq(obase + ins.count)]
                        if dw is not None:
                            m.d.sync += [wrow.eq(ins.tab), prow.eq(ins.src2)]
                        with m.If(done_pix):
                            m.d.sync += cnt.eq(latency)
                            m.next = "DRAIN"
                        with m.If(q == ins.Q - 1):
                            m.d.sync += [q.eq(0), wq.eq(ins.wq0)]
                            with m.If(p == ins.P - 1):
                                m.d.sync += [p.eq(0), hp.eq(ins.hp0), n.eq(n + 1),
                                             pix.eq(pix + ins.dn)]
                            with m.Else():
                                m.d.sync += [p.eq(p + 1), hp.eq(hp + ins.sh),
                                             pix.eq(pix + ins.dp)]
                        with m.Else():
                            m.d.sync += [q.eq(q + 1), wq.eq(wq + ins.sw), pix.eq(pix + ins.dq)]
                with m.Elif(j == ins.kw - 1):  # pool: next kernel row
                    m.d.sync += [j.eq(0), i.eq(i + 1), koff.eq(koff + ins.dtap)]
                    if dw is not None:
                        m.d.sync += [jw.eq(0), ih.eq(ih + Mux(is_dw, ins.ma, 1)),
                                     wrow.eq(wrow + 1)]
                with m.Else():  # pool: next tap of the row
                    m.d.sync += [j.eq(j + 1),
                                 koff.eq(koff + (ins.count if dw is None else
                                                 Mux(is_dw, ins.dcol, ins.count)))]
                    if dw is not None:
                        m.d.sync += [jw.eq(jw + Mux(is_dw, ins.mb, 1)), wrow.eq(wrow + 1)]
            with m.State("DRAIN"):  # the last results are on their way
                m.d.comb += cmd.busy.eq(1)
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 1):
                    m.next = "IDLE"

        # --------------------------------------------------------- datapath
        v1, first1, last1, pad1, sub1 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(issue), first1.eq(first), last1.eq(last_tap), pad1.eq(pad),
                     sub1.eq(sub)]
        hold = Signal.like(rd_data)
        two = (is_add | is_mul) if self.muls else is_add  # the first operand is held
        pool_valid = v1 & ~flat  # not the kinds with units of their own
        if dw is not None:
            pool_valid = pool_valid & ~is_dw
        if self.muls:
            pool_valid = pool_valid & ~is_mul
        with m.If(v1 & two & ~sub1):
            m.d.sync += hold.eq(rd_data)
        m.d.comb += [
            pool.in_valid.eq(pool_valid),
            pool.in_first.eq(first1), pool.in_last.eq(last1),
            pool.in_pad.eq(pad1), pool.in_data.eq(rd_data),
            pool.avg.eq(ins.kind == EltKind.AVG), pool.mult.eq(ins.ma), pool.shift.eq(ins.shift),
            pool.out_bits.eq(ins.out_bits), pool.relu.eq(ins.relu),
        ]
        if add is not None:
            m.d.comb += [
                add.in_valid.eq(v1 & two & sub1), add.a.eq(hold), add.b.eq(rd_data),
                add.ma.eq(ins.ma), add.mb.eq(ins.mb), add.shift.eq(ins.shift),
                add.out_bits.eq(ins.out_bits), add.relu.eq(ins.relu),
            ]
        # the write address and valid lanes travel ELT_LATENCY cycles beside the data
        wa, wc = Signal(aw, name="wr_at0"), Signal(range(R + 1), name="wr_cw0")
        m.d.comb += [wa.eq(wr_at), wc.eq(Mux(left > R, R, left))]
        if self.muls:
            m.d.comb += add.mul.eq(is_mul)
        taps = {}
        for k in range(max(lats)):
            na, nc = Signal.like(wa, name=f"wr_at{k + 1}"), Signal.like(wc, name=f"wr_cw{k + 1}")
            m.d.sync += [na.eq(wa), nc.eq(wc)]
            wa, wc = na, nc
            taps[k + 1] = (wa, wc)
        wa, wc = taps[ELT_LATENCY]
        if dw is not None:  # a depthwise result is DW_LATENCY cycles behind its read
            wa = Mux(is_dw, taps[DW_LATENCY][0], wa)
            wc = Mux(is_dw, taps[DW_LATENCY][1], wc)
        if self.muls:  # a product is MUL_LATENCY cycles behind the gate's read
            wa = Mux(is_mul, taps[MUL_LATENCY][0], wa)
            wc = Mux(is_mul, taps[MUL_LATENCY][1], wc)
        out_valid, out_data = pool.out_valid, pool.out.as_value()
        if add is not None:
            out_valid = Mux(two, add.out_valid, out_valid)
            out_data = Mux(two, add.out.as_value(), out_data)
        if lut is not None:
            m.d.comb += [lut.in_valid.eq(v1 & is_lut), lut.in_data.eq(rd_data),
                         lut.base.eq(ins.tab)]
            out_valid = Mux(is_lut, lut.out_valid, out_valid)
            out_data = Mux(is_lut, lut.out.as_value(), out_data)
        if dw is not None:
            m.d.comb += [dw.w_addr.eq(wrow), dw.p_addr.eq(prow), dw.in_valid.eq(v1 & is_dw),
                         dw.in_first.eq(first1), dw.in_last.eq(last1), dw.in_pad.eq(pad1),
                         dw.in_data.eq(rd_data), dw.out_bits.eq(ins.out_bits),
                         dw.relu.eq(ins.relu)]
            out_valid = Mux(is_dw, dw.out_valid, out_valid)
            out_data = Mux(is_dw, dw.out.as_value(), out_data)
        m.d.comb += [
            self.act_wr.addr.eq(wa),
            self.act_wr.mask.eq(Mux(out_valid, Array(((1 << x) - 1) for x in range(R + 1))[wc],
                                    0)),
            self.act_wr.data.eq(out_data),
        ]
        return m
