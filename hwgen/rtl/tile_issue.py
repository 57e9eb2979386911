"""The tile engine's issue phase: address walks and the WS / OS pass schedules.

Addresses come from two mixed-radix walks over the layer's convolution view
(a GEMM is a 1-wide convolution):

- the *pixel* walk ``m -> (q, p)`` with the input address ``pix`` of pixel
  ``m``'s window origin and its ``(h, w)`` origin ``(hp, wq)`` = ``(p*sh, q*sw)``;
- the *reduction* walk ``k -> (c, s)`` with the offset ``koff`` and the kernel
  tap's ``(hoff, woff)`` = ``(r*dh - ph, s*dw - pw)`` (per-axis strides ``sh, sw``,
  dilations ``dh, dw`` and paddings ``ph, pw``);

so the input of im2col element ``(m, k)`` is at ``pix + koff`` when
``0 <= hp + hoff < H`` and ``0 <= wq + woff < W`` (else a padding zero). A
walk advances with adders and comparators only (the deltas are compiled into
the LAYER instruction). The ``rows`` lanes of one vector are a chain of walk
steps (WS: consecutive k of a block; OS: consecutive pixels of a pass).

:func:`ws_issue` and :func:`os_issue` drive, per cycle of the ``RUN`` phase,
the weight and activation reads and the :func:`issue_layout` record that
travels with them to the array (docs/hardware.md, "Tile engine").
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum

from hwgen.compiler.isa import delta_bits, dims_bits
from mapping.arch import ArchSpec
from mapping.hwconst import bits_for

K_F, K_S = ("c", "s", "koff", "hoff", "woff"), ("koff", "hoff", "woff")
P_F, P_S = ("q", "p", "pix", "hp", "wq"), ("pix", "hp", "wq")


class Phase(enum.Enum, shape=3):
    """The tile engine's phases."""

    IDLE = 0
    RUN = 1  # array passes: weight preloads / streams, one issue per cycle
    DRAIN = 2  # the array pipeline empties into the accumulator buffer
    POST = 3  # post-processing: one accumulator row per cycle (last k tile only)
    POST_DRAIN = 4  # the post-processing pipeline empties into the scratchpad


def tag_layout(arch: ArchSpec) -> data.StructLayout:
    """The tag travelling with a vector through the array: where its result row goes.

    ``row`` (low bits, the OS array adds the drained row index), accumulator
    ``addr`` of row 0, ``acc`` (accumulate, else overwrite), ``cw`` valid
    columns, ``rv`` valid rows (OS edge passes).
    """
    return data.StructLayout({
        "row": unsigned(bits_for(arch.rows)),
        "addr": unsigned(bits_for(arch.acc_words)),
        "acc": unsigned(1),
        "cw": unsigned(bits_for(arch.cols + 1)),
        "rv": unsigned(bits_for(arch.rows + 1)),
    })


def issue_layout(arch: ArchSpec) -> data.StructLayout:
    """What one issue cycle sends towards the array (registered once, beside the reads):
    ``pl`` a WS preload row (``pl_rowok``: a real row of the block), ``cw`` its valid
    columns, ``valid``/``first``/``last`` an input vector, its ``tag`` and the lanes
    that are not padding (``lane_ok``)."""
    return data.StructLayout({
        "pl": unsigned(1), "pl_rowok": unsigned(1), "cw": unsigned(bits_for(arch.cols + 1)),
        "valid": unsigned(1), "first": unsigned(1), "last": unsigned(1),
        "tag": tag_layout(arch), "lane_ok": unsigned(arch.rows),
    })


@dataclass
class TileCursor:
    """The tile registers the issue phase shares with the engine's drain and
    post-processing phases (which reuse ``t``, ``nb``, ``n_left`` and ``s_acc``)."""

    phase: Signal  # Phase
    cnt: Signal  # countdown of the drain phases
    t: Signal  # cycle within the current slot / pass / post block
    nb: Signal  # n block
    n_left: Signal  # columns left from the current n block
    s_acc: Signal  # accumulator address of the current row

    @classmethod
    def create(cls, arch: ArchSpec) -> TileCursor:
        db = dims_bits(arch)
        return cls(phase=Signal(Phase), cnt=Signal(16), t=Signal(db + 1), nb=Signal(db),
                   n_left=Signal(signed(db + 2)), s_acc=Signal(bits_for(arch.acc_words) + 1))


