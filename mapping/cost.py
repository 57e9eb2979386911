"""Analytical cost model: cycles, accesses and energy of one layer mapping.

``evaluate(lm, arch)`` gives exactly the cycles of :func:`mapping.timing.layer_cycles`
(the plain tile loop of the timing contract) but in closed form, and the
accesses defined in docs/timing.md ("## Accesses"), priced by
:mod:`mapping.energy`.

Closed form: along each GEMM dimension ``d`` with size ``D`` and tile ``t`` there
are ``c = ceil(D/t)`` tiles, ``c-1`` *full* ones of size ``t`` and one *last* one
of size ``e = D-(c-1)t``. A tile's cycles depend only on its sizes, so the tile
loop collapses into at most 8 size classes (full/last along m, n, k), each
with a count. Weight reloads follow from the loop order: every weight tile is
loaded ``cm`` times if a k or n loop with more than one tile runs inside the m
loop, else once. Double buffering overlaps a tile with the next tile's burst;
its ``max(dur_i, dma_i+1)`` terms are summed over the three kinds of
consecutive-tile transitions of a 3-deep loop nest (innermost index +1;
innermost wraps and middle +1; both wrap and outer +1), each a product of
per-dimension (class before, size after, count) options: 14 terms in all.

Every function here works element-wise on numpy integer arrays of tile sizes,
which is how :mod:`mapping.mapper` evaluates a whole candidate grid at once.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from mapping import timing
from mapping.arch import ArchSpec
from mapping.energy import ACCESS_KEYS, energy_table
from mapping.loopnest import LoopNest
from mapping.schedule import LayerCost, LayerMapping, MappingError

DIMS = ("m", "n", "k")
OBJECTIVES = ("latency", "energy", "edp")


def _cdiv(a, b):
    return -(-a // b)


# ---------------------------------------------------------------- layer checks
def act_requirement(nest: LoopNest) -> tuple[int, int]:
    """(input elements, output elements) the activation scratchpad holds for a layer."""
    if nest.kind == "conv":
        inp = nest.N * nest.C * nest.H * nest.W
    else:
        inp = nest.gemm_m * nest.gemm_k
    return inp, nest.gemm_m * nest.gemm_n


def check_layer(nest: LoopNest, arch: ArchSpec, layer: str = "layer") -> None:
    """Raise MappingError if the layer's input + output do not fit ``act_words``."""
    inp, out = act_requirement(nest)
    if inp + out > arch.act_words:
        raise MappingError(
            f"{layer}: activation scratchpad too small: input {inp} + output {out} = "
            f"{inp + out} elements, act_words = {arch.act_words} (needs at least {inp + out})"
        )


@functools.lru_cache(maxsize=4096)
def nonpad_count(nest: LoopNest) -> int:
    """Elements of the virtual im2col matrix (M x K) that are not padding zeros."""
    if nest.kind == "gemm":
        return nest.gemm_m * nest.gemm_k

    def valid(out: int, taps: int, size: int) -> int:
        o = np.arange(out)[:, None] * nest.stride
        r = np.arange(taps)[None, :] * nest.dilation
        pos = o + r - nest.padding
        return int(np.count_nonzero((pos >= 0) & (pos < size)))

    return nest.N * nest.C * valid(nest.P, nest.R, nest.H) * valid(nest.Q, nest.S, nest.W)


# --------------------------------------------------------------- per-tile terms
def compute_cycles(sm, sn, sk, arch: ArchSpec):
    """Array form of :func:`mapping.timing.compute_cycles` for tile sizes (sm, sn, sk)."""
    if arch.dataflow == "ws":
        p = _cdiv(sk, arch.rows) * _cdiv(sn, arch.cols)
        return (arch.rows + (p - 1) * np.maximum(sm, arch.rows) + sm
                + timing.ws_pipeline_depth(arch))
    p = _cdiv(sm, arch.rows) * _cdiv(sn, arch.cols)
    return (p - 1) * np.maximum(sk, arch.rows) + sk + timing.os_pipeline_depth(arch)


def postproc_cycles(sm, sn, arch: ArchSpec):
    return sm * _cdiv(sn, arch.cols) + timing.POST_LATENCY


def weight_words(sk, sn, arch: ArchSpec):
    return _cdiv(sk * sn, arch.weights_per_ext_word)


def dma_cycles(words, arch: ArchSpec):
    if arch.weight_store == "rom":
        return timing.DMA_SETUP + timing.ROM_LATENCY + words
    burst = np.ceil(words / arch.ext_bandwidth).astype(np.int64)
    return timing.DMA_SETUP + arch.ext_latency + burst


