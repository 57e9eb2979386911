"""The tile engine: one tile of a compute layer (docs/timing.md "A layer", steps 2
and 3): the array passes with their address generation (``hwgen.rtl.tile_issue``),
the accumulator write-back of the array's result rows, then (last k tile) the
post-processing rows into the activation scratchpad.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import PARAM_ADDR_BITS, param_bits, param_layout
from hwgen.rtl.interfaces import (
    acc_read_signature,
    acc_update_signature,
    act_read_signature,
    act_write_signature,
    array_signature,
    postproc_signature,
    table_read_signature,
    tile_command_signature,
    weight_read_signature,
)
from hwgen.rtl.tile_issue import (
    Phase,
    TileCursor,
    issue_layout,
    minc,
    os_issue,
    tag_layout,
    ws_issue,
)
from mapping.arch import ArchSpec
from mapping.hwconst import bits_for

__all__ = ["Phase", "TileEngine", "tag_layout"]


def _mask(cw, lanes: int):
    """The low ``cw`` of ``lanes`` bits set."""
    return Array(((1 << i) - 1) for i in range(lanes + 1))[cw]


class TileEngine(wiring.Component):
    """Runs one tile: array passes (implicit im2col) and, after a last-k tile,
    post-processing.

    ``cmd`` (:func:`~hwgen.rtl.interfaces.tile_command_signature`): ``go`` takes
    ``step`` (STEP fields) and ``layer`` (LAYER fields); ``busy`` is high from the
    cycle after ``go`` to the tile's last write, inclusive. Masters of
    ``act_rd``/``act_wr`` (activation scratchpad), ``w_rd`` (weight scratchpad),
    ``arr`` (the systolic array), ``acc_upd``/``acc_rd`` (accumulator buffer: the
    array's result rows go through), ``par_rd`` (parameter table) and ``pp`` (the
    post-processing unit, whose result rows go to ``act_wr``).
    ``array_latency``/``post_latency`` are the datapath's fixed latencies
    (``SystolicArray.latency``, ``PostProc.latency``).
    """

    def __init__(self, arch: ArchSpec, array_latency: int, post_latency: int):
        self.arch = arch
        self.array_latency = array_latency
        self.post_latency = post_latency
        C = arch.cols
        self.tag = tag_layout(arch)
        super().__init__({
            "cmd": In(tile_command_signature(arch)),
            "act_rd": Out(act_read_signature(arch)),
            "act_wr": Out(act_write_signature(arch, C)),
            "w_rd": Out(weight_read_signature(arch)),
            "arr": Out(array_signature(arch, self.tag)),
            "acc_upd": Out(acc_update_signature(arch)),
            "acc_rd": Out(acc_read_signature(arch)),
            "par_rd": Out(table_read_signature(unsigned(param_bits(arch)), C, PARAM_ADDR_BITS)),
            "pp": Out(postproc_signature(arch, C, arch.in_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        R, C = a.rows, a.cols
        cmd, arr = self.cmd, self.arr
        L = Signal.like(cmd.layer)  # noqa: N806 (the layer registers)
        S = Signal.like(cmd.step)  # noqa: N806 (the tile registers)
        ws = a.dataflow == "ws"
        cur = TileCursor.create(a)
        phase, cnt, t, nb, n_left, s_acc = cur.phase, cur.cnt, cur.t, cur.nb, cur.n_left, cur.s_acc
        m.d.comb += cmd.busy.eq(phase != Phase.IDLE)

        with m.If(cmd.go):
            st = cmd.step
            m.d.sync += [L.eq(cmd.layer), S.eq(st), phase.eq(Phase.RUN), t.eq(0), nb.eq(0),
                         n_left.eq(st.n), s_acc.eq(st.acc_base)]

        # issue stage (registered once to meet the memories' read data)
        iss = Signal(issue_layout(a))
        q = Signal(issue_layout(a))
        m.d.sync += q.eq(iss)
        w_row = Signal.like(self.w_rd.data)
        for j in range(C):
            m.d.comb += w_row[j].eq(
                Mux((q.pl | q.valid) & (j < q.cw) & (q.pl_rowok | ~ws), self.w_rd.data[j], 0))
        for r in range(R):
            m.d.comb += arr.in_data[r].eq(Mux(q.valid & q.lane_ok[r], self.act_rd.data[r], 0))
        m.d.comb += [arr.in_valid.eq(q.valid), arr.in_first.eq(q.first), arr.in_tag.eq(q.tag)]
        if ws:
            m.d.comb += [arr.preload_valid.eq(q.pl), arr.preload_row.eq(w_row)]
            ws_issue(m, a, cmd, L, S, cur, iss, self.w_rd, self.act_rd,
                     drain_cycles=self.array_latency + 2)
        else:
            m.d.comb += [arr.in_last.eq(q.last), arr.in_w.eq(w_row)]
            os_issue(m, a, cmd, L, S, cur, iss, self.w_rd, self.act_rd,
                     drain_cycles=self.array_latency + R + 1)

        # ---------------------------------------------- accumulator write-back
        ot = arr.out_tag
        m.d.comb += [
            self.acc_upd.valid.eq(arr.out_valid & (ot.row < ot.rv)),
            self.acc_upd.addr.eq(ot.addr + ot.row * ot.cw),
            self.acc_upd.mask.eq(_mask(ot.cw, C)),
            self.acc_upd.accumulate.eq(ot.acc),
            self.acc_upd.data.eq(arr.out_data),
        ]
        po_addr = Signal(bits_for(a.act_words) + 1)  # output address of the row
        po_blk = Signal(bits_for(a.act_words) + 1)  # output address of the block's first row
        po_par = Signal(PARAM_ADDR_BITS)  # parameter address of the block
        with m.If(phase == Phase.DRAIN):
            m.d.sync += cnt.eq(cnt - 1)
            with m.If(cnt == 1):
                with m.If(S.last_k):
                    m.d.sync += phase.eq(Phase.POST)
                with m.Else():
                    m.d.sync += phase.eq(Phase.IDLE)
                m.d.sync += [t.eq(0), nb.eq(0), n_left.eq(S.n), s_acc.eq(S.acc_base),
                             po_addr.eq(S.out_base), po_blk.eq(S.out_base),
                             po_par.eq(S.par_base)]

        # ------------------------------------------------------- post-process
        self._post(m, L, S, cur, po_addr, po_blk, po_par)
        return m

    def _post(self, m: Module, L, S, cur: TileCursor, po_addr, po_blk, po_par) -> None:  # noqa: N803
        """POST phase: one accumulator row per cycle (with its parameters) into
        ``pp``, each result row written ``cw`` elements wide at the row's output
        address; then POST_DRAIN until the last write."""
        a, C = self.arch, self.arch.cols
        t, nb, n_left, s_acc = cur.t, cur.nb, cur.n_left, cur.s_acc
        pp = self.pp
        p_cw = minc(n_left, C)
        post_issue = cur.phase == Phase.POST
        m.d.comb += [self.acc_rd.en.eq(post_issue), self.acc_rd.addr.eq(s_acc),
                     self.par_rd.en.eq(post_issue), self.par_rd.addr.eq(po_par)]
        pv = Signal()
        p_addr = Signal(bits_for(a.act_words))
        p_cwq = Signal(bits_for(C + 1))
        m.d.sync += [pv.eq(post_issue), p_addr.eq(po_addr), p_cwq.eq(p_cw)]
        m.d.comb += [pp.in_valid.eq(pv), pp.acc.eq(self.acc_rd.data),
                     pp.out_bits.eq(self.cmd.layer.out_bits), pp.relu.eq(self.cmd.layer.relu)]
        for j in range(C):
            par = param_layout(a)(self.par_rd.data[j])
            m.d.comb += [pp.bias[j].eq(par.bias), pp.mult[j].eq(par.mult),
                         pp.shift[j].eq(par.shift)]
        d_addr, d_cw = p_addr, p_cwq
        for i in range(self.post_latency):
            na = Signal.like(p_addr, name=f"post_addr_d{i}")
            nc = Signal.like(p_cwq, name=f"post_cw_d{i}")
            m.d.sync += [na.eq(d_addr), nc.eq(d_cw)]
            d_addr, d_cw = na, nc
        m.d.comb += [
            self.act_wr.addr.eq(d_addr),
            self.act_wr.mask.eq(Mux(pp.out_valid, _mask(d_cw, C), 0)),
            self.act_wr.data.eq(pp.out),
        ]
        with m.If(post_issue):
            m.d.sync += [t.eq(t + 1), s_acc.eq(s_acc + p_cw), po_addr.eq(po_addr + L.gemm_n)]
            with m.If(t == S.m - 1):
                m.d.sync += [t.eq(0), nb.eq(nb + 1), n_left.eq(n_left - C),
                             po_addr.eq(po_blk + C), po_blk.eq(po_blk + C), po_par.eq(po_par + C)]
                with m.If(nb == S.nnb - 1):
                    m.d.sync += [cur.phase.eq(Phase.POST_DRAIN),
                                 cur.cnt.eq(self.post_latency + 1)]
        with m.If(cur.phase == Phase.POST_DRAIN):
            m.d.sync += cur.cnt.eq(cur.cnt - 1)
            with m.If(cur.cnt == 1):
                m.d.sync += cur.phase.eq(Phase.IDLE)