def walk_regs(fields: tuple[str, ...], sb: int, db: int, signed_f: tuple[str, ...],
              name: str) -> dict:
    """Registers of a walk state: ``signed_f`` fields signed ``sb`` bits, others ``db``."""
    return {f: Signal(signed(sb) if f in signed_f else unsigned(db), name=f"{name}_{f}")
            for f in fields}


def k_step(m: Module, st: dict, L, name: str, sb: int, db: int) -> dict:
    """One step of the reduction walk (comb signals)."""
    c_wrap = st["c"] == L.C - 1
    s_wrap = st["s"] == L.S - 1
    nxt = walk_regs(K_F, sb, db, K_S, name)
    m.d.comb += [
        nxt["c"].eq(Mux(c_wrap, 0, st["c"] + 1)),
        nxt["s"].eq(Mux(c_wrap, Mux(s_wrap, 0, st["s"] + 1), st["s"])),
        nxt["koff"].eq(st["koff"] + Mux(c_wrap, Mux(s_wrap, L.dk_r, L.dk_s), 1)),
        nxt["hoff"].eq(st["hoff"] + Mux(c_wrap & s_wrap, L.dh, 0)),
        nxt["woff"].eq(Mux(c_wrap, Mux(s_wrap, -L.pw, st["woff"] + L.dw), st["woff"])),
    ]
    return nxt


def pix_step(m: Module, st: dict, L, name: str, sb: int, db: int) -> dict:
    """One step of the pixel walk (comb signals)."""
    q_wrap = st["q"] == L.Q - 1
    p_wrap = st["p"] == L.P - 1
    nxt = walk_regs(P_F, sb, db, P_S, name)
    m.d.comb += [
        nxt["q"].eq(Mux(q_wrap, 0, st["q"] + 1)),
        nxt["p"].eq(Mux(q_wrap, Mux(p_wrap, 0, st["p"] + 1), st["p"])),
        nxt["pix"].eq(st["pix"] + Mux(q_wrap, Mux(p_wrap, L.dp_n, L.dp_p), L.dp_q)),
        nxt["hp"].eq(Mux(q_wrap, Mux(p_wrap, 0, st["hp"] + L.sh), st["hp"])),
        nxt["wq"].eq(Mux(q_wrap, 0, st["wq"] + L.sw)),
    ]
    return nxt


def in_window(hp, hoff, wq, woff, L):
    """The im2col element at pixel origin ``(hp, wq)`` + tap ``(hoff, woff)`` is in the input."""
    h = hp + hoff
    w = wq + woff
    return (h >= 0) & (h < L.H) & (w >= 0) & (w < L.W)


def k_start(step) -> dict:
    """The reduction walk at a tile's first k (from its STEP fields)."""
    return {"c": step.c0, "s": step.s0, "koff": step.koff0, "hoff": step.hoff0,
            "woff": step.woff0}


def pix_start(step) -> dict:
    """The pixel walk at a tile's first m (from its STEP fields)."""
    return {"q": step.q0, "p": step.p0, "pix": step.pix0, "hp": step.hp0, "wq": step.wq0}


def minc(v, cap):
    return Mux(v > cap, cap, v)