# ------------------------------------------------------------------ the grid
class Grid:
    """Order-independent terms for arrays of tile sizes ``tm, tn, tk`` (one layer).

    ``cost(order)`` adds the order-dependent ones (reloads, overlap, validity).
    """

    def __init__(self, nest: LoopNest, arch: ArchSpec, tm, tn, tk):
        self.nest, self.arch = nest, arch
        D = {"m": nest.gemm_m, "n": nest.gemm_n, "k": nest.gemm_k}
        self.D = D
        self.t = {"m": np.asarray(tm, np.int64), "n": np.asarray(tn, np.int64),
                  "k": np.asarray(tk, np.int64)}
        self.c = {d: _cdiv(D[d], self.t[d]) for d in DIMS}
        self.e = {d: D[d] - (self.c[d] - 1) * self.t[d] for d in DIMS}
        # size and count of class L (0 = full, 1 = last) along each dim
        self.size = {d: (self.t[d], self.e[d]) for d in DIMS}
        self.cnt = {d: (self.c[d] - 1, 1) for d in DIMS}
        sz, cnt = self.size, self.cnt
        # tile durations by class (Lm, Ln, Lk); post-processing after last-k tiles
        self.dur = {}
        compute = post = 0
        for lm_, ln_, lk_ in itertools.product((0, 1), repeat=3):
            comp = compute_cycles(sz["m"][lm_], sz["n"][ln_], sz["k"][lk_], arch)
            n_cls = cnt["m"][lm_] * cnt["n"][ln_] * cnt["k"][lk_]
            compute = compute + n_cls * comp
            d = comp
            if lk_:
                pp = postproc_cycles(sz["m"][lm_], sz["n"][ln_], arch)
                post = post + n_cls * pp
                d = comp + pp
            self.dur[lm_, ln_, lk_] = d
        self.compute, self.postproc = compute, post
        self.busy = compute + post
        # one burst per weight tile class (Lk, Ln)
        self.words, self.dma = {}, {}
        words_once = dma_once = 0
        for lk_, ln_ in itertools.product((0, 1), repeat=2):
            w = weight_words(sz["k"][lk_], sz["n"][ln_], arch)
            c = dma_cycles(w, arch)
            self.words[lk_, ln_], self.dma[lk_, ln_] = w, c
            n_cls = cnt["k"][lk_] * cnt["n"][ln_]
            words_once = words_once + n_cls * w
            dma_once = dma_once + n_cls * c
        self.words_once, self.dma_once = words_once, dma_once
        self.tiles = self.c["m"] * self.c["n"] * self.c["k"]
        self.w_fits = (self.t["k"] * self.t["n"] * (2 if arch.double_buffer else 1)
                       <= arch.w_words)
        # order-independent accesses
        M, N, K = D["m"], D["n"], D["k"]
        rows, cols = arch.rows, arch.cols
        nb_total = (self.c["n"] - 1) * _cdiv(self.t["n"], cols) + _cdiv(self.e["n"], cols)
        if arch.dataflow == "ws":
            kpass = (self.c["k"] - 1) * _cdiv(self.t["k"], rows) + _cdiv(self.e["k"], rows)
            wread = self.c["m"] * K * N
        else:
            kpass = self.c["k"]
            mb_total = (self.c["m"] - 1) * _cdiv(self.t["m"], rows) + _cdiv(self.e["m"], rows)
            wread = mb_total * K * N
        self.acc_writes = M * N * kpass
        self.wbuf_reads = wread
        self.act_reads = nb_total * nonpad_count(nest)

    # ------------------------------------------------------------ per order
    def reloads(self, order):
        """Times each weight tile is loaded: cm if a k/n loop of >1 tile is inside m, else 1."""
        inside = order[order.index("m") + 1:]
        cond = np.zeros(np.shape(self.t["m"]), bool)
        for d in inside:
            cond = cond | (self.c[d] > 1)
        return np.where(cond, self.c["m"], 1)

    def acc_footprint(self, order):
        f = self.t["m"] * self.t["n"]
        for d in order[order.index("k") + 1:]:
            f = f * self.c[d]
        return f

    def _pair_sum(self, order):
        """Sum over consecutive tile pairs (i, i+1) of max(dur_i, dma of i+1 if it loads)."""
        A, B, C = order
        c, cnt = self.c, self.cnt
        zero = np.zeros(np.shape(self.t["m"]), np.int64)

        def stay(d):  # (class of i, size class of i+1, count)
            return [(0, 0, cnt[d][0]), (1, 1, 1)]

        def inc(d):
            return [(0, 0, np.maximum(c[d] - 2, 0)), (0, 1, (c[d] >= 2).astype(np.int64))]

        def wrap(d):  # last -> first; the first tile along d has the full size t
            return [(1, 0, 1)]

        def changes(d, how):  # does the weight tile id change along d?
            if d == "m":
                return np.zeros(zero.shape, bool)
            return np.ones(zero.shape, bool) if how == "inc" else c[d] > 1

        total = zero
        kinds = (
            ({A: stay, B: stay, C: inc}, changes(C, "inc")),
            ({A: stay, B: inc, C: wrap}, changes(B, "inc") | changes(C, "wrap")),
            ({A: inc, B: wrap, C: wrap}, changes(A, "inc") | changes(B, "wrap")
             | changes(C, "wrap")),
        )
        for opts, load in kinds:
            for om, on, ok in itertools.product(opts["m"]("m"), opts["n"]("n"), opts["k"]("k")):
                n_pairs = om[2] * on[2] * ok[2]
                dur_i = self.dur[om[0], on[0], ok[0]]
                dma_j = np.where(load, self.dma[ok[1], on[1]], 0)
                total = total + n_pairs * np.maximum(dur_i, dma_j)
        return total

    def cost(self, order) -> dict:
        """Order-dependent arrays: cycles, phases, DMA words, accesses, validity."""
        arch = self.arch
        R = self.reloads(order)
        dma = R * self.dma_once
        if arch.double_buffer:
            # the first tile has the full size t along every dim (t <= D); the last is all-last
            total = self.dma[0, 0] + self._pair_sum(order) + self.dur[1, 1, 1]
        else:
            total = self.busy + dma
        M, N, K = self.D["m"], self.D["n"], self.D["k"]
        acc = {
            "store.w.read": R * self.words_once,
            "wbuf.w.write": R * (K * N),
            "wbuf.w.read": self.wbuf_reads,
            "act.in.read": self.act_reads,
            "act.out.write": M * N,
            "acc.psum.read": self.acc_writes - M * N,
            "acc.psum.write": self.acc_writes,
            "acc.out.read": M * N,
        }
        return {
            "cycles": timing.LAYER_SETUP + total,
            "compute": self.compute,
            "postproc": self.postproc,
            "dma": dma,
            "dma_stall": total - self.busy,
            "tiles": self.tiles,
            "dma_bursts": R * self.c["k"] * self.c["n"],
            "dma_words": acc["store.w.read"],
            "accesses": acc,
            "valid": self.w_fits & (self.acc_footprint(order) <= arch.acc_words),
        }


