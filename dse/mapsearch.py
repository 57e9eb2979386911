"""The mapper's search, split so that level 0 prices each candidate grid once per layer shape.

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

:func:`survivors` enumerates the valid candidates of a layer on an ``ArchSpec``
(the same set ``search_layer`` searches), sorts them by the tie-break key and
drops every candidate dominated in that sense. What is left (typically 5-100 of
10^4-10^5) answers ``latency``, ``energy`` and ``edp`` queries for any energy
table exactly as ``search_layer`` would (:meth:`Survivors.best`; tested
against ``search_layer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapping.arch import ArchSpec
from mapping.cost import Grid, check_layer, objective_value
from mapping.energy import ACCESS_KEYS, EnergyTable
from mapping.loopnest import LoopNest
from mapping.mapper import (
    FULL_RANGE_UPTO,
    ORDERS_BY_NAME,
    axis_array_dims,
    candidate_sizes,
    search_layer,
)
from mapping.schedule import MappingError

CHUNK = 1 << 18  # candidates (x 6 orders) priced at once


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
    check_layer(nest, arch, layer)
    ad = axis_array_dims(arch)
    tm_c = candidate_sizes(nest.gemm_m, ad["m"], full_upto)
    tn_c = candidate_sizes(nest.gemm_n, ad["n"], full_upto)
    tk_c = candidate_sizes(nest.gemm_k, ad["k"], full_upto)
    halves = 2 if arch.double_buffer else 1
    i_n, ik = np.nonzero(tn_c[:, None] * tk_c[None, :] * halves <= arch.w_words)
    # rows whose single output tile cannot fit the accumulator are invalid for every order
    tm_c = tm_c[tm_c * (tn_c[i_n].min() if i_n.size else 1) <= arch.acc_words]
    if i_n.size == 0 or tm_c.size == 0:
        search_layer(nest, arch, "latency", layer, full_upto)  # raises its MappingError
        raise MappingError(f"{layer}: no mapping fits")  # pragma: no cover (defensive)
    tn_p, tk_p = tn_c[i_n], tk_c[ik]
    step = max(1, CHUNK // tn_p.size)  # bounded memory: the grid in slices of tile_m rows
    parts = [_candidates(nest, arch, tm_c[s:s + step], tn_p, tk_p)
             for s in range(0, tm_c.size, step)]
    parts = [p for p in parts if p is not None]
    if not parts:
        search_layer(nest, arch, "latency", layer, full_upto)  # raises its MappingError
        raise MappingError(f"{layer}: no mapping fits")  # pragma: no cover (defensive)
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


def _candidates(nest: LoopNest, arch: ArchSpec, tm_c, tn_p, tk_p):
    """Survivors among the valid candidates of ``tm_c`` x (n, k) pairs, or None."""
    g = Grid(nest, arch, tm_c[:, None], tn_p[None, :], tk_p[None, :])
    shape = g.shape
    tm_f = np.broadcast_to(tm_c[:, None], shape).reshape(-1)
    tn_f = np.broadcast_to(tn_p[None, :], shape).reshape(-1)
    tk_f = np.broadcast_to(tk_p[None, :], shape).reshape(-1)
    vals, tiles, orders = [], [], []
    for oi, order in enumerate(ORDERS_BY_NAME):
        r = g.cost(order)
        ok = np.broadcast_to(r["valid"], shape).reshape(-1)
        if not ok.any():
            continue
        cols = [np.broadcast_to(r["cycles"], shape).reshape(-1)[ok]]
        cols += [np.broadcast_to(np.asarray(r["accesses"][k], dtype=np.int64),
                                 shape).reshape(-1)[ok] for k in ACCESS_KEYS]
        vals.append(np.stack(cols, axis=1).astype(np.int64))
        tiles.append(np.stack([tm_f[ok], tn_f[ok], tk_f[ok]], axis=1))
        orders.append(np.full(int(ok.sum()), oi, dtype=np.int64))
    if not vals:
        return None
    n = sum(len(x) for x in orders)
    # per order the grid is row-major in (tile_m, (tile_n, tile_k)): already in tie order
    return (*_sorted_survivors(np.concatenate(vals), np.concatenate(tiles),
                               np.concatenate(orders), presorted=True), n)
