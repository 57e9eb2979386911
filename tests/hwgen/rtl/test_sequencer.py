"""Controller address generation (implicit im2col walks) against LoopNest.im2col_index,
and the sequencer's step overlap rule (via the timing contract)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hwgen.compiler.isa import layer_layout
from hwgen.compiler.program import (
    ComputeLayer,
    compile_program,
    decode,
    dims_bits,
    step_fields,
)
from hwgen.rtl.tile_issue import K_F, K_S, P_F, P_S, in_window, k_step, pix_step, walk_regs
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping

ARCH = ArchSpec(rows=3, cols=2, act_words=4096, w_words=512, acc_words=512, ext_word_bits=16)


def _compiled(nest, tile_k):
    n = nest.gemm_n
    lm = LayerMapping("L", nest, "ws", nest.gemm_m, n, tile_k, order=("n", "m", "k"))
    layer = ComputeLayer(lm, np.zeros((nest.gemm_k, n), dtype=int), np.zeros(n, dtype=int),
                         np.full(n, 1 << 14), np.full(n, 8))
    return compile_program(ARCH, [layer])


@pytest.mark.parametrize("conv", [
    dict(N=2, K=1, C=3, H=5, W=4, R=3, S=3, stride=2, padding=1),
    dict(N=1, K=1, C=2, H=6, W=6, R=2, S=3, stride=1, padding=2, dilation=2),
    dict(N=1, K=1, C=1, H=4, W=5, R=1, S=1, stride=3, padding=0),
    # per-axis geometry: a Conv1d (1 x k on a height-1 input), a 3x1 kernel, mixed axes
    dict(N=2, K=1, C=2, H=1, W=9, R=1, S=3, stride=(1, 2), padding=(0, 1), dilation=(1, 2)),
    dict(N=1, K=1, C=2, H=6, W=4, R=3, S=1, stride=(2, 1), padding=(1, 0)),
    dict(N=1, K=1, C=2, H=7, W=6, R=2, S=3, stride=(1, 3), padding=(2, 0), dilation=(2, 1)),
    "gemm",
])
def test_im2col_walks(conv):
    nest = LoopNest.gemm(7, 1, 11) if conv == "gemm" else LoopNest.conv(**conv)
    tile_k = max(1, nest.gemm_k // 2)
    prog = _compiled(nest, tile_k)
    hdr = prog.instructions[0]
    step = decode(step_fields(ARCH), prog.instructions[2])  # the tile at k0 = 0
    step_k2 = [decode(step_fields(ARCH), w) for w in prog.instructions[2:-1]]
    db = dims_bits(ARCH)
    sb = db + 3
    R = ARCH.rows
    m = Module()
    L = Signal(layer_layout(ARCH))
    m.d.comb += L.as_value().eq(hdr)
    kst = walk_regs(K_F, sb, db, K_S, "k")
    pst = walk_regs(P_F, sb, db, P_S, "p")
    chain = [kst]
    for r in range(R):
        chain.append(k_step(m, chain[-1], L, f"c{r}", sb, db))
    nxt = pix_step(m, pst, L, "pn", sb, db)
    m.d.sync += [pst[f].eq(nxt[f]) for f in P_F]
    addr = [Signal(sb + 1, name=f"addr{r}") for r in range(R)]
    ok = [Signal(name=f"ok{r}") for r in range(R)]
    for r in range(R):
        m.d.comb += [addr[r].eq(pst["pix"] + chain[r]["koff"]),
                     ok[r].eq(in_window(pst["hp"], chain[r]["hoff"], pst["wq"],
                                         chain[r]["woff"], L))]
    if nest.kind == "gemm":
        H, W, C = nest.gemm_m, 1, nest.gemm_k
    else:
        H, W, C = nest.H, nest.W, nest.C
    kstarts = sorted({(s["c0"], s["s0"], s["koff0"], s["hoff0"], s["woff0"]) for s in step_k2})

    async def bench(ctx):
        for k_start in kstarts:
            ctx.set(kst["c"], k_start[0])
            ctx.set(kst["s"], k_start[1])
            for f, v in zip(("koff", "hoff", "woff"), k_start[2:], strict=True):
                ctx.set(kst[f], v)
            k0 = next(i for i in range(nest.gemm_k)
                      if (i % C, (i // C) % (nest.S if nest.kind == "conv" else 1)) ==
                      (k_start[0], k_start[1]) and k_start[2] == _koff(nest, i, W, C))
            for f, key in (("q", "q0"), ("p", "p0"), ("pix", "pix0"), ("hp", "hp0"),
                           ("wq", "wq0")):
                ctx.set(pst[f], step[key])
            await ctx.delay(1e-9)
            for mm in range(nest.gemm_m):
                for r in range(R):
                    kk = k0 + r
                    if kk >= nest.gemm_k:
                        continue
                    idx = nest.im2col_index(mm, kk)
                    assert bool(ctx.get(ok[r])) == (idx is not None), (mm, kk)
                    if nest.kind == "gemm":
                        assert ctx.get(addr[r]) == mm * nest.gemm_k + kk
                    elif idx is not None:
                        n, c, h, w = idx
                        assert ctx.get(addr[r]) == ((n * H + h) * W + w) * C + c, (mm, kk)
                await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _koff(nest, k, W, C):
    if nest.kind == "gemm":
        return k
    rs, c = divmod(k, nest.C)
    r, s = divmod(rs, nest.S)
    return r * nest.dil_h * W * C + s * nest.dil_w * C + c
