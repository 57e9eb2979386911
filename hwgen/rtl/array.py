"""The R x C systolic PE array with skewed inputs and de-skewed outputs.

All ports carry *unskewed* vectors (see /work/notes/hw_interfaces.md and
docs/hardware.md "Datapath"); the skew and de-skew shift registers are inside.
Every input port is registered once before it enters the array.

Weight-stationary (``arch.dataflow == "ws"``), latency ``R + C``
    Vector ``a`` (``a[r]`` = activation for array row ``r``) enters row ``r``
    after ``R - r`` cycles and moves right one column per cycle; partial sums
    flow from row ``R-1`` towards row 0, which feeds the output. So PE
    ``(r, c)`` sees a vector presented at cycle ``t`` at ``t + R - r + c``,
    and column ``c`` leaves row 0 at ``t + R + c + 1``; it is delayed another
    ``C-1-c`` cycles so a whole output row appears at ``t + R + C``.
    Preloading: exactly ``R`` ``preload_valid`` cycles load a block (idle
    cycles in between are allowed), the first row presented for array row
    ``R-1``, the last for row 0. The row
    for array row ``r`` (presented at ``t1 + R-1-r``) is written into the shadow
    registers of column ``c`` at the end of cycle ``t1 + R - r + c``: never
    before the previous pass's first vector has read that shadow (which happens
    at ``t0 + R - r + c`` with ``t0 <= t1``) and always before the next pass's
    first vector reads it (``t0' >= t1 + R``). Hence passes may follow each
    other with no bubble and the next preload may start in the same cycle as the
    current pass's ``in_first`` vector.

Output-stationary (``arch.dataflow == "os"``), latency ``C + 1`` (from ``in_last``)
    ``in_data[i]`` enters row ``i`` after ``1 + i`` cycles, ``in_w[j]`` enters
    column ``j`` after ``1 + j`` cycles; PE ``(i, j)`` sees operand pair ``k``
    at ``t_k + 1 + i + j``. The ``in_last`` flag travels along the rows; a PE
    holds its finished sum for exactly one cycle (the cycle after its last
    product) while the next pass may already be accumulating. Column ``j``
    picks that sum with an R:1 AND-OR select (one-hot: row ``i`` of column
    ``j`` is done at ``t_last + 2 + i + j``) and delays it ``C-1-j`` cycles, so
    row ``i`` of the pass leaves at ``t_last + C + 1 + i``, tagged
    ``tag + i``. A pass must be at least ``R`` vectors long for back-to-back
    operation: consecutive ``in_last`` vectors must be at least ``R`` cycles
    apart (the controller waits otherwise), else two drains would overlap.
    Cycles with ``in_valid`` low are bubbles: operands are forced to zero.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed

from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.interfaces import array_signature
from hwgen.rtl.pe import PE, check_dataflow, check_widths


def delay_line(m: Module, value, cycles: int, name: str) -> list:
    """``[value, value delayed 1, ..., value delayed cycles]`` through sync registers."""
    taps = [value]
    for i in range(cycles):
        if isinstance(value, Signal):
            reg = Signal.like(value, name=f"{name}_d{i + 1}")
        else:
            reg = Signal(len(value), name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(taps[-1])
        taps.append(reg)
    return taps


def _check_arch(arch, tag_width: int) -> None:
    for f in ("rows", "cols"):
        v = getattr(arch, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"arch.{f} = {v!r} is invalid: must be a positive integer")
    check_widths(arch.in_bits, arch.w_bits, arch.acc_bits)
    check_dataflow(arch.dataflow)
    if not isinstance(tag_width, int) or isinstance(tag_width, bool) or not 1 <= tag_width <= 64:
        raise ValueError(f"tag_width = {tag_width!r} is invalid: must be an integer from 1 to 64")


class SystolicArray(CheckedComponent):
    """``arch.rows x arch.cols`` PE array for ``arch.dataflow`` with unskewed ports.

    Ports (:func:`~hwgen.rtl.interfaces.array_signature`, flipped; both dataflows):
    ``in_valid``, ``in_first``, ``in_data`` (R lanes of ``in_bits``), ``in_tag``;
    ``out_valid``, ``out_data`` (C lanes of ``acc_bits``), ``out_tag``. WS adds
    ``preload_valid``/``preload_row``; OS adds ``in_last``/``in_w``. See the
    module docstring for timing.
    """

    @classmethod
    def check(cls, arch, tag_width: int = 16) -> None:
        _check_arch(arch, tag_width)

    def __init__(self, arch, tag_width: int = 16):
        self.arch = arch
        self.tag_width = tag_width
        super().__init__(array_signature(arch, tag_width).flip())

    @staticmethod
    def latency(arch) -> int:
        """WS: cycles from an input vector to its result row. OS: cycles from a
        pass's ``in_last`` vector to its first (row 0) result row; row ``i``
        follows ``i`` cycles later."""
        if check_dataflow(arch.dataflow) == "ws":
            return arch.rows + arch.cols
        return arch.cols + 1

    @staticmethod
    def register_bits(arch, tag_width: int = 16) -> int:
        """Flip-flops of the generated array after removal of unused registers (the
        ``a``/flag outputs of the last column and, OS, the ``w`` outputs of the last row)."""
        R, C = arch.rows, arch.cols
        pe = PE.register_bits(arch.in_bits, arch.w_bits, arch.acc_bits, arch.dataflow) * R * C
        pe -= R * (arch.in_bits + 1) + (C * arch.w_bits if arch.dataflow == "os" else 0)
        if arch.dataflow == "ws":
            skew = arch.in_bits * R * (R + 1) // 2 + R  # rows delayed R-r, flag chain
            idx = max(1, (R - 1).bit_length())
            preload = (1 + idx) * C + arch.w_bits * C * (C + 1) // 2 + idx  # + counter
            deskew = arch.acc_bits * C * (C - 1) // 2
            tags = (1 + tag_width) * (R + C)
        else:
            skew = arch.in_bits * R * (R + 1) // 2 + arch.w_bits * C * (C + 1) // 2 + 2 * R
            deskew = arch.acc_bits * C * (C - 1) // 2
            tags = (1 + tag_width) * (C + 1) + tag_width + max(1, (R - 1).bit_length())
            preload = 0
        return pe + skew + preload + deskew + tags

    # ------------------------------------------------------------------ build
    def elaborate(self, platform):
        m = Module()
        arch = self.arch
        R, C = arch.rows, arch.cols
        pes = [[PE(arch.in_bits, arch.w_bits, arch.acc_bits, arch.dataflow) for _ in range(C)]
               for _ in range(R)]
        for r in range(R):
            for c in range(C):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
        if arch.dataflow == "ws":
            self._build_ws(m, pes)
        else:
            self._build_os(m, pes)
        return m

    def _deskew(self, m: Module, columns: list) -> None:
        """Delay column ``c`` by ``C-1-c`` cycles onto ``out_data``."""
        C = len(columns)
        for c, col in enumerate(columns):
            taps = delay_line(m, col, C - 1 - c, f"deskew{c}")
            m.d.comb += self.out_data[c].eq(taps[-1])

    def _build_ws(self, m: Module, pes) -> None:
        arch = self.arch
        R, C = arch.rows, arch.cols
        # inputs: row r delayed R - r cycles; the switch flag uses one shared chain
        first = Signal(name="first_v")
        m.d.comb += first.eq(self.in_valid & self.in_first)
        flag = delay_line(m, first, R, "first")
        for r in range(R):
            lane = Signal(signed(arch.in_bits), name=f"a_lane{r}")
            m.d.comb += lane.eq(self.in_data[r])
            a = delay_line(m, lane, R - r, f"a{r}")[-1]
            m.d.comb += [pes[r][0].a_in.eq(a), pes[r][0].first_in.eq(flag[R - r])]
            for c in range(1, C):
                m.d.comb += [pes[r][c].a_in.eq(pes[r][c - 1].a_out),
                             pes[r][c].first_in.eq(pes[r][c - 1].first_out)]
        for c in range(C):
            m.d.comb += pes[R - 1][c].psum_in.eq(0)
            for r in range(R - 1):
                m.d.comb += pes[r][c].psum_in.eq(pes[r + 1][c].psum_out)
        self._deskew(m, [pes[0][c].psum_out for c in range(C)])

        # preload: row counter, one input register, then column c delayed c more cycles
        cnt = Signal(range(max(R, 2)), name="preload_cnt")
        with m.If(self.preload_valid):
            m.d.sync += cnt.eq(Mux(cnt == R - 1, 0, cnt + 1))
        ctl = Signal(1 + len(cnt), name="preload_ctl")  # {valid, target row}
        m.d.sync += ctl.eq(Cat(self.preload_valid, (R - 1) - cnt))
        ctl_taps = delay_line(m, ctl, C - 1, "preload_ctl")
        for c in range(C):
            w0 = Signal(signed(arch.w_bits), name=f"w_in{c}")
            m.d.sync += w0.eq(self.preload_row[c])
            w = delay_line(m, w0, c, f"w{c}")[-1]
            valid, row = ctl_taps[c][0], ctl_taps[c][1:]
            for r in range(R):
                m.d.comb += [pes[r][c].w_data.eq(w),
                             pes[r][c].w_load.eq(valid & (row == r))]

        # valid + tag travel alongside: latency R + C
        vt = Signal(1 + self.tag_width, name="vt")
        m.d.comb += vt.eq(Cat(self.in_valid, self.in_tag))
        out = delay_line(m, vt, R + C, "vt")[-1]
        m.d.comb += [self.out_valid.eq(out[0]), self.out_tag.eq(out[1:])]

    def _build_os(self, m: Module, pes) -> None:
        arch = self.arch
        R, C = arch.rows, arch.cols
        flags = Signal(2, name="flags_v")  # {first, last}, only on valid cycles
        m.d.comb += flags.eq(Cat(self.in_valid & self.in_first, self.in_valid & self.in_last))
        ftaps = delay_line(m, flags, R, "flags")
        for r in range(R):
            lane = Signal(signed(arch.in_bits), name=f"a_lane{r}")
            m.d.comb += lane.eq(Mux(self.in_valid, self.in_data[r], 0))
            a = delay_line(m, lane, 1 + r, f"a{r}")[-1]
            f = ftaps[1 + r]
            m.d.comb += [pes[r][0].a_in.eq(a), pes[r][0].first_in.eq(f[0]),
                         pes[r][0].last_in.eq(f[1])]
            for c in range(1, C):
                p, q = pes[r][c - 1], pes[r][c]
                m.d.comb += [q.a_in.eq(p.a_out), q.first_in.eq(p.first_out),
                             q.last_in.eq(p.last_out)]
        for c in range(C):
            lane = Signal(signed(arch.w_bits), name=f"w_lane{c}")
            m.d.comb += lane.eq(Mux(self.in_valid, self.in_w[c], 0))
            w = delay_line(m, lane, 1 + c, f"w{c}")[-1]
            m.d.comb += pes[0][c].w_in.eq(w)
            for r in range(1, R):
                m.d.comb += pes[r][c].w_in.eq(pes[r - 1][c].w_out)
        # drain: each column selects the one PE whose sum is finished this cycle
        cols = []
        for c in range(C):
            sel = Signal(signed(arch.acc_bits), name=f"drain{c}")
            terms = [Mux(pes[r][c].last_out, pes[r][c].acc, 0) for r in range(R)]
            acc = terms[0]
            for t in terms[1:]:
                acc = acc | t
            m.d.comb += sel.eq(acc)
            cols.append(sel)
        self._deskew(m, cols)

        # tags: pass tag delayed to the first result row, then tag + i for R rows
        lt = Signal(1 + self.tag_width, name="lt")
        m.d.comb += lt.eq(Cat(self.in_valid & self.in_last, self.in_tag))
        d = delay_line(m, lt, C + 1, "lt")[-1]
        remaining = Signal(range(max(R, 2)), name="drain_left")
        nxt = Signal(self.tag_width, name="drain_tag")
        with m.If(d[0]):
            m.d.comb += [self.out_valid.eq(1), self.out_tag.eq(d[1:])]
            m.d.sync += [remaining.eq(R - 1), nxt.eq(d[1:] + 1)]
        with m.Elif(remaining != 0):
            m.d.comb += [self.out_valid.eq(1), self.out_tag.eq(nxt)]
            m.d.sync += [remaining.eq(remaining - 1), nxt.eq(nxt + 1)]
