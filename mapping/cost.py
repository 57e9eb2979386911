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
from mapping.bands import BandError, nest_window, plan_bands
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
    """Raise MappingError if the layer cannot run: its input + output do not fit
    ``act_words`` and not even one output row of it does (``mapping.bands``: a layer that
    does not fit runs in row bands through external memory; one of a batch > 1 does not)."""
    inp, out = act_requirement(nest)
    if inp + out <= arch.act_words:
        return
    if nest.kind == "conv" and nest.N > 1:
        raise MappingError(
            f"{layer}: activation scratchpad too small: input {inp} + output {out} = "
            f"{inp + out} elements, act_words = {arch.act_words} (needs at least {inp + out}; "
            "a batch of several images does not run in row bands)")
    try:
        plan_bands(nest_window(nest), arch.act_words, timing.act_per_word(arch), layer)
    except BandError as exc:
        raise MappingError(str(exc)) from None


@functools.lru_cache(maxsize=4096)
def nonpad_count(nest: LoopNest) -> int:
    """Elements of the virtual im2col matrix (M x K) that are not padding zeros."""
    if nest.kind == "gemm":
        return nest.gemm_m * nest.gemm_k

    def valid(out: int, taps: int, size: int, stride: int, dil: int, pad: int) -> int:
        pos = np.arange(out)[:, None] * stride + np.arange(taps)[None, :] * dil - pad
        return int(np.count_nonzero((pos >= 0) & (pos < size)))

    return (nest.N * nest.C
            * valid(nest.P, nest.R, nest.H, nest.stride_h, nest.dil_h, nest.pad_h)
            * valid(nest.Q, nest.S, nest.W, nest.stride_w, nest.dil_w, nest.pad_w))


# --------------------------------------------------------------- per-tile terms
def weight_words(sk, sn, arch: ArchSpec):
    """Array form of :func:`mapping.timing.weight_words`."""
    return _cdiv(sk * sn, arch.weights_per_ext_word)


def dma_cycles(words, arch: ArchSpec):
    """Array form of :func:`mapping.timing.dma_cycles`."""
    if arch.weight_store == "rom":
        return timing.DMA_SETUP + timing.ROM_LATENCY + words
    burst = np.ceil(words / arch.ext_bandwidth).astype(np.int64)
    return timing.DMA_SETUP + arch.ext_latency + burst


def axis_terms(dim: int, t, block: int, rows: int) -> dict:
    """Per-axis quantities of tile sizes ``t`` along a dimension of size ``dim``.

    ``c`` tiles, ``e`` size of the last one; per class L (0 = full, 1 = last):
    ``cnt`` count, ``size``, ``blk`` array blocks ``ceil(size/block)``, ``mx``
    ``max(size, rows)``; ``blk_total`` blocks summed over all tiles; ``inc``
    counts of the two "index + 1" transitions (full->full, full->last).
    """
    t = np.asarray(t, np.int64)
    c = _cdiv(dim, t)
    e = dim - (c - 1) * t
    bt, be = _cdiv(t, block), _cdiv(e, block)
    return {
        "t": t, "c": c, "e": e, "cnt": (c - 1, 1), "size": (t, e), "blk": (bt, be),
        "mx": (np.maximum(t, rows), np.maximum(e, rows)), "blk_total": (c - 1) * bt + be,
        "inc": (np.maximum(c - 2, 0), (c >= 2).astype(np.int64)), "gt1": c > 1,
    }


def _mul(*xs):
    """Product skipping python-int 1 factors, smallest arrays first (broadcast operands
    of different shapes: the cheap products happen before the full-size one)."""
    xs = sorted((x for x in xs if not (isinstance(x, int) and x == 1)), key=np.size)
    if not xs:
        return 1
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def _run_counts(ks, run: int, rows: int):
    """For k-tile sizes ``ks`` (array) starting on a run (``mapping.timing.block_runs``
    from 0): ``({g: number of reduction blocks spanning g runs}, runs of the last block)``,
    each an array shaped like ``ks``."""
    ks = np.asarray(ks, np.int64)
    uniq, inv = np.unique(ks, return_inverse=True)
    seqs = [timing.block_runs(0, int(u), run, rows) for u in uniq]
    gs = sorted({g for sq in seqs for g in sq})
    counts = {g: np.array([sq.count(g) for sq in seqs], np.int64)[inv].reshape(ks.shape)
              for g in gs}
    last = np.array([sq[-1] for sq in seqs], np.int64)[inv].reshape(ks.shape)
    return counts, last


