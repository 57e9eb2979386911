"""Level-0 (analytic) evaluation of design points: mapper cycles, energy, resources, accuracy.

Per point: the ``ArchSpec`` of the point; for every compute layer the mapper's
best mapping for the point's objective (as :func:`mapping.mapper.search_layer`),
its cycles and accesses; energy from :mod:`mapping.energy`; the cycles of every
element-wise layer (pooling, residual add, lookup-table activation, depthwise conv,
strided copy) from its :mod:`mapping.timing` function (:func:`dse.model.eltwise_cycles`);
resources from a :class:`dse.resources.ResourceEstimator` given the sizes of the program
the point's build bakes in (:func:`dse.resources.program_sizes`: weight image,
instruction ROM, parameters, live element-wise units, lookup ROM, depthwise ROMs, from
the chosen mappings); a point whose baked weights, lookup tables or depthwise weights
exceed the generator's ROM budget (``hwgen.rtl.accelerator.DEFAULT_ROM_BUDGET_BITS``)
cannot be built; accuracy from a :class:`dse.accuracy.AccuracyTable`. Every figure is an *estimate* of the
analytic models (level 0).

Layer results are cached on the fields that decide them. The candidate set of
a layer (cycles, accesses and validity of every tile/order choice) depends on
rows, cols, dataflow, double buffering, the weight store and its word packing,
and on ``w_words`` / ``acc_words`` only up to the largest weight tile /
partial-sum footprint the layer can have (beyond that every candidate fits).
For that key :func:`dse.mapsearch.survivors` prices the grid once and keeps the
few candidates that can win for any energy table; the ``latency`` choice and
every ``energy``/``edp`` choice (one per energy table) are then read off the
survivors, exactly as :func:`mapping.mapper.search_layer` would choose. Many
points share layer results, so most evaluations are dictionary lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dse.mapsearch import survivors
from dse.model import ModelLayers, eltwise_cycles, lut_entries, nests_for_bits
from dse.resources import ProgramSizes, ResourceEstimator, program_sizes, rom_budget_error
from dse.space import Space
from mapping import timing
from mapping.arch import ArchSpec
from mapping.cost import act_requirement
from mapping.energy import ACCESS_KEYS, energy_table
from mapping.loopnest import LoopNest
from mapping.mapper import FULL_RANGE_UPTO, axis_array_dims, candidate_sizes
from mapping.schedule import MappingError

LEVEL = 0


@dataclass(frozen=True)
class LayerResult:
    """The best mapping of one layer (or why there is none)."""

    error: str
    cycles: int = 0
    macs: int = 0
    accesses: tuple[int, ...] = ()
    tiles: tuple[int, int, int] = (0, 0, 0)
    order: str = ""


def _acc_max(dim: int, array_dim: int) -> int:
    """Largest ``t * ceil(dim / t)`` over the mapper's candidate tile sizes."""
    c = candidate_sizes(dim, array_dim, FULL_RANGE_UPTO)
    return int((c * (-(-dim // c))).max())


class Level0Evaluator:
    """Analytic evaluation of points of ``space`` for ``layers`` (see module docstring).

    ``accuracy``: callable quant-key -> accuracy (or ``None`` when unknown);
    ``resources``: a :class:`ResourceEstimator`; ``budget``: resource -> available.
    """

    def __init__(self, space: Space, layers: ModelLayers, resources: ResourceEstimator,
                 budget: dict[str, float], accuracy=None):
        self.space, self.layers = space, layers
        self.resources, self.budget = resources, dict(budget)
        self.accuracy = accuracy
        self._layer: dict[tuple, LayerResult] = {}
        self._surv: dict[tuple, object] = {}  # layer_key -> Survivors or error text
        self._energy: dict[tuple, Any] = {}
        self._res: dict[tuple, dict | None] = {}
        self._prog: dict[tuple, ProgramSizes] = {}
        self._nests: dict[tuple, list[LoopNest]] = {}
        self._luts: dict[tuple, int] = {}
        self._bounds: dict[tuple, tuple[int, int]] = {}
        self._acc: dict[tuple, float | None] = {}
        self.misses = self.hits = 0
        self._macs = layers.macs

    # -------------------------------------------------------------- caches
    def nests(self, qkey: tuple) -> list[LoopNest]:
        if qkey not in self._nests:
            self._nests[qkey] = nests_for_bits(self.layers, qkey[0], dict(qkey[1]))
        return self._nests[qkey]

    def lut_entries(self, qkey: tuple) -> int:
        if qkey not in self._luts:
            self._luts[qkey] = lut_entries(self.layers, qkey[0], dict(qkey[1]))
        return self._luts[qkey]

    def _bound(self, i: int, nest: LoopNest, arch: ArchSpec) -> tuple[int, int]:
        key = (i, arch.rows, arch.cols, arch.double_buffer)
        b = self._bounds.get(key)
        if b is None:
            ad = axis_array_dims(arch)
            wmax = nest.gemm_n * nest.gemm_k * (2 if arch.double_buffer else 1)
            amax = _acc_max(nest.gemm_m, ad["m"]) * _acc_max(nest.gemm_n, ad["n"])
            b = self._bounds[key] = (wmax, amax)
        return b

    def layer_key(self, i: int, nest: LoopNest, arch: ArchSpec) -> tuple:
        """What decides the layer's candidate set (cycles, accesses, validity)."""
        wmax, amax = self._bound(i, nest, arch)
        return (i, arch.rows, arch.cols, arch.dataflow, arch.double_buffer,
                arch.weight_store, arch.weights_per_ext_word, arch.ext_latency,
                arch.ext_bandwidth, min(arch.w_words, wmax), min(arch.acc_words, amax))

    def layer(self, i: int, name: str, nest: LoopNest, arch: ArchSpec,
              objective: str) -> LayerResult:
        key = self.layer_key(i, nest, arch)
        if objective != "latency":  # the energy table decides among the survivors
            key += (objective, arch.act_words, arch.w_words, arch.acc_words, arch.in_bits,
                    arch.w_bits, arch.acc_bits, arch.ext_word_bits, nest.in_bits,
                    nest.w_bits, nest.out_bits)
        r = self._layer.get(key)
        if r is not None:
            self.hits += 1
            return r
        skey = key[:11]
        s = self._surv.get(skey)
        if s is None:
            self.misses += 1
            try:
                s = survivors(nest, arch, name)
            except MappingError as exc:
                s = str(exc)
            self._surv[skey] = s
        if isinstance(s, str):
            r = LayerResult(error=s)
        else:
            table = energy_table(nest, arch) if objective != "latency" else None
            cyc, acc, tiles, order = s.row(s.best(objective, table, nest.macs))
            r = LayerResult("", cyc, nest.macs, acc, tiles, order)
        self._layer[key] = r
        return r

    def energy_pj(self, nest: LoopNest, arch: ArchSpec, accesses: tuple[int, ...]) -> float:
        key = (id(nest), arch.weight_store, arch.ext_word_bits, arch.w_bits, arch.in_bits,
               arch.acc_bits, arch.w_words, arch.act_words, arch.acc_words)
        t = self._energy.get(key)
        if t is None:
            tab = energy_table(nest, arch)
            t = self._energy[key] = (tuple(tab.per_access[k] for k in ACCESS_KEYS),
                                     nest.macs * tab.mac)
        per, e = t
        for n, p in zip(accesses, per, strict=True):
            e += n * p
        return e

    def program(self, arch: ArchSpec, mappings: tuple, luts: int = 0) -> ProgramSizes:
        """Sizes of the point's baked program; ``mappings``: ``(tiles, order)`` per layer,
        ``luts``: lookup-ROM entries (:meth:`lut_entries`)."""
        key = (mappings, arch.rows, arch.weights_per_ext_word, arch.double_buffer,
               arch.act_words, arch.w_words, arch.acc_words, luts)
        p = self._prog.get(key)
        if p is None:
            p = self._prog[key] = program_sizes(arch, self.layers, mappings, luts)
        return p

    def resource(self, arch: ArchSpec, mappings: tuple, luts: int = 0) -> dict | None:
        key = (arch.rows, arch.cols, arch.dataflow, arch.in_bits, arch.w_bits, arch.acc_bits,
               arch.act_words, arch.act_banks, arch.w_words, arch.w_banks, arch.acc_words,
               arch.acc_banks, arch.double_buffer, arch.weight_store, arch.ext_word_bits,
               mappings, luts)
        r = self._res.get(key, False)
        if r is False:
            r = self._res[key] = self.resources.estimate(arch,
                                                         self.program(arch, mappings, luts))
        return r

    def acc_of(self, qkey: tuple) -> float | None:
        if qkey not in self._acc:
            self._acc[qkey] = None if self.accuracy is None else self.accuracy(qkey)
        return self._acc[qkey]

    # -------------------------------------------------------------- points
    def evaluate(self, point: dict[str, Any]) -> dict[str, Any]:
        """Metrics of one point (``feasible`` False with a ``reason`` when it cannot run)."""
        sp = self.space
        out: dict[str, Any] = {"feasible": False, "reason": "", "level": LEVEL}
        arch, err = sp.arch_or_error(point)
        qkey = sp.quant_key(point)
        out["accuracy"] = self.acc_of(qkey)
        if arch is None:
            out["reason"] = err
            return out
        out["pes"] = arch.pes
        out["onchip_bits"] = (arch.act_words * arch.in_bits + arch.w_words * arch.w_bits
                              + arch.acc_words * arch.acc_bits)
        objective = sp.objective(point)
        nests = self.nests(qkey)
        cycles = energy = 0
        compute_cycles = 0
        mappings = []
        for i, (c, nest) in enumerate(zip(self.layers.compute, nests, strict=True)):
            inp, outp = act_requirement(nest)
            if inp + outp > arch.act_words:
                out["reason"] = (f"{c.name}: activation scratchpad too small: needs "
                                 f"{inp + outp} elements, act_words = {arch.act_words} (the "
                                 "program would keep its tensors in external memory; level 0 "
                                 "does not price such programs yet)")
                return out
            r = self.layer(i, c.name, nest, arch, objective)
            if r.error:
                out["reason"] = r.error
                return out
            cycles += r.cycles
            compute_cycles += r.cycles
            energy += self.energy_pj(nest, arch, r.accesses)
            out[f"cycles.{c.name}"] = r.cycles
            out[f"util.{c.name}"] = r.macs / (arch.pes * r.cycles)
            out[f"tiles.{c.name}"] = "{}x{}x{}:{}".format(*r.tiles, r.order)
            mappings.append((r.tiles, r.order))
        for e in self.layers.eltwise:
            n = eltwise_cycles(e, arch)
            out[f"cycles.{e.name}"] = n
            cycles += n
        luts = self.lut_entries(qkey)
        sizes = self.program(arch, tuple(mappings), luts)
        why = rom_budget_error(arch, sizes)
        if why:
            out["reason"] = why
            return out
        cycles += self.layers.io_elements + timing.RUN_OVERHEAD  # streams + sequencer (timing.run_cycles)
        out["cycles"] = cycles
        out["latency_us"] = cycles / arch.clock_mhz
        out["throughput"] = arch.clock_mhz * 1e6 / cycles
        out["energy_nj"] = energy / 1000.0
        out["utilization"] = self._macs / (arch.pes * compute_cycles)
        res = self.resource(arch, tuple(mappings), luts)
        violation = 0.0
        if res is not None:
            for k in ("lut", "ff", "dsp", "bram"):
                out[k] = res[k]
                cap = self.budget.get(k)
                if cap is not None:
                    violation = max(violation, res[k] / cap - 1.0)
        else:  # no calibrated model: the only exact check is on-chip memory bits
            cap = self.budget.get("bram_bits")
            if cap:
                violation = out["onchip_bits"] / cap - 1.0
        out["violation"] = violation
        out["fits"] = violation <= 0
        out["feasible"] = True
        return out

    def evaluate_many(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.evaluate(p) for p in points]
