"""The mapper's search, reduced so that level 0 prices each candidate grid once per layer shape.

:func:`mapping.mapper.search_layer` picks, over the valid (tile sizes, loop
order) candidates of a layer, the lexicographic minimum of
``(objective, DMA words, order, tile_m, tile_n, tile_k)``. Cycles, accesses and
validity of a candidate do not depend on the energy table; only the
``energy``/``edp`` objectives do, through ``energy = macs * mac + sum(count_i *
pJ_i)`` with every ``pJ_i >= 0`` and ``cycles > 0``. In floating point this sum
and ``energy * cycles`` are monotone non-decreasing in every count and in the
cycles. So a candidate ``c`` can never be chosen, for any energy table, when
another candidate ``d`` has cycles and every access count ``<=`` those of ``c``
and a smaller tie-break key (it is at least as good and wins ties).

:func:`survivors` takes the candidate grid of a layer on an ``ArchSpec`` and its
pricing from the mapper (:func:`mapping.mapper.candidate_grid`, priced block by
block exactly as ``search_layer`` prices it), keeps the valid candidates, sorts
them by the tie-break key and drops every candidate dominated in that sense.
Nothing is enumerated or priced here; this module only reduces the mapper's
priced grid differently, and :mod:`dse.level0` caches the result per layer key. What is left (typically 5-100 of
10^4-10^5) answers ``latency``, ``energy`` and ``edp`` queries for any energy
table exactly as ``search_layer`` would (:meth:`Survivors.best`; tested
against ``search_layer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapping.arch import ArchSpec
from mapping.cost import objective_value
from mapping.energy import ACCESS_KEYS, EnergyTable
from mapping.loopnest import LoopNest
from mapping.mapper import FULL_RANGE_UPTO, ORDERS_BY_NAME, Block, candidate_grid


@dataclass(frozen=True)
class Survivors:
    """Candidates that can win for some energy table, in tie-break order.

    ``values`` columns: cycles, then the access counts of :data:`ACCESS_KEYS`;
    ``tiles`` columns: tile_m, tile_n, tile_k; ``orders``: index into
    :data:`mapping.mapper.ORDERS_BY_NAME`; ``valid``: how many candidates were valid.
    """

    values: np.ndarray  # (n, 1 + len(ACCESS_KEYS)) int64
    tiles: np.ndarray  # (n, 3) int64
    orders: np.ndarray  # (n,) int64
    valid: int

    def best(self, objective: str, table: EnergyTable | None, macs: int) -> int:
        """Row of the chosen mapping (``table`` is needed for ``energy``/``edp``)."""
        cycles = self.values[:, 0]
        if objective == "latency":
            return int(np.argmin(cycles))  # first minimum = smallest tie-break key
        counts = {k: self.values[:, 1 + j] for j, k in enumerate(ACCESS_KEYS)}
        obj = objective_value(objective, cycles, table.energy(counts, macs))
        return int(np.argmin(obj))

    def row(self, i: int) -> tuple[int, tuple[int, ...], tuple[int, int, int], str]:
        """(cycles, accesses, (tile_m, tile_n, tile_k), loop order) of row ``i``."""
        v = self.values[i]
        return (int(v[0]), tuple(int(x) for x in v[1:]), tuple(int(t) for t in self.tiles[i]),
                "".join(ORDERS_BY_NAME[int(self.orders[i])]))


def _prune(values: np.ndarray) -> np.ndarray:
    """Indices (ascending) of rows not dominated by an earlier row (rows are in tie-break
    order: an earlier row dominates a later one when it is ``<=`` in every column)."""
    var = values[:, (values != values[0]).any(axis=0)]  # constant columns decide nothing
    if var.shape[1] == 0:
        return np.zeros(1, dtype=np.int64)
    # a positive weighted sum never increases from a row to a row dominating it, so its
    # first minimum over the remaining rows is dominated by none of them
    score = (var / (var.max(axis=0) + 1.0)).sum(axis=1)
    rem = np.arange(len(var))
    keep = []
    while rem.size:
        j = int(np.argmin(score[rem]))
        p = rem[j]
        keep.append(p)
        dom = (var[rem] >= var[p]).all(axis=1) & (rem > p)
        dom[j] = True
        rem = rem[~dom]
    return np.sort(np.array(keep, dtype=np.int64))


def survivors(nest: LoopNest, arch: ArchSpec, layer: str = "layer",
              full_upto: int = FULL_RANGE_UPTO) -> Survivors:
    """The candidates of ``nest`` on ``arch`` that can be chosen (module docstring).

    Raises :class:`MappingError` exactly when ``search_layer`` does (same message).
    """
    cg = candidate_grid(nest, arch, layer, full_upto)  # the grid search_layer searches
    parts = [p for p in map(_candidates, cg.blocks()) if p is not None]
    if not parts:
        raise cg.no_fit_error()
    valid = sum(p[3] for p in parts)
    if len(parts) == 1:
        return Survivors(*parts[0][:3], valid)
    v, t, o = _sorted_survivors(*(np.concatenate([p[j] for p in parts]) for j in range(3)))
    return Survivors(v, t, o, valid)


def _sorted_survivors(v: np.ndarray, t: np.ndarray, o: np.ndarray, presorted: bool = False):
    """Sort by the tie-break key (DMA words, order, tile_m, tile_n, tile_k), then prune.
    ``presorted``: rows are already in (order, tile_m, tile_n, tile_k) order."""
    words = v[:, 1 + ACCESS_KEYS.index("store.w.read")]  # == the grid's dma_words
    if presorted:
        tie = np.argsort(words, kind="stable")
    else:
        tie = np.lexsort((t[:, 2], t[:, 1], t[:, 0], o, words))
    v, t, o = v[tie], t[tie], o[tie]
    keep = _prune(v)
    return v[keep], t[keep], o[keep]


def _candidates(b: Block):
    """Survivors among the valid candidates of block ``b``, with their count, or None."""
    tm_f, tn_f, tk_f = (b.flat(t) for t in (b.tm, b.tn, b.tk))
    vals, tiles, orders = [], [], []
    for oi, _, r in b.priced():
        ok = b.flat(r["valid"])
        if not ok.any():
            continue
        cols = [b.flat(r["cycles"])[ok]]
        cols += [b.flat(np.asarray(r["accesses"][k], dtype=np.int64))[ok] for k in ACCESS_KEYS]
        vals.append(np.stack(cols, axis=1).astype(np.int64))
        tiles.append(np.stack([tm_f[ok], tn_f[ok], tk_f[ok]], axis=1))
        orders.append(np.full(int(ok.sum()), oi, dtype=np.int64))
    if not vals:
        return None
    n = sum(len(x) for x in orders)
    # per order the block is row-major in (tile_m, (tile_n, tile_k)): already in tie order
    return (*_sorted_survivors(np.concatenate(vals), np.concatenate(tiles),
                               np.concatenate(orders), presorted=True), n)