# ------------------------------------------------------------------ WS
def ws_issue(m: Module, arch: ArchSpec, cmd, L, S, cur: TileCursor, iss, w_rd, act_rd,
             drain_cycles: int) -> None:
    """Weight-stationary passes of the tile ``S`` of layer ``L`` (registered at ``cmd.go``).

    Slots of ``max(m, rows)`` cycles: each preloads the next ``rows x cols`` weight
    block (one weight-scratchpad row per cycle, last block row first) beside the
    ``m`` input vectors of the current block (``rows`` reduction lanes each); the
    first slot only preloads, the last only streams. After the last slot the
    engine drains for ``drain_cycles``.

    ``act_gather = "runs"``: the scratchpad reads one run of consecutive addresses per
    cycle, so the block streams its ``m`` vectors once per run its lanes span (a kernel
    row of ``S*C`` consecutive addresses, one tap of ``C`` when ``dw > 1``:
    ``mapping.timing.gather_run``; a *segment*: the lanes from one run start to the
    next, the others masked; the
    first segment switches the array to the block's weights and overwrites or
    accumulates as before, the others accumulate); the slot lasts
    ``max(segments x m, rows)``.
    """
    R, C = arch.rows, arch.cols
    db, sb = dims_bits(arch), delta_bits(arch)
    aw = bits_for(arch.w_words) + 1
    kb = Signal(db)
    k_left = Signal(signed(db + 2))
    wcol, wblk, wrow = Signal(aw), Signal(aw), Signal(aw)  # n block / k block / row
    accn = Signal(bits_for(arch.acc_words) + 1)  # accumulator base of the n block
    kblk = walk_regs(K_F, sb, db, K_S, "kblk")  # reduction walk at the preload block's start
    pcur = walk_regs(P_F, sb, db, P_S, "pcur")  # pixel walk (per cycle)
    more = Signal()  # a preload block remains
    streaming = Signal()  # a stream block is loaded
    # the stream block (registered lane parameters)
    lane_koff = [Signal(signed(sb), name=f"lane{r}_koff") for r in range(R)]
    lane_hoff = [Signal(signed(sb), name=f"lane{r}_hoff") for r in range(R)]
    lane_woff = [Signal(signed(sb), name=f"lane{r}_woff") for r in range(R)]
    lane_kval = Signal(R)
    s_cw = Signal(bits_for(C + 1))
    s_accum = Signal()
    runs = arch.act_gather == "runs"

    with m.If(cmd.go):
        st = cmd.step
        m.d.sync += [kb.eq(0), k_left.eq(st.k), wcol.eq(st.w_base), wblk.eq(st.w_base),
                     wrow.eq(st.w_base + st.w_rlast), accn.eq(st.acc_base), more.eq(1),
                     streaming.eq(0)]
        m.d.sync += [kblk[f].eq(v) for f, v in k_start(st).items()]

    run = cur.phase == Phase.RUN
    t, nb, n_left = cur.t, cur.nb, cur.n_left
    preload = run & more & (t < R)
    if runs:
        seg = _Segments(m, arch, db)
        stream = run & streaming & ~seg.done
    else:
        stream = run & streaming & (t < S.m)
    # reduction-walk chain over the R lanes of the preload block (+1: next block start)
    chain = [kblk]
    for r in range(R):
        chain.append(k_step(m, chain[-1], L, f"kch{r}", sb, db))
    row = (R - 1) - t[:max(1, (R - 1).bit_length())] if R > 1 else 0
    m.d.comb += [
        w_rd.en.eq(preload), w_rd.addr.eq(wrow),
        iss.pl.eq(preload), iss.pl_rowok.eq(row < k_left), iss.cw.eq(minc(n_left, C)),
        iss.valid.eq(stream),
        iss.first.eq(stream & ((seg.sp == 0) & seg.first if runs else t == 0)),
        iss.tag.row.eq(0), iss.tag.addr.eq(cur.s_acc), iss.tag.acc.eq(s_accum),
        iss.tag.cw.eq(s_cw), iss.tag.rv.eq(1),
        act_rd.en.eq(stream),
    ]
    if runs:  # one run: lane r at the segment's address - j0 + r
        koffs = Array(lane_koff)
        run_base = Signal(signed(sb))
        m.d.comb += run_base.eq(pcur["pix"] + koffs[seg.j0] - seg.j0)
    for r in range(R):
        m.d.comb += [
            act_rd.addr[r].eq(run_base + r if runs else pcur["pix"] + lane_koff[r]),
            iss.lane_ok[r].eq(lane_kval[r] & in_window(pcur["hp"], lane_hoff[r], pcur["wq"],
                                                       lane_woff[r], L)
                              & (seg.lanes[r] if runs else 1)),
        ]
    with m.If(preload):
        m.d.sync += wrow.eq(wrow - S.n)
    with m.If(stream):
        nxt = pix_step(m, pcur, L, "pnext", sb, db)
        m.d.sync += [pcur[f].eq(nxt[f]) for f in P_F]
        m.d.sync += cur.s_acc.eq(cur.s_acc + s_cw)
        if runs:
            with m.If(seg.sp == S.m - 1):  # the segment's last vector
                with m.If(seg.has_next):  # the next segment streams the block again
                    m.d.sync += [pcur[f].eq(v) for f, v in pix_start(S).items()]
                    m.d.sync += [cur.s_acc.eq(seg.acc0), s_accum.eq(1)]
    if runs:
        seg.advance(m, stream, S.m)
        slot_end = run & (~more | (t >= R - 1)) & (~streaming | seg.done | seg.finishing)
        with m.If(run & (t < R)):
            m.d.sync += t.eq(t + 1)
    else:  # slots of max(m, rows) cycles (rows: preload only; m: stream only)
        mx = Signal(db + 1)
        m.d.comb += mx.eq(Mux(S.m > R, S.m, R))
        slot_len = Mux(more & streaming, mx, Mux(more, R, S.m))
        slot_end = run & (t == slot_len - 1)
        with m.If(run):
            m.d.sync += t.eq(t + 1)
    with m.If(slot_end):
        m.d.sync += t.eq(0)
        with m.If(~more):  # the final stream slot ended
            m.d.sync += [cur.phase.eq(Phase.DRAIN), cur.cnt.eq(drain_cycles)]
        # the preloaded block becomes the stream block
        m.d.sync += [streaming.eq(more), s_cw.eq(minc(n_left, C)),
                     s_accum.eq(~(S.first_k & (kb == 0))), cur.s_acc.eq(accn)]
        m.d.sync += [pcur[f].eq(v) for f, v in pix_start(S).items()]
        for r in range(R):
            m.d.sync += [lane_koff[r].eq(chain[r]["koff"]),
                         lane_hoff[r].eq(chain[r]["hoff"]),
                         lane_woff[r].eq(chain[r]["woff"]),
                         lane_kval[r].eq(r < k_left)]
        if runs:  # a segment starts at every lane that starts a run (kernel row or tap)
            seg.load(m, [(chain[r]["c"] == 0) & ((chain[r]["s"] == 0) | (L.dw != 1))
                         & (r < k_left) for r in range(1, R)], accn)
        # next preload block
        with m.If(kb == S.nkb - 1):
            with m.If(nb == S.nnb - 1):
                m.d.sync += more.eq(0)
            m.d.sync += [kb.eq(0), nb.eq(nb + 1), k_left.eq(S.k), n_left.eq(n_left - C),
                         wcol.eq(wcol + C), wblk.eq(wcol + C),
                         wrow.eq(wcol + C + S.w_rlast), accn.eq(accn + S.acc_blk)]
            m.d.sync += [kblk[f].eq(v) for f, v in k_start(S).items()]
        with m.Else():
            m.d.sync += [kb.eq(kb + 1), k_left.eq(k_left - R),
                         wblk.eq(wblk + S.w_kstride),
                         wrow.eq(wblk + S.w_kstride + S.w_rlast)]
            m.d.sync += [kblk[f].eq(chain[R][f]) for f in K_F]