def runs_uniform(nest: LoopNest, arch: ArchSpec, tk):
    """Where (array over k-tile sizes ``tk``) every k tile of a layer gathered by runs
    (``mapping.timing.gather_run``) spans the runs a tile from a run boundary would:
    one k tile, tiles of whole runs, or runs of whole ``rows`` blocks with tiles of whole
    blocks. :class:`Grid` prices those exactly; the mapper searches only them."""
    tk = np.asarray(tk, np.int64)
    run = timing.gather_run(nest, arch)
    if run is None:
        return np.ones(tk.shape, bool)
    R = arch.rows  # noqa: N806
    return (tk >= nest.gemm_k) | (tk % run == 0) | ((run % R == 0) & (tk % R == 0))


# ------------------------------------------------------------------ the grid
class Grid:
    """Order-independent terms for arrays of tile sizes ``tm, tn, tk`` (one layer).

    The three arrays broadcast against each other (e.g. ``tm`` a column, ``tn``
    and ``tk`` a row): per-axis terms are computed at their own shape and only
    the cross products are full size. ``cost(order)`` adds the order-dependent
    terms.
    """

    def __init__(self, nest: LoopNest, arch: ArchSpec, tm, tn, tk):
        self.nest, self.arch = nest, arch
        self.D = D = {"m": nest.gemm_m, "n": nest.gemm_n, "k": nest.gemm_k}
        rows, cols = arch.rows, arch.cols
        ax = {d: axis_terms(D[d], t, cols if d == "n" else rows, rows)
              for d, t in (("m", tm), ("n", tn), ("k", tk))}
        self.ax = ax
        self.t = {d: ax[d]["t"] for d in DIMS}
        self.c = {d: ax[d]["c"] for d in DIMS}
        m, n, k = ax["m"], ax["n"], ax["k"]
        ws = arch.dataflow == "ws"
        depth = timing.ws_pipeline_depth(arch) if ws else timing.os_pipeline_depth(arch)
        # compute cycles, ws: rows + (p-1)*max(sm, rows) + sm + depth, p = blk_k * blk_n
        #                 os: (p-1)*max(sk, rows) + sk + depth,       p = blk_m * blk_n
        lead, other = ("m", "k") if ws else ("k", "m")
        base = [(rows if ws else 0) + depth + ax[lead]["size"][L] - ax[lead]["mx"][L]
                for L in (0, 1)]
        blocks = {(lo, ln): ax[other]["blk"][lo] * n["blk"][ln] for lo in (0, 1) for ln in (0, 1)}
        self.dur = {}
        compute = post = 0
        run = timing.gather_run(nest, arch) if ws else None
        runs = ({lk_: _run_counts(k["size"][lk_], run, rows) for lk_ in (0, 1)}
                if run is not None and run % rows else None)
        for lm_, ln_, lk_ in itertools.product((0, 1), repeat=3):
            ll, lo = (lm_, lk_) if ws else (lk_, lm_)
            if runs is None:
                comp = base[ll] + blocks[lo, ln_] * ax[lead]["mx"][ll]
            else:  # gather by runs: a block streams once per run it spans
                counts, last = runs[lk_]
                sm = m["size"][lm_]
                comp = rows + depth + last * sm - np.maximum(last * sm, rows)
                for g, cnt in counts.items():
                    comp = comp + _mul(n["blk"][ln_], cnt, np.maximum(g * sm, rows))
            n_cls = _mul(m["cnt"][lm_], n["cnt"][ln_], k["cnt"][lk_])
            compute = compute + _mul(n_cls, comp)
            if lk_:
                pp = m["size"][lm_] * n["blk"][ln_] + timing.POST_LATENCY
                post = post + _mul(n_cls, pp)
                comp = comp + pp
            self.dur[lm_, ln_, lk_] = comp
        self.compute, self.postproc = compute, post
        self.busy = compute + post
        # one burst per weight tile class (Lk, Ln)
        self.dma = {}
        words_once = dma_once = 0
        for lk_, ln_ in itertools.product((0, 1), repeat=2):
            w = weight_words(k["size"][lk_], n["size"][ln_], arch)
            c = dma_cycles(w, arch)
            self.dma[lk_, ln_] = c
            n_cls = _mul(k["cnt"][lk_], n["cnt"][ln_])
            words_once = words_once + _mul(n_cls, w)
            dma_once = dma_once + _mul(n_cls, c)
        self.words_once, self.dma_once = words_once, dma_once
        self.tiles = _mul(m["c"], n["c"], k["c"])
        self.tile_mn = m["t"] * n["t"]
        self.shape = np.broadcast_shapes(*(np.shape(ax[d]["t"]) for d in DIMS))
        self.w_fits = k["t"] * n["t"] * (2 if arch.double_buffer else 1) <= arch.w_words
        # order-independent accesses
        M, N, K = D["m"], D["n"], D["k"]
        self.acc_writes = M * N * (k["blk_total"] if ws else k["c"])  # per-axis shapes
        self.wbuf_reads = (m["c"] if ws else m["blk_total"]) * (K * N)
        self.act_reads = n["blk_total"] * nonpad_count(nest)
        self._excess = {}

    # ------------------------------------------------------------ per order
    def reloads(self, order):
        """Times each weight tile is loaded: cm if a k/n loop of >1 tile is inside m, else 1."""
        inside = order[order.index("m") + 1:]
        if not inside:
            return 1
        cond = self.ax[inside[0]]["gt1"]
        if len(inside) == 2:
            cond = cond | self.ax[inside[1]]["gt1"]
        return np.where(cond, self.c["m"], 1)

    def acc_footprint(self, order):
        return _mul(self.tile_mn, *(self.c[d] for d in order[order.index("k") + 1:]))

    def _x(self, li, jk, jn):
        """max(0, burst of a (jk, jn)-size weight tile - duration of a class-li tile), cached."""
        key = (li, jk, jn)
        if key not in self._excess:
            x = np.maximum(self.dma[jk, jn] - self.dur[li], 0)
            self._excess[key] = x if x.any() else None  # None: no stall anywhere
        return self._excess[key]

    def _excess_sum(self, order):
        """Sum over consecutive tiles (i, i+1) where i+1 loads weights of
        max(0, dma_{i+1} - dur_i): the DMA stall beyond the first burst."""
        A, B, C = order
        ax = self.ax

        def stay(d, w=1):  # (class of tile i, size class of tile i+1, count)
            return ((0, 0, ax[d]["cnt"][0]), (1, 1, w))

        def inc(d, w=1):
            return ((0, 0, _mul(w, ax[d]["inc"][0])), (0, 1, _mul(w, ax[d]["inc"][1])))

        def wrap(d, w=1):  # last -> first (full size t, as t <= D)
            return ((1, 0, w),)

        kinds = []
        if C != "m":  # innermost +1 changes the weight tile iff it is k or n
            kinds.append({A: stay(A), B: stay(B), C: inc(C)})
        # innermost wraps, middle +1: loads if middle is k/n, or innermost k/n has > 1 tile
        kinds.append({A: stay(A), B: inc(B), C: wrap(C, ax[C]["gt1"] if B == "m" else 1)})
        w3 = (ax[B]["gt1"] | ax[C]["gt1"]) if A == "m" else 1
        kinds.append({A: inc(A, w3), B: wrap(B), C: wrap(C)})
        total = 0
        for opts in kinds:
            for om, on, ok in itertools.product(opts["m"], opts["n"], opts["k"]):
                x = self._x((om[0], on[0], ok[0]), ok[1], on[1])
                if x is not None:
                    total = total + _mul(om[2], on[2], ok[2], x)
        return total

    def cost(self, order) -> dict:
        """Order-dependent arrays: cycles, phases, DMA words, accesses, validity."""
        arch = self.arch
        R = self.reloads(order)
        dma = _mul(R, self.dma_once)
        if arch.double_buffer:
            # dma_0 + sum_i max(dur_i, dma_i+1) + dur_last = busy + dma_0 + sum of excesses;
            # the first tile has the full size t along every dim (t <= D)
            stall = self.dma[0, 0] + self._excess_sum(order)
        else:
            stall = dma
        M, N, K = self.D["m"], self.D["n"], self.D["k"]
        acc = {
            "store.w.read": _mul(R, self.words_once),
            "wbuf.w.write": _mul(R, K * N),
            "wbuf.w.read": self.wbuf_reads,
            "act.in.read": self.act_reads,
            "act.out.write": M * N,
            "acc.psum.read": self.acc_writes - M * N,
            "acc.psum.write": self.acc_writes,
            "acc.out.read": M * N,
        }
        return {
            "cycles": timing.LAYER_SETUP + self.busy + stall,
            "compute": self.compute,
            "postproc": self.postproc,
            "dma": dma,
            "dma_stall": stall,
            "tiles": self.tiles,
            "dma_bursts": _mul(R, self.c["k"], self.c["n"]),
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

    cycles, compute, stall = one(r["cycles"]), one(r["compute"]), one(r["dma_stall"])
    if not runs_uniform(lm.nest, arch, lm.tile_k):  # k tiles off the taps: the tile loop
        lt = timing.layer_cycles(lm, arch)
        cycles, compute, stall = lt.cycles, lt.compute, lt.dma_stall
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
            "compute": compute,
            "postproc": one(r["postproc"]),
            "dma": one(r["dma"]),
            "dma_stall": stall,
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
