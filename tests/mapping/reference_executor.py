"""Independent reference for mapping.cost: run a tiled loop nest element by element.

The executor walks the tile loops in the mapping's order, runs each tile's
array passes as the dataflow does (docs/timing.md, "## Accesses"), counts every
read and write per level and operand, and computes the layer's output with
the same traversal, so the result can be checked against numpy. It shares no
code with mapping.cost or mapping.timing: only LoopNest.im2col_index and the
plain fields of LayerMapping / ArchSpec.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


def _ceil(a: int, b: int) -> int:
    return (a + b - 1) // b


def random_operands(nest: LoopNest, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, weights): conv input (N, C, H, W) and weights (K, C, R, S); GEMM a (M, K), w (K, N)."""
    if nest.kind == "conv":
        x = rng.integers(-8, 8, size=(nest.N, nest.C, nest.H, nest.W))
        w = rng.integers(-8, 8, size=(nest.K, nest.C, nest.R, nest.S))
    else:
        x = rng.integers(-8, 8, size=(nest.gemm_m, nest.gemm_k))
        w = rng.integers(-8, 8, size=(nest.gemm_k, nest.gemm_n))
    return x.astype(np.int64), w.astype(np.int64)


def numpy_output(nest: LoopNest, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The layer output as an (M, N) matrix, computed directly (conv: brute-force loops)."""
    if nest.kind == "gemm":
        return x @ w
    sh, sw = nest.stride_h, nest.stride_w
    xp = np.pad(x, ((0, 0), (0, 0), (nest.pad_h,) * 2, (nest.pad_w,) * 2))
    out = np.zeros((nest.N, nest.K, nest.P, nest.Q), np.int64)
    for r in range(nest.R):
        for s in range(nest.S):
            h0, w0 = r * nest.dil_h, s * nest.dil_w
            patch = xp[:, :, h0:h0 + sh * (nest.P - 1) + 1:sh,
                       w0:w0 + sw * (nest.Q - 1) + 1:sw]  # N, C, P, Q
            out += np.einsum("ncpq,kc->nkpq", patch, w[:, :, r, s])
    return out.transpose(0, 2, 3, 1).reshape(nest.gemm_m, nest.gemm_n)  # (n p q) x k


def _weight(nest: LoopNest, w: np.ndarray, k: int, n: int) -> int:
    if nest.kind == "gemm":
        return int(w[k, n])
    rs, c = divmod(k, nest.C)
    r, s = divmod(rs, nest.S)
    return int(w[n, c, r, s])


def execute(lm: LayerMapping, arch: ArchSpec, x: np.ndarray, w: np.ndarray
            ) -> tuple[np.ndarray, Counter]:
    """Run ``lm`` element by element: (output (M, N), access counts by "level.operand.op")."""
    nest = lm.nest
    M, N, K = nest.gemm_m, nest.gemm_n, nest.gemm_k
    size = {"m": M, "n": N, "k": K}
    tile = {"m": lm.tile_m, "n": lm.tile_n, "k": lm.tile_k}
    count = {d: _ceil(size[d], tile[d]) for d in size}
    wpw = arch.ext_word_bits // arch.w_bits
    rows, cols = arch.rows, arch.cols
    acts = Counter()
    acc = np.zeros((M, N), np.int64)
    written = np.zeros((M, N), bool)  # the first write of an output element needs no read
    out = np.zeros((M, N), np.int64)
    loaded = None

    def act(m: int, k: int) -> int:
        idx = nest.im2col_index(m, k)
        if idx is None:
            return 0  # padding zero, produced without a memory read
        acts["act.in.read"] += 1
        return int(x[idx]) if nest.kind == "conv" else int(x[idx[0], idx[1]])

    def accumulate(m: int, n: int, v: int) -> None:
        if written[m, n]:
            acts["acc.psum.read"] += 1
            acc[m, n] += v
        else:
            acc[m, n] = v
            written[m, n] = True
        acts["acc.psum.write"] += 1

    outer, middle, inner = lm.order
    for a in range(count[outer]):
        for b in range(count[middle]):
            for c in range(count[inner]):
                i = {outer: a, middle: b, inner: c}
                lo = {d: i[d] * tile[d] for d in size}
                hi = {d: min(lo[d] + tile[d], size[d]) for d in size}
                if loaded != (i["k"], i["n"]):  # DMA burst of the weight tile
                    loaded = (i["k"], i["n"])
                    elems = (hi["k"] - lo["k"]) * (hi["n"] - lo["n"])
                    acts["store.w.read"] += _ceil(elems, wpw)
                    acts["wbuf.w.write"] += elems
                if lm.dataflow == "ws":
                    for k0 in range(lo["k"], hi["k"], rows):
                        ks = range(k0, min(k0 + rows, hi["k"]))
                        for n0 in range(lo["n"], hi["n"], cols):
                            ns = range(n0, min(n0 + cols, hi["n"]))
                            block = {(k, n): _weight(nest, w, k, n) for k in ks for n in ns}
                            acts["wbuf.w.read"] += len(block)
                            for m in range(lo["m"], hi["m"]):
                                vec = [act(m, k) for k in ks]
                                for n in ns:
                                    accumulate(m, n, sum(v * block[k, n]
                                                         for v, k in zip(vec, ks, strict=True)))
                else:
                    for m0 in range(lo["m"], hi["m"], rows):
                        ms = range(m0, min(m0 + rows, hi["m"]))
                        for n0 in range(lo["n"], hi["n"], cols):
                            ns = range(n0, min(n0 + cols, hi["n"]))
                            psum = {(m, n): 0 for m in ms for n in ns}
                            for k in range(lo["k"], hi["k"]):
                                wrow = {n: _weight(nest, w, k, n) for n in ns}
                                acts["wbuf.w.read"] += len(wrow)
                                for m in ms:
                                    v = act(m, k)
                                    for n in ns:
                                        psum[m, n] += v * wrow[n]
                            for (m, n), v in psum.items():  # drain the block
                                accumulate(m, n, v)
                if i["k"] == count["k"] - 1:  # post-processing of the output tile
                    for m in range(lo["m"], hi["m"]):
                        for n in range(lo["n"], hi["n"]):
                            acts["acc.out.read"] += 1
                            acts["act.out.write"] += 1
                            out[m, n] = acc[m, n]
    return out, acts


def tile_level_accesses(lm: LayerMapping, arch: ArchSpec, nonpad: np.ndarray | None = None
                        ) -> Counter:
    """The same access counts tile by tile (fast enough for brute-force searches).

    ``nonpad``: optional (M, K) 0/1 matrix of im2col entries that are not padding.
    """
    from mapping import timing  # the tile loop of the contract (cycles are not used here)

    nest = lm.nest
    if nonpad is None:
        nonpad = np.array([[nest.im2col_index(m, k) is not None for k in range(nest.gemm_k)]
                           for m in range(nest.gemm_m)], np.int64)
    wpw = arch.ext_word_bits // arch.w_bits
    c = Counter()
    for t in timing.iter_tiles(lm):
        m0, k0 = t.mi * lm.tile_m, t.ki * lm.tile_k
        if t.load_weights:
            c["store.w.read"] += _ceil(t.k * t.n, wpw)
            c["wbuf.w.write"] += t.k * t.n
        c["act.in.read"] += _ceil(t.n, arch.cols) * int(nonpad[m0:m0 + t.m, k0:k0 + t.k].sum())
        if lm.dataflow == "ws":
            c["wbuf.w.read"] += t.k * t.n
            writes = t.m * t.n * _ceil(t.k, arch.rows)
        else:
            c["wbuf.w.read"] += _ceil(t.m, arch.rows) * t.k * t.n
            writes = t.m * t.n
        c["acc.psum.write"] += writes
        c["acc.psum.read"] += writes - (t.m * t.n if t.first_k else 0)
        if t.last_k:
            c["acc.out.read"] += t.m * t.n
            c["act.out.write"] += t.m * t.n
    return c