class _Segments:
    """The segments of the WS stream block when the scratchpad gathers by runs:
    ``starts`` (bit ``r``: lane ``r > 0`` starts a run), the current segment's
    first lane ``j0`` and its ``lanes`` mask, the vector index ``sp`` within it, ``first``
    (the block's first segment), ``done`` (every segment streamed), ``acc0`` (the
    accumulator row of the block's first vector)."""

    def __init__(self, m: Module, arch: ArchSpec, db: int):
        R = self.R = arch.rows  # noqa: N806
        self.starts = Signal(R, name="seg_starts")
        self.j0 = Signal(range(max(R, 2)), name="seg_j0")
        self.sp = Signal(db + 1, name="seg_sp")
        self.first = Signal(name="seg_first")
        self.done = Signal(name="seg_done")
        self.finishing = Signal(name="seg_finishing")
        self.acc0 = Signal(bits_for(arch.acc_words) + 1, name="seg_acc0")
        above = Signal(R, name="seg_above")  # run starts after j0
        m.d.comb += above.eq(Cat(self.starts[r] & (r > self.j0) for r in range(R)))
        self.has_next = Signal(name="seg_has_next")
        self.next_j = Signal(range(max(R, 2)), name="seg_next")
        m.d.comb += self.has_next.eq(above.any())
        for r in reversed(range(R)):  # lowest run start after j0
            with m.If(above[r]):
                m.d.comb += self.next_j.eq(r)
        self.lanes = Signal(R, name="seg_lanes")
        m.d.comb += self.lanes.eq(Cat(
            (r >= self.j0) & (~self.has_next | (r < self.next_j)) for r in range(R)))

    def advance(self, m: Module, stream, count) -> None:
        """One streamed vector of ``count`` per segment."""
        last = self.sp == count - 1
        m.d.comb += self.finishing.eq(stream & last & ~self.has_next)
        with m.If(stream):
            m.d.sync += self.sp.eq(self.sp + 1)
            with m.If(last):
                m.d.sync += self.sp.eq(0)
                with m.If(self.has_next):
                    m.d.sync += [self.j0.eq(self.next_j), self.first.eq(0)]
                with m.Else():
                    m.d.sync += self.done.eq(1)

    def load(self, m: Module, starts: list, acc0) -> None:
        """A new stream block (its run starts for lanes ``1..R-1``)."""
        m.d.sync += [self.starts.eq(Cat(0, *starts)), self.j0.eq(0), self.sp.eq(0),
                     self.first.eq(1), self.done.eq(0), self.acc0.eq(acc0)]


