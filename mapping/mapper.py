"""Loop-tiling mapper: the best (tile sizes, loop order) of each layer on an ArchSpec.

Search space of one layer (docs/mapper.md):

- tile sizes along m, n, k: every size 1..dim when ``dim <= full_upto``
  (default :data:`FULL_RANGE_UPTO`); above that the candidate set
  ``{divisors of dim} | {multiples of the array dimension on that axis, <= dim}
  | {dim}``, where the array dimension is ``rows`` for m and k and ``cols`` for
  n (non-divisor multiples give edge tiles, which the hardware handles);
- the 6 tile-loop orders of :data:`mapping.schedule.ORDERS`;
- spatial unrolling is fixed by the dataflow (the hardware has one): ws puts K
  on rows and N on columns, os puts M on rows and N on columns.

Every candidate is priced by the closed-form model of :mod:`mapping.cost`,
vectorised with numpy over the candidate grid. Ties are broken
deterministically: lowest objective, then fewest DMA words, then the loop
order as a string (``"kmn" < "knm" < ...``), then ``(tile_m, tile_n, tile_k)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mapping.arch import ArchSpec
from mapping.cost import OBJECTIVES, Grid, check_layer, evaluate, objective_value
from mapping.energy import energy_table
from mapping.loopnest import LoopNest
from mapping.schedule import ORDERS, LayerCost, LayerMapping, MappingError, Schedule

FULL_RANGE_UPTO = 32
CHUNK = 1 << 18
ORDERS_BY_NAME = tuple(sorted(ORDERS, key="".join))


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def balanced_sizes(dim: int) -> set[int]:
    """``ceil(dim / c)`` for every tile count ``c``: the smallest tile giving ``c`` tiles
    (about ``2 sqrt(dim)`` values)."""
    out, c = set(), 1
    while c <= dim:
        t = -(-dim // c)
        out.add(t)
        c = -(-dim // (t - 1)) if t > 1 else dim + 1  # next count with a smaller tile
    return out


def candidate_sizes(dim: int, array_dim: int, full_upto: int = FULL_RANGE_UPTO) -> np.ndarray:
    """Tile sizes searched along one GEMM dimension of size ``dim`` (sorted, int64)."""
    if dim <= full_upto:
        return np.arange(1, dim + 1, dtype=np.int64)
    sizes = set(divisors(dim)) | set(range(array_dim, dim + 1, array_dim)) | {dim}
    sizes |= {-(-dim // c) for c in range(1, min(dim, 8) + 1)}
    return np.array(sorted(sizes), dtype=np.int64)


def axis_array_dims(arch: ArchSpec) -> dict[str, int]:
    """The array dimension whose multiples are tile candidates on each GEMM axis."""
    return {"m": arch.rows, "n": arch.cols, "k": arch.rows}


@dataclass(frozen=True)
class MapResult:
    """The best mapping of one layer, its cost and the search statistics."""

    mapping: LayerMapping
    cost: LayerCost
    space: int  # mappings in the modelled space (candidate sizes^3 x orders)
    evaluated: int  # mappings priced (the rest break w_words or acc_words for every order)
    valid: int  # mappings the hardware can run


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise MappingError(f"objective {objective!r} is invalid; allowed: {', '.join(OBJECTIVES)}")


def search_layer(nest: LoopNest, arch: ArchSpec, objective: str = "latency",
                 layer: str = "layer", full_upto: int = FULL_RANGE_UPTO,
                 chunk: int = CHUNK) -> MapResult:
    """Exhaustive, vectorised search of the layer's mapping space (see module docstring)."""
    _check_objective(objective)
    check_layer(nest, arch, layer)
    ad = axis_array_dims(arch)
    tm_c = candidate_sizes(nest.gemm_m, ad["m"], full_upto)
    tn_c = candidate_sizes(nest.gemm_n, ad["n"], full_upto)
    tk_c = candidate_sizes(nest.gemm_k, ad["k"], full_upto)
    space = len(tm_c) * len(tn_c) * len(tk_c) * len(ORDERS)
    halves = 2 if arch.double_buffer else 1
    # order-independent filter: the weight tile fits (both halves when double-buffered)
    i_n, ik = np.nonzero(tn_c[:, None] * tk_c[None, :] * halves <= arch.w_words)
    if i_n.size == 0:
        raise MappingError(
            f"{layer}: no mapping fits: the weight scratchpad needs at least "
            f"{int(tn_c[0] * tk_c[0] * halves)} elements (w_words = {arch.w_words})")
    tn_p, tk_p = tn_c[i_n], tk_c[ik]  # (n, k) pairs, sorted by n then k
    table = energy_table(nest, arch) if objective != "latency" else None
    best: tuple | None = None
    n_valid = n_eval = 0
    # per tm, the (n, k) pairs whose single output tile fits the accumulator
    # (tm * tn <= acc_words) are a prefix of the n-sorted pairs: group equal prefixes
    prefix = np.searchsorted(tn_p, arch.acc_words // tm_c, side="right")
    blocks, s = [], 0
    while s < tm_c.size and prefix[s] > 0:
        # grow a block of rows while it stays within `chunk` elements and wastes little
        # (rows whose prefix is shorter are masked by the acc_words check of each order)
        p_len, e = int(prefix[s]), s + 1
        while (e < tm_c.size and (e - s + 1) * p_len <= chunk
               and prefix[e] * 4 >= p_len * 3):
            e += 1
        blocks.append((np.arange(s, e), p_len))
        s = e
    for rows_, n_pairs in blocks:
        tm = tm_c[rows_, None]  # a column: the grid is (m, (n, k)), lexicographic
        tn, tk = tn_p[None, :n_pairs], tk_p[None, :n_pairs]
        g = Grid(nest, arch, tm, tn, tk)
        n_eval += g.tiles.size * len(ORDERS)
        for order in ORDERS_BY_NAME:
            r = g.cost(order)
            valid = np.broadcast_to(r["valid"], g.shape)
            nv = int(np.count_nonzero(valid))
            if nv == 0:
                continue
            n_valid += nv
            energy = None if table is None else table.energy(r["accesses"], nest.macs)
            obj = np.broadcast_to(objective_value(objective, r["cycles"], energy), g.shape)
            obj = np.where(valid, obj, np.inf if obj.dtype.kind == "f" else np.iinfo(np.int64).max)
            lo = obj.min()
            ties = np.flatnonzero(obj == lo)
            words = np.broadcast_to(r["dma_words"], g.shape).reshape(-1)[ties]
            i = int(ties[np.flatnonzero(words == words.min())[0]])
            im_, ip = divmod(i, n_pairs)
            key = (lo.item(), int(words.min()), "".join(order),
                   int(tm[im_, 0]), int(tn[0, ip]), int(tk[0, ip]))
            if best is None or key < best:
                best = key
    if best is None:
        raise MappingError(
            f"{layer}: no mapping fits: for every loop order the live partial sums exceed "
            f"acc_words = {arch.acc_words} (smallest requirement {int(tm_c[0] * tn_c[0])})"
        )
    _, _, order_s, bm, bn, bk = best
    lm = LayerMapping(layer, nest, arch.dataflow, bm, bn, bk, tuple(order_s))
    return MapResult(lm, evaluate(lm, arch), space, n_eval, n_valid)


def map_layer(nest: LoopNest, arch: ArchSpec, objective: str = "latency", layer: str = "layer",
              full_upto: int = FULL_RANGE_UPTO) -> tuple[LayerMapping, LayerCost]:
    """The best mapping of one layer for ``objective`` (``latency``, ``energy``, ``edp``)."""
    r = search_layer(nest, arch, objective, layer, full_upto)
    return r.mapping, r.cost


def map_graph(graph, arch: ArchSpec, objective: str = "latency",
              full_upto: int = FULL_RANGE_UPTO) -> Schedule:
    """Map every compute node of a lowered ``DataflowGraph`` (``compute_nodes()``: ``.name``,
    ``.nest``) in execution order."""
    _check_objective(objective)
    layers, costs = [], []
    for node in graph.compute_nodes():
        lm, cost = map_layer(node.nest, arch, objective, node.name, full_upto)
        layers.append(lm)
        costs.append(cost)
    return Schedule(arch_name=arch.name, layers=layers, costs=costs)
