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

The enumeration and pricing live here once: :func:`candidate_grid` builds a
layer's :class:`CandidateGrid` (and raises the mapper's errors), whose
:meth:`CandidateGrid.blocks` price the grid in bounded rectangles, every loop
order at a time (:meth:`Block.priced`). :func:`search_layer` reduces them to the
best mapping of one objective; :mod:`dse.mapsearch` keeps the candidates that
can win for any energy table, and caches them per layer shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mapping.arch import ArchSpec
from mapping.cost import OBJECTIVES, Grid, check_layer, evaluate, objective_value, runs_uniform
from mapping.energy import energy_table
from mapping.loopnest import LoopNest
from mapping.schedule import ORDERS, LayerCost, LayerMapping, MappingError, Schedule

FULL_RANGE_UPTO = 32
CHUNK = 1 << 18  # candidates of one block (x 6 orders) priced at once
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
class Block:
    """A rectangle of the candidate grid priced at once: ``tm`` a column of tile_m
    sizes, ``tn``/``tk`` a row of (tile_n, tile_k) pairs; candidates are row-major in
    (tile_m, (tile_n, tile_k)), i.e. in tie-break order within one loop order."""

    tm: np.ndarray  # (rows, 1) int64
    tn: np.ndarray  # (1, pairs) int64
    tk: np.ndarray  # (1, pairs) int64
    grid: Grid

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    @property
    def size(self) -> int:
        """Candidates of the block (per loop order)."""
        return int(np.prod(self.shape))

    def priced(self) -> Iterator[tuple[int, tuple[str, ...], dict]]:
        """``(index into ORDERS_BY_NAME, order, cost)`` for every loop order, by name;
        ``cost`` is :meth:`mapping.cost.Grid.cost` (``valid``, ``cycles``, ``accesses``,
        ``dma_words``, each broadcastable to :attr:`shape`)."""
        for oi, order in enumerate(ORDERS_BY_NAME):
            yield oi, order, self.grid.cost(order)

    def flat(self, value) -> np.ndarray:
        """``value`` (broadcastable to :attr:`shape`) as a flat array in candidate order."""
        return np.broadcast_to(np.asarray(value), self.shape).reshape(-1)

    def tiles(self, i) -> tuple:
        """``(tile_m, tile_n, tile_k)`` of flat candidate index (or index array) ``i``."""
        im, ip = np.divmod(i, self.tn.shape[1])
        return self.tm[im, 0], self.tn[0, ip], self.tk[0, ip]


