"""The naive mapping: what the array runs when nobody optimises the loop tiling.

A baseline for the mapper (:mod:`mapping.mapper`), used by
``benchmarks/optimisation_stack.py`` to measure what loop tiling gains. It
returns the same types as :func:`mapping.mapper.map_graph` (a
:class:`~mapping.schedule.Schedule` of :class:`~mapping.schedule.LayerMapping`
priced by :func:`mapping.cost.evaluate`, so its cycles are the timing contract
of docs/timing.md and the RTL simulation measures them exactly).

Definition (GEMM view: ``M`` pixels, ``N`` output channels, ``K`` reduction):

- **Every tile is exactly one array pass.** The two spatial dimensions of the
  dataflow are tiled at the array size, the largest block one pass holds:
  ``ws`` (K on rows, N on columns): ``tile_k = min(K, rows)``,
  ``tile_n = min(N, cols)``; ``os`` (M on rows, N on columns):
  ``tile_m = min(M, rows)``, ``tile_n = min(N, cols)``.
- **The streamed (temporal) dimension** (``m`` for ws, ``k`` for os) is not
  tiled by any optimisation. ``temporal="one"`` (the default, *the* naive
  baseline): one step per tile, the textbook untiled loop nest
  ``for m, for n, for k: out[m, n] += x[m, k] * w[k, n]`` with only the array
  block unrolled: the smallest tiles the array allows. ``temporal="full"``: the
  whole dimension streams through each tile (a simple hand mapping, less
  naive), capped where a buffer forces it: ws ``tile_m <= acc_words // tile_n``
  (live partial sums), os ``tile_k <= w_words // (tile_n * halves)`` (the
  weight tile, both halves when double-buffered).
- **Fixed loop order** ``("m", "n", "k")``, k innermost: each output tile is
  finished before the next starts, and nothing is kept on chip across tiles
  beyond what the hardware does by itself (a weight tile is fetched again
  whenever it differs from the previous tile's, i.e. for every m tile unless
  the layer has a single weight tile; inputs are read again for every n tile).
- ``os`` with ``rows * cols > acc_words`` uses ``tile_m = acc_words // tile_n``
  rows of the array (the live outputs of one tile must fit the accumulator
  buffer); ``ArchSpec`` guarantees ``acc_words >= cols``, so this is >= 1.

Each tile is legal on the hardware (``mapping.timing.check``), so the schedule
compiles (``hwgen.build.flow.compile_model(..., schedule=...)``) and runs
bit-exactly. The mapper's candidate set contains the ``temporal="one"``
mapping (ws always; os when ``rows * cols <= acc_words`` or ``M <= 32``), so the
mapper is never slower than it there.
"""

from __future__ import annotations

from mapping import timing
from mapping.arch import ArchSpec
from mapping.cost import check_layer, evaluate
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping, MappingError, Schedule

NAIVE_ORDER = ("m", "n", "k")
TEMPORAL = ("one", "full")


def naive_layer(nest: LoopNest, arch: ArchSpec, layer: str = "layer",
                temporal: str = "one") -> LayerMapping:
    """The naive mapping of one layer (module docstring); raises MappingError if the
    layer's activations do not fit ``act_words`` (no mapping can run it then)."""
    if temporal not in TEMPORAL:
        raise MappingError(f"temporal = {temporal!r} is invalid; allowed: {', '.join(TEMPORAL)}")
    if not isinstance(arch, ArchSpec):
        raise MappingError(f"arch must be a mapping.arch.ArchSpec, got {type(arch).__name__}")
    check_layer(nest, arch, layer)
    M, N, K = nest.gemm_m, nest.gemm_n, nest.gemm_k
    tn = min(N, arch.cols)
    if arch.dataflow == "ws":
        tk = min(K, arch.rows)
        tm = 1 if temporal == "one" else min(M, arch.acc_words // tn)
    else:
        tm = min(M, arch.rows, arch.acc_words // tn)
        halves = 2 if arch.double_buffer else 1
        tk = 1 if temporal == "one" else max(1, min(K, arch.w_words // (tn * halves)))
    lm = LayerMapping(layer, nest, arch.dataflow, tm, tn, tk, NAIVE_ORDER)
    timing.check(lm, arch)
    return lm


def naive_schedule(graph, arch: ArchSpec, temporal: str = "one") -> Schedule:
    """The naive :class:`Schedule` of every compute node of a lowered ``DataflowGraph``
    (``compute_nodes()``: ``.name``, ``.nest``), in execution order, priced by
    :func:`mapping.cost.evaluate` (the cycles of ``mapping.timing.layer_cycles``)."""
    layers, costs = [], []
    for node in graph.compute_nodes():
        lm = naive_layer(node.nest, arch, node.name, temporal)
        layers.append(lm)
        costs.append(evaluate(lm, arch))
    return Schedule(arch_name=arch.name, layers=layers, costs=costs)