# ------------------------------------------------------------------ OS
def os_issue(m: Module, arch: ArchSpec, cmd, L, S, cur: TileCursor, iss, w_rd, act_rd,
             drain_cycles: int) -> None:
    """Output-stationary passes of the tile ``S`` of layer ``L`` (registered at ``cmd.go``).

    One pass per ``rows x cols`` output block: ``k`` cycles, each one weight row
    (``cols`` channels) and ``rows`` pixel lanes of one reduction step; slots last
    ``max(k, rows)`` (the last ``k``). After the last pass the engine drains for
    ``drain_cycles``.
    """
    R, C = arch.rows, arch.cols
    db, sb = dims_bits(arch), delta_bits(arch)
    aw = bits_for(arch.w_words) + 1
    mb = Signal(db)
    m_left = Signal(signed(db + 2))
    wcol, wrow = Signal(aw), Signal(aw)  # n block / current weight row
    accn = Signal(bits_for(arch.acc_words) + 1)  # accumulator base of the n block
    pblk = walk_regs(P_F, sb, db, P_S, "pblk")  # pixel walk at the pass's start
    kcur = walk_regs(K_F, sb, db, K_S, "kcur")  # reduction walk (per cycle)
    mx = Signal(db + 1)
    m.d.comb += mx.eq(Mux(S.k > R, S.k, R))

    with m.If(cmd.go):
        st = cmd.step
        m.d.sync += [mb.eq(0), m_left.eq(st.m), wcol.eq(st.w_base), wrow.eq(st.w_base),
                     accn.eq(st.acc_base)]
        m.d.sync += [kcur[f].eq(v) for f, v in k_start(st).items()]
        m.d.sync += [pblk[f].eq(v) for f, v in pix_start(st).items()]

    run = cur.phase == Phase.RUN
    t, nb, n_left, s_acc = cur.t, cur.nb, cur.n_left, cur.s_acc
    last_pass = (mb == S.nmb - 1) & (nb == S.nnb - 1)
    slot_len = Mux(last_pass, S.k, mx)
    issue = run & (t < S.k)
    chain = [pblk]
    for i in range(R):
        chain.append(pix_step(m, chain[-1], L, f"pch{i}", sb, db))
    cw = minc(n_left, C)
    m.d.comb += [
        w_rd.en.eq(issue), w_rd.addr.eq(wrow),
        iss.pl.eq(0), iss.pl_rowok.eq(1), iss.cw.eq(cw),
        iss.valid.eq(issue), iss.first.eq(issue & (t == 0)),
        iss.last.eq(issue & (t == S.k - 1)),
        iss.tag.row.eq(0), iss.tag.addr.eq(s_acc),
        iss.tag.acc.eq(~S.first_k), iss.tag.cw.eq(cw),
        iss.tag.rv.eq(minc(m_left, R)),
        act_rd.en.eq(issue),
    ]
    for i in range(R):
        m.d.comb += [
            act_rd.addr[i].eq(chain[i]["pix"] + kcur["koff"]),
            iss.lane_ok[i].eq((i < m_left) & in_window(
                chain[i]["hp"], kcur["hoff"], chain[i]["wq"], kcur["woff"], L)),
        ]
    with m.If(issue):
        nxt = k_step(m, kcur, L, "knext", sb, db)
        m.d.sync += [kcur[f].eq(nxt[f]) for f in K_F]
        m.d.sync += wrow.eq(wrow + S.n)
    with m.If(run):
        m.d.sync += t.eq(t + 1)
        with m.If(t == slot_len - 1):
            m.d.sync += t.eq(0)
            m.d.sync += [kcur[f].eq(v) for f, v in k_start(S).items()]
            with m.If(last_pass):
                m.d.sync += [cur.phase.eq(Phase.DRAIN), cur.cnt.eq(drain_cycles)]
            with m.If(mb == S.nmb - 1):
                m.d.sync += [mb.eq(0), nb.eq(nb + 1), m_left.eq(S.m),
                             n_left.eq(n_left - C), wcol.eq(wcol + C), wrow.eq(wcol + C),
                             accn.eq(accn + S.acc_blk), s_acc.eq(accn + S.acc_blk)]
                m.d.sync += [pblk[f].eq(v) for f, v in pix_start(S).items()]
            with m.Else():
                m.d.sync += [mb.eq(mb + 1), m_left.eq(m_left - R),
                             s_acc.eq(s_acc + cw * R), wrow.eq(wcol)]
                m.d.sync += [pblk[f].eq(chain[R][f]) for f in P_F]