@dataclass(frozen=True)
class CandidateGrid:
    """The mapping space of one layer on an ``ArchSpec`` (module docstring).

    ``tm``, ``tn``, ``tk``: candidate sizes per axis; ``tn_pairs``, ``tk_pairs``:
    the (tile_n, tile_k) pairs whose weight tile fits ``w_words`` (both halves
    when double-buffered), sorted by n then k.
    """

    nest: LoopNest
    arch: ArchSpec
    layer: str
    tm: np.ndarray
    tn: np.ndarray
    tk: np.ndarray
    tn_pairs: np.ndarray
    tk_pairs: np.ndarray

    @property
    def space(self) -> int:
        """Mappings in the modelled space (candidate sizes^3 x orders)."""
        return len(self.tm) * len(self.tn) * len(self.tk) * len(ORDERS)

    def blocks(self, chunk: int = CHUNK) -> Iterator[Block]:
        """The grid in blocks of at most about ``chunk`` candidates, tile_m ascending.

        For each tile_m, the (n, k) pairs whose single output tile fits the
        accumulator (``tm * tn <= acc_words``) are a prefix of the n-sorted pairs;
        the rest are invalid for every loop order and are never priced. A block is a
        run of tile_m rows sharing (about) the same prefix: rows whose prefix is
        shorter are masked by the acc_words check of each order.
        """
        tm_c, tn_p = self.tm, self.tn_pairs
        prefix = np.searchsorted(tn_p, self.arch.acc_words // tm_c, side="right")
        s = 0
        while s < tm_c.size and prefix[s] > 0:
            # grow a block of rows while it stays within `chunk` elements and wastes little
            p_len, e = int(prefix[s]), s + 1
            while (e < tm_c.size and (e - s + 1) * p_len <= chunk
                   and prefix[e] * 4 >= p_len * 3):
                e += 1
            tm = tm_c[s:e, None]
            tn, tk = tn_p[None, :p_len], self.tk_pairs[None, :p_len]
            yield Block(tm, tn, tk, Grid(self.nest, self.arch, tm, tn, tk))
            s = e

    def no_fit_error(self) -> MappingError:
        """The error when no candidate is valid for any loop order (the accumulator)."""
        return MappingError(
            f"{self.layer}: no mapping fits: for every loop order the live partial sums exceed "
            f"acc_words = {self.arch.acc_words} (smallest requirement "
            f"{int(self.tm[0] * self.tn[0])})")


def candidate_grid(nest: LoopNest, arch: ArchSpec, layer: str = "layer",
                   full_upto: int = FULL_RANGE_UPTO) -> CandidateGrid:
    """The candidate grid of ``nest`` on ``arch``; raises :class:`MappingError` when the
    layer's activations or every weight tile cannot fit."""
    check_layer(nest, arch, layer)
    ad = axis_array_dims(arch)
    tm_c = candidate_sizes(nest.gemm_m, ad["m"], full_upto)
    tn_c = candidate_sizes(nest.gemm_n, ad["n"], full_upto)
    tk_c = candidate_sizes(nest.gemm_k, ad["k"], full_upto)
    tk_c = tk_c[runs_uniform(nest, arch, tk_c)]  # gather by runs: k tiles on the taps
    halves = 2 if arch.double_buffer else 1
    # order-independent filter: the weight tile fits (both halves when double-buffered)
    i_n, ik = np.nonzero(tn_c[:, None] * tk_c[None, :] * halves <= arch.w_words)
    if i_n.size == 0:
        raise MappingError(
            f"{layer}: no mapping fits: the weight scratchpad needs at least "
            f"{int(tn_c[0] * tk_c[0] * halves)} elements (w_words = {arch.w_words})")
    return CandidateGrid(nest, arch, layer, tm_c, tn_c, tk_c, tn_c[i_n], tk_c[ik])


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
    cg = candidate_grid(nest, arch, layer, full_upto)
    table = energy_table(nest, arch) if objective != "latency" else None
    best: tuple | None = None
    n_valid = n_eval = 0
    for b in cg.blocks(chunk):
        n_eval += b.size * len(ORDERS)
        for _, order, r in b.priced():
            valid = b.flat(r["valid"])
            nv = int(np.count_nonzero(valid))
            if nv == 0:
                continue
            n_valid += nv
            energy = None if table is None else table.energy(r["accesses"], nest.macs)
            obj = b.flat(objective_value(objective, r["cycles"], energy))
            obj = np.where(valid, obj, np.inf if obj.dtype.kind == "f" else np.iinfo(np.int64).max)
            lo = obj.min()
            ties = np.flatnonzero(obj == lo)
            words = b.flat(r["dma_words"])[ties]
            i = int(ties[np.flatnonzero(words == words.min())[0]])
            key = (lo.item(), int(words.min()), "".join(order), *map(int, b.tiles(i)))
            if best is None or key < best:
                best = key
    if best is None:
        raise cg.no_fit_error()
    _, _, order_s, bm, bn, bk = best
    lm = LayerMapping(layer, nest, arch.dataflow, bm, bn, bk, tuple(order_s))
    return MapResult(lm, evaluate(lm, arch), cg.space, n_eval, n_valid)


def map_layer(nest: LoopNest, arch: ArchSpec, objective: str = "latency", layer: str = "layer",
              full_upto: int = FULL_RANGE_UPTO) -> tuple[LayerMapping, LayerCost]:
    """The best mapping of one layer for ``objective`` (``latency``, ``energy``, ``edp``)."""
    r = search_layer(nest, arch, objective, layer, full_upto)
    return r.mapping, r.cost


def map_graph(graph, arch: ArchSpec, objective: str = "latency",
              full_upto: int = FULL_RANGE_UPTO) -> Schedule:
    """Map every compute node of a lowered ``DataflowGraph`` (``compute_nodes()``: ``.name``,
    ``.nest``) in execution order. Nodes without a nest are not array layers and are skipped:
    pooling, adds, lookups and depthwise convs (``mapping.passes.lower``: element-wise
    engine, timed by ``mapping.timing.dw_cycles``)."""
    return map_nests([(node.name, node.nest) for node in graph.compute_nodes()], arch,
                     objective, full_upto)


def map_nests(nests, arch: ArchSpec, objective: str = "latency",
              full_upto: int = FULL_RANGE_UPTO) -> Schedule:
    """:func:`map_graph` of ``(layer name, LoopNest)`` pairs in execution order."""
    _check_objective(objective)
    layers, costs = [], []
    for name, nest in nests:
        lm, cost = map_layer(nest, arch, objective, name, full_upto)
        layers.append(lm)
        costs.append(cost)
    return Schedule(arch_name=arch.name, layers=layers, costs=costs)
