"""The tile engine: one tile of a compute layer (docs/timing.md "A layer", steps 2
and 3): the array passes with their address generation, then (last k tile)
the post-processing rows. Addresses come from two mixed-radix walks over the
layer's convolution view (a GEMM is a 1-wide convolution):

- the *pixel* walk ``m -> (q, p)`` with the input address ``pix`` of pixel
  ``m``'s window origin and its ``(h, w)`` origin ``(hp, wq)``;
- the *reduction* walk ``k -> (c, s)`` with the offset ``koff`` and the kernel
  tap's ``(hoff, woff)``;

so the input of im2col element ``(m, k)`` is at ``pix + koff`` when
``0 <= hp + hoff < H`` and ``0 <= wq + woff < W`` (else a padding zero). A
walk advances with adders and comparators only (the deltas are compiled into
the LAYER instruction). The ``rows`` lanes of one vector are a chain of walk
steps (WS: consecutive k of a block; OS: consecutive pixels of a pass).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import dims_bits, fields_layout, layer_fields, step_fields
from hwgen.rtl.memory import bits_for
from mapping.arch import ArchSpec


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


def k_step(m: Module, st: dict, L, name: str, sb: int, db: int) -> dict:
    """One step of the reduction walk (comb signals)."""
    cw_ = st["c"] == L.C - 1
    sw = st["s"] == L.S - 1
    nxt = {f: Signal(signed(sb) if f in ("koff", "hoff", "woff") else unsigned(db),
                     name=f"{name}_{f}") for f in ("c", "s", "koff", "hoff", "woff")}
    m.d.comb += [
        nxt["c"].eq(Mux(cw_, 0, st["c"] + 1)),
        nxt["s"].eq(Mux(cw_, Mux(sw, 0, st["s"] + 1), st["s"])),
        nxt["koff"].eq(st["koff"] + Mux(cw_, Mux(sw, L.dk_r, L.dk_s), 1)),
        nxt["hoff"].eq(st["hoff"] + Mux(cw_ & sw, L.dil, 0)),
        nxt["woff"].eq(Mux(cw_, Mux(sw, -L.pad, st["woff"] + L.dil), st["woff"])),
    ]
    return nxt


def pix_step(m: Module, st: dict, L, name: str, sb: int, db: int) -> dict:
    """One step of the pixel walk (comb signals)."""
    qw = st["q"] == L.Q - 1
    pw = st["p"] == L.P - 1
    nxt = {f: Signal(signed(sb) if f in ("pix", "hp", "wq") else unsigned(db),
                     name=f"{name}_{f}") for f in ("q", "p", "pix", "hp", "wq")}
    m.d.comb += [
        nxt["q"].eq(Mux(qw, 0, st["q"] + 1)),
        nxt["p"].eq(Mux(qw, Mux(pw, 0, st["p"] + 1), st["p"])),
        nxt["pix"].eq(st["pix"] + Mux(qw, Mux(pw, L.dp_n, L.dp_p), L.dp_q)),
        nxt["hp"].eq(Mux(qw, Mux(pw, 0, st["hp"] + L.stride), st["hp"])),
        nxt["wq"].eq(Mux(qw, 0, st["wq"] + L.stride)),
    ]
    return nxt


def _regs(fields: tuple[str, ...], sb: int, db: int, signed_f: tuple[str, ...], name: str):
    return {f: Signal(signed(sb) if f in signed_f else unsigned(db), name=f"{name}_{f}")
            for f in fields}


K_F, K_S = ("c", "s", "koff", "hoff", "woff"), ("koff", "hoff", "woff")
P_F, P_S = ("q", "p", "pix", "hp", "wq"), ("pix", "hp", "wq")


def _in_window(hp, hoff, wq, woff, L):
    h = hp + hoff
    w = wq + woff
    return (h >= 0) & (h < L.H) & (w >= 0) & (w < L.W)


class TileEngine(wiring.Component):
    """Runs one tile: array passes (implicit im2col) and, after a last-k tile,
    post-processing. ``go`` takes ``step`` (STEP fields) and ``layer`` (LAYER
    fields); ``busy`` is high from the cycle after ``go`` to the tile's last
    write, inclusive. ``array_latency``/``post_latency`` are the datapath's
    fixed latencies (``SystolicArray.latency``, ``PostProc.latency``).
    """

    def __init__(self, arch: ArchSpec, array_latency: int, post_latency: int):
        self.arch = arch
        self.array_latency = array_latency
        self.post_latency = post_latency
        R, C = arch.rows, arch.cols
        aw, wa, ca = bits_for(arch.act_words), bits_for(arch.w_words), bits_for(arch.acc_words)
        self.tag = tag_layout(arch)
        sig = {
            "go": In(1),
            "step": In(fields_layout(step_fields(arch))),
            "layer": In(fields_layout(layer_fields(arch))),
            "busy": Out(1),
            # activation scratchpad
            "act_rd_en": Out(1), "act_rd_addr": Out(data.ArrayLayout(unsigned(aw), R)),
            "act_rd_data": In(data.ArrayLayout(signed(arch.in_bits), R)),
            "act_wr_addr": Out(unsigned(aw)), "act_wr_mask": Out(C),
            # weight scratchpad
            "w_rd_en": Out(1), "w_rd_addr": Out(unsigned(wa)),
            "w_rd_data": In(data.ArrayLayout(signed(arch.w_bits), C)),
            # array
            "arr_in_valid": Out(1), "arr_in_first": Out(1), "arr_in_last": Out(1),
            "arr_in_data": Out(data.ArrayLayout(signed(arch.in_bits), R)),
            "arr_in_w": Out(data.ArrayLayout(signed(arch.w_bits), C)),
            "arr_in_tag": Out(self.tag),
            "arr_preload_valid": Out(1),
            "arr_out_valid": In(1), "arr_out_tag": In(self.tag),
            # accumulator buffer
            "acc_in_valid": Out(1), "acc_in_addr": Out(unsigned(ca)), "acc_in_mask": Out(C),
            "acc_in_accumulate": Out(1),
            "acc_rd_en": Out(1), "acc_rd_addr": Out(unsigned(ca)),
            # parameter table and post-processing
            "par_rd_en": Out(1), "par_rd_addr": Out(unsigned(16)),
            "pp_in_valid": Out(1), "pp_out_valid": In(1),
        }
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        R, C = a.rows, a.cols
        db = dims_bits(a)
        sb = db + 3
        L = Signal.like(self.layer)  # noqa: N806 (the layer registers)
        S = Signal.like(self.step)  # noqa: N806 (the tile registers)
        ws = a.dataflow == "ws"

        # ---------------------------------------------------------- phases
        phase = Signal(range(6))  # 0 idle, 1 run, 2 wait (array drain), 3 post, 4 post wait
        m.d.comb += self.busy.eq(phase != 0)
        cnt = Signal(16)  # countdown in the wait phases
        t = Signal(db + 1)  # cycle within the current slot / pass
        # preload / pass block counters
        kb = Signal(db)
        nb = Signal(db)
        mb = Signal(db)
        k_left = Signal(signed(db + 2))
        n_left = Signal(signed(db + 2))
        m_left = Signal(signed(db + 2))
        wcol = Signal(bits_for(a.w_words) + 1)
        wblk = Signal(bits_for(a.w_words) + 1)
        wrow = Signal(bits_for(a.w_words) + 1)
        accn = Signal(bits_for(a.acc_words) + 1)
        kblk = _regs(K_F, sb, db, K_S, "kblk")  # reduction walk at the preload block's start
        pblk = _regs(P_F, sb, db, P_S, "pblk")  # pixel walk at the pass's start (OS)
        kcur = _regs(K_F, sb, db, K_S, "kcur")  # reduction walk (OS, per cycle)
        pcur = _regs(P_F, sb, db, P_S, "pcur")  # pixel walk (WS, per cycle)
        more = Signal()  # WS: a preload block remains; OS: unused
        streaming = Signal()  # WS: a stream block is loaded
        # WS stream block (registered lane parameters)
        lane_koff = [Signal(signed(sb), name=f"lane{r}_koff") for r in range(R)]
        lane_hoff = [Signal(signed(sb), name=f"lane{r}_hoff") for r in range(R)]
        lane_woff = [Signal(signed(sb), name=f"lane{r}_woff") for r in range(R)]
        lane_kval = Signal(R)
        s_acc = Signal(bits_for(a.acc_words) + 1)  # accumulator address of the current row
        s_cw = Signal(bits_for(C + 1))
        s_accum = Signal()
        mx = Signal(db + 1)  # max(m, R) or max(k, R)

        def minc(v, cap):
            return Mux(v > cap, cap, v)

        m.d.comb += mx.eq(Mux(S.m > R, S.m, R) if ws else Mux(S.k > R, S.k, R))

        # ------------------------------------------------------------ go
        tile_k_start = {"c": self.step.c0, "s": self.step.s0, "koff": self.step.koff0,
                        "hoff": self.step.hoff0, "woff": self.step.woff0}
        with m.If(self.go):
            m.d.sync += [L.eq(self.layer), S.eq(self.step), phase.eq(1), t.eq(0),
                         kb.eq(0), nb.eq(0), mb.eq(0), k_left.eq(self.step.k),
                         n_left.eq(self.step.n), m_left.eq(self.step.m),
                         wcol.eq(self.step.w_base), wblk.eq(self.step.w_base),
                         wrow.eq(self.step.w_base + (self.step.w_rlast if ws else 0)),
                         accn.eq(self.step.acc_base), more.eq(1), streaming.eq(0)]
            m.d.sync += [kblk[f].eq(tile_k_start[f]) for f in K_F]
            m.d.sync += [kcur[f].eq(tile_k_start[f]) for f in K_F]
            m.d.sync += [pblk["q"].eq(self.step.q0), pblk["p"].eq(self.step.p0),
                         pblk["pix"].eq(self.step.pix0), pblk["hp"].eq(self.step.hp0),
                         pblk["wq"].eq(self.step.wq0)]
            m.d.sync += [s_acc.eq(self.step.acc_base)]

        tile_pix_start = {"q": S.q0, "p": S.p0, "pix": S.pix0, "hp": S.hp0, "wq": S.wq0}
        tile_k_start_r = {"c": S.c0, "s": S.s0, "koff": S.koff0, "hoff": S.hoff0, "woff": S.woff0}

        # issue-stage signals (registered once to meet the memories' read data)
        iss_pl = Signal()
        iss_pl_rowok = Signal()
        iss_cw = Signal(bits_for(C + 1))
        iss_in = Signal()
        iss_first = Signal()
        iss_last = Signal()
        iss_tag = Signal(self.tag)
        iss_lane_ok = Signal(R)
        q_pl, q_pl_rowok, q_cw = Signal(), Signal(), Signal(bits_for(C + 1))
        q_in, q_first, q_last = Signal(), Signal(), Signal()
        q_tag = Signal(self.tag)
        q_lane_ok = Signal(R)
        m.d.sync += [q_pl.eq(iss_pl), q_pl_rowok.eq(iss_pl_rowok), q_cw.eq(iss_cw),
                     q_in.eq(iss_in), q_first.eq(iss_first), q_last.eq(iss_last),
                     q_tag.eq(iss_tag), q_lane_ok.eq(iss_lane_ok)]
        for j in range(C):
            m.d.comb += self.arr_in_w[j].eq(
                Mux((q_pl | q_in) & (j < q_cw) & (q_pl_rowok | ~ws), self.w_rd_data[j], 0))
        for r in range(R):
            m.d.comb += self.arr_in_data[r].eq(Mux(q_in & q_lane_ok[r], self.act_rd_data[r], 0))
        m.d.comb += [self.arr_in_valid.eq(q_in), self.arr_in_first.eq(q_first),
                     self.arr_in_last.eq(q_last), self.arr_in_tag.eq(q_tag),
                     self.arr_preload_valid.eq(q_pl)]

        if ws:
            self._ws_run(m, locals())
        else:
            self._os_run(m, locals())

        # ---------------------------------------------- accumulator write-back
        ot = self.arr_out_tag
        row_ok = ot.row < ot.rv
        m.d.comb += [
            self.acc_in_valid.eq(self.arr_out_valid & row_ok),
            self.acc_in_addr.eq(ot.addr + ot.row * ot.cw),
            self.acc_in_mask.eq(Array(((1 << i) - 1) for i in range(C + 1))[ot.cw]),
            self.acc_in_accumulate.eq(ot.acc),
        ]
        po_addr = Signal(bits_for(a.act_words) + 1)  # output address of the row
        po_blk = Signal(bits_for(a.act_words) + 1)  # output address of the block's first row
        po_par = Signal(16)  # parameter address of the block
        with m.If(phase == 2):
            m.d.sync += cnt.eq(cnt - 1)
            with m.If(cnt == 1):
                m.d.sync += [phase.eq(Mux(S.last_k, 3, 0)), t.eq(0), nb.eq(0),
                             n_left.eq(S.n), s_acc.eq(S.acc_base), po_addr.eq(S.out_base),
                             po_blk.eq(S.out_base), po_par.eq(S.par_base)]

        # ------------------------------------------------------- post-process
        p_cw = minc(n_left, C)
        post_issue = phase == 3
        m.d.comb += [self.acc_rd_en.eq(post_issue), self.acc_rd_addr.eq(s_acc),
                     self.par_rd_en.eq(post_issue), self.par_rd_addr.eq(po_par)]
        pv = Signal()
        p_addr = Signal(bits_for(a.act_words))
        p_cwq = Signal(bits_for(C + 1))
        m.d.sync += [pv.eq(post_issue), p_addr.eq(po_addr), p_cwq.eq(p_cw)]
        m.d.comb += self.pp_in_valid.eq(pv)
        d_addr, d_cw = p_addr, p_cwq
        for i in range(self.post_latency):
            na = Signal.like(p_addr, name=f"post_addr_d{i}")
            nc = Signal.like(p_cwq, name=f"post_cw_d{i}")
            m.d.sync += [na.eq(d_addr), nc.eq(d_cw)]
            d_addr, d_cw = na, nc
        m.d.comb += [
            self.act_wr_addr.eq(d_addr),
            self.act_wr_mask.eq(Mux(self.pp_out_valid,
                                    Array(((1 << i) - 1) for i in range(C + 1))[d_cw], 0)),
        ]
        with m.If(post_issue):
            m.d.sync += [t.eq(t + 1), s_acc.eq(s_acc + p_cw), po_addr.eq(po_addr + L.gemm_n)]
            with m.If(t == S.m - 1):
                m.d.sync += [t.eq(0), nb.eq(nb + 1), n_left.eq(n_left - C),
                             po_addr.eq(po_blk + C), po_blk.eq(po_blk + C), po_par.eq(po_par + C)]
                with m.If(nb == S.nnb - 1):
                    m.d.sync += [phase.eq(4), cnt.eq(self.post_latency + 1)]
        with m.If(phase == 4):
            m.d.sync += cnt.eq(cnt - 1)
            with m.If(cnt == 1):
                m.d.sync += phase.eq(0)
        return m

    # ------------------------------------------------------------------ WS
    def _ws_run(self, m: Module, v: dict) -> None:
        R, C = self.arch.rows, self.arch.cols
        L, S, db, sb = v["L"], v["S"], v["db"], v["sb"]
        phase, t, kb, nb, cnt = v["phase"], v["t"], v["kb"], v["nb"], v["cnt"]
        k_left, n_left, minc = v["k_left"], v["n_left"], v["minc"]
        wcol, wblk, wrow, accn = v["wcol"], v["wblk"], v["wrow"], v["accn"]
        kblk, pcur, more, streaming = v["kblk"], v["pcur"], v["more"], v["streaming"]
        lane_koff, lane_hoff, lane_woff, lane_kval = (v["lane_koff"], v["lane_hoff"],
                                                      v["lane_woff"], v["lane_kval"])
        s_acc, s_cw, s_accum, mx = v["s_acc"], v["s_cw"], v["s_accum"], v["mx"]
        run = phase == 1
        slot_len = Mux(more & streaming, mx, Mux(more, R, S.m))
        preload = run & more & (t < R)
        stream = run & streaming & (t < S.m)
        # reduction-walk chain over the R lanes of the preload block (+1: next block start)
        chain = [kblk]
        for r in range(R):
            chain.append(k_step(m, chain[-1], L, f"kch{r}", sb, db))
        row = (R - 1) - t[:max(1, (R - 1).bit_length())] if R > 1 else 0
        m.d.comb += [
            self.w_rd_en.eq(preload), self.w_rd_addr.eq(wrow),
            v["iss_pl"].eq(preload), v["iss_pl_rowok"].eq(row < k_left),
            v["iss_cw"].eq(minc(n_left, C)),
            v["iss_in"].eq(stream), v["iss_first"].eq(stream & (t == 0)),
            v["iss_tag"].row.eq(0), v["iss_tag"].addr.eq(s_acc), v["iss_tag"].acc.eq(s_accum),
            v["iss_tag"].cw.eq(s_cw), v["iss_tag"].rv.eq(1),
            self.act_rd_en.eq(stream),
        ]
        lane_ok = v["iss_lane_ok"]
        for r in range(R):
            m.d.comb += [
                self.act_rd_addr[r].eq(pcur["pix"] + lane_koff[r]),
                lane_ok[r].eq(lane_kval[r] & _in_window(pcur["hp"], lane_hoff[r], pcur["wq"],
                                                        lane_woff[r], L)),
            ]
        with m.If(preload):
            m.d.sync += wrow.eq(wrow - S.n)
        with m.If(stream):
            nxt = pix_step(m, pcur, L, "pnext", sb, db)
            m.d.sync += [pcur[f].eq(nxt[f]) for f in P_F]
            m.d.sync += s_acc.eq(s_acc + s_cw)
        with m.If(run):
            m.d.sync += t.eq(t + 1)
            with m.If(t == slot_len - 1):
                m.d.sync += t.eq(0)
                with m.If(~more):  # the final stream slot ended
                    m.d.sync += [phase.eq(2), cnt.eq(self.array_latency + 2)]
                # the preloaded block becomes the stream block
                m.d.sync += [streaming.eq(more), s_cw.eq(minc(n_left, C)),
                             s_accum.eq(~(S.first_k & (kb == 0))), s_acc.eq(accn)]
                m.d.sync += [pcur[f].eq(v["tile_pix_start"][f]) for f in P_F]
                for r in range(R):
                    m.d.sync += [lane_koff[r].eq(chain[r]["koff"]),
                                 lane_hoff[r].eq(chain[r]["hoff"]),
                                 lane_woff[r].eq(chain[r]["woff"]),
                                 lane_kval[r].eq(r < k_left)]
                # next preload block
                with m.If(kb == S.nkb - 1):
                    with m.If(nb == S.nnb - 1):
                        m.d.sync += more.eq(0)
                    m.d.sync += [kb.eq(0), nb.eq(nb + 1), k_left.eq(S.k), n_left.eq(n_left - C),
                                 wcol.eq(wcol + C), wblk.eq(wcol + C),
                                 wrow.eq(wcol + C + S.w_rlast), accn.eq(accn + S.acc_blk)]
                    m.d.sync += [kblk[f].eq(v["tile_k_start_r"][f]) for f in K_F]
                with m.Else():
                    m.d.sync += [kb.eq(kb + 1), k_left.eq(k_left - R),
                                 wblk.eq(wblk + S.w_kstride),
                                 wrow.eq(wblk + S.w_kstride + S.w_rlast)]
                    m.d.sync += [kblk[f].eq(chain[R][f]) for f in K_F]

    # ------------------------------------------------------------------ OS
    def _os_run(self, m: Module, v: dict) -> None:
        R, C = self.arch.rows, self.arch.cols
        L, S, db, sb = v["L"], v["S"], v["db"], v["sb"]
        phase, t, mb, nb, cnt = v["phase"], v["t"], v["mb"], v["nb"], v["cnt"]
        m_left, n_left, minc = v["m_left"], v["n_left"], v["minc"]
        wcol, wrow, accn, s_acc = v["wcol"], v["wrow"], v["accn"], v["s_acc"]
        pblk, kcur = v["pblk"], v["kcur"]
        run = phase == 1
        last_pass = (mb == S.nmb - 1) & (nb == S.nnb - 1)
        slot_len = Mux(last_pass, S.k, v["mx"])
        issue = run & (t < S.k)
        chain = [pblk]
        for i in range(R):
            chain.append(pix_step(m, chain[-1], L, f"pch{i}", sb, db))
        cw = minc(n_left, C)
        m.d.comb += [
            self.w_rd_en.eq(issue), self.w_rd_addr.eq(wrow),
            v["iss_pl"].eq(0), v["iss_pl_rowok"].eq(1), v["iss_cw"].eq(cw),
            v["iss_in"].eq(issue), v["iss_first"].eq(issue & (t == 0)),
            v["iss_last"].eq(issue & (t == S.k - 1)),
            v["iss_tag"].row.eq(0), v["iss_tag"].addr.eq(s_acc),
            v["iss_tag"].acc.eq(~S.first_k), v["iss_tag"].cw.eq(cw),
            v["iss_tag"].rv.eq(minc(m_left, R)),
            self.act_rd_en.eq(issue),
        ]
        for i in range(R):
            m.d.comb += [
                self.act_rd_addr[i].eq(chain[i]["pix"] + kcur["koff"]),
                v["iss_lane_ok"][i].eq((i < m_left) & _in_window(
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
                m.d.sync += [kcur[f].eq(v["tile_k_start_r"][f]) for f in K_F]
                with m.If(last_pass):
                    m.d.sync += [phase.eq(2), cnt.eq(self.array_latency + R + 1)]
                with m.If(mb == S.nmb - 1):
                    m.d.sync += [mb.eq(0), nb.eq(nb + 1), m_left.eq(S.m),
                                 n_left.eq(n_left - C), wcol.eq(wcol + C), wrow.eq(wcol + C),
                                 accn.eq(accn + S.acc_blk), s_acc.eq(accn + S.acc_blk)]
                    m.d.sync += [pblk[f].eq(v["tile_pix_start"][f]) for f in P_F]
                with m.Else():
                    m.d.sync += [mb.eq(mb + 1), m_left.eq(m_left - R),
                                 s_acc.eq(s_acc + cw * R), wrow.eq(wcol)]
                    m.d.sync += [pblk[f].eq(chain[R][f]) for f in P_F]