# -------------------------------------------------------------------- public
def evaluate(lm: LayerMapping, arch: ArchSpec) -> LayerCost:
    """Cycles (== mapping.timing.layer_cycles), accesses, energy and utilisation of ``lm``.

    Raises MappingError if the hardware cannot run it (mapping.timing.check,
    plus the layer's activations against ``act_words``).
    """
    timing.check(lm, arch)
    check_layer(lm.nest, arch, lm.layer)
    g = Grid(lm.nest, arch, [lm.tile_m], [lm.tile_n], [lm.tile_k])
    r = g.cost(tuple(lm.order))
    accesses = {k: int(np.asarray(r["accesses"][k]).reshape(-1)[0]) for k in ACCESS_KEYS}

    def one(x) -> int:
        return int(np.asarray(x).reshape(-1)[0])

    cycles = one(r["cycles"])
    macs = lm.nest.macs
    energy = energy_table(lm.nest, arch).energy(accesses, macs)
    return LayerCost(
        cycles=cycles,
        macs=macs,
        utilization=macs / (arch.rows * arch.cols * cycles),
        energy_pj=float(energy),
        accesses=accesses,
        breakdown={
            "setup": timing.LAYER_SETUP,
            "compute": one(r["compute"]),
            "postproc": one(r["postproc"]),
            "dma": one(r["dma"]),
            "dma_stall": one(r["dma_stall"]),
            "tiles": one(r["tiles"]),
            "dma_bursts": one(r["dma_bursts"]),
        },
    )


def objective_value(objective: str, cycles, energy):
    """The scalar minimised by the mapper: cycles, energy (pJ) or energy x cycles."""
    if objective == "latency":
        return cycles
    if objective == "energy":
        return energy
    if objective == "edp":
        return energy * cycles
    raise MappingError(f"objective {objective!r} is invalid; allowed: {', '.join(OBJECTIVES)}")
