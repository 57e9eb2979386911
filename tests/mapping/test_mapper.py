"""mapping.mapper against brute force over the mapping space (timing.layer_cycles for cycles)."""

from __future__ import annotations

import itertools
import random
import re
from types import SimpleNamespace

import numpy as np
import pytest
from random_cases import SEED, random_arch
from reference_executor import tile_level_accesses

from mapping import timing
from mapping.arch import ArchSpec, preset
from mapping.energy import ACCESS_KEYS, energy_table
from mapping.loopnest import LoopNest
from mapping.mapper import (
    axis_array_dims,
    candidate_grid,
    candidate_sizes,
    divisors,
    map_graph,
    map_layer,
    search_layer,
)
from mapping.schedule import ORDERS, LayerMapping, MappingError, Schedule


def brute_force(nest, arch, objectives, sizes=None):
    """Best mapping per objective over every (tile sizes, order), priced by the plain tile
    loops (timing.layer_cycles, tile_level_accesses); key = the mapper's tie-break."""
    sizes = sizes or {d: range(1, n + 1) for d, n in
                      (("m", nest.gemm_m), ("n", nest.gemm_n), ("k", nest.gemm_k))}
    nonpad = np.array([[nest.im2col_index(m, k) is not None for k in range(nest.gemm_k)]
                       for m in range(nest.gemm_m)], np.int64)
    table = energy_table(nest, arch)
    best = dict.fromkeys(objectives)
    for tm, tn, tk in itertools.product(sizes["m"], sizes["n"], sizes["k"]):
        for order in ORDERS:
            lm = LayerMapping("b", nest, arch.dataflow, int(tm), int(tn), int(tk), order)
            try:
                cycles = timing.layer_cycles(lm, arch).cycles
            except MappingError:
                continue
            acc = tile_level_accesses(lm, arch, nonpad)
            energy = table.energy({k: acc.get(k, 0) for k in ACCESS_KEYS}, nest.macs)
            for obj in objectives:
                v = {"latency": cycles, "energy": energy, "edp": energy * cycles}[obj]
                key = (v, acc["store.w.read"], "".join(order), int(tm), int(tn), int(tk))
                if best[obj] is None or key < best[obj]:
                    best[obj] = key
    return best


def _small_cases(n: int, seed: int, max_dim: int):
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        arch = random_arch(rng, max_dim=4)
        if rng.random() < 0.4:
            nest = LoopNest.conv(1, rng.randint(1, max_dim), rng.randint(1, 2), rng.randint(2, 3),
                                 rng.randint(2, 3), rng.randint(1, 2), rng.randint(1, 2),
                                 padding=rng.randint(0, 1))
        else:
            nest = LoopNest.gemm(*(rng.randint(1, max_dim) for _ in range(3)))
        cases.append((nest, arch))
    return cases


def _check(nest, arch, best, objective, full_upto):
    lm, cost = map_layer(nest, arch, objective, full_upto=full_upto)
    v, words, order, tm, tn, tk = best[objective]
    assert (lm.tile_m, lm.tile_n, lm.tile_k, "".join(lm.order)) == (tm, tn, tk, order), \
        (objective, nest, arch)
    got = {"latency": cost.cycles, "energy": cost.energy_pj,
           "edp": cost.energy_pj * cost.cycles}[objective]
    assert got == v
    assert cost.accesses["store.w.read"] == words


def test_optimum_equals_full_brute_force():
    """110 random small layers: the full space 1..dim x 6 orders; latency, energy, EDP."""
    for nest, arch in _small_cases(110, SEED, max_dim=5):
        best = brute_force(nest, arch, ("latency", "energy", "edp"))
        for objective in ("latency", "energy", "edp"):
            _check(nest, arch, best, objective, full_upto=64)


@pytest.mark.slow
def test_optimum_equals_full_brute_force_larger():
    for nest, arch in _small_cases(100, SEED + 10, max_dim=8):
        best = brute_force(nest, arch, ("latency", "energy", "edp"))
        for objective in ("latency", "energy", "edp"):
            _check(nest, arch, best, objective, full_upto=64)


def test_pruned_space_equals_brute_force_over_the_same_candidates():
    """Candidate-set mode (full_upto=0) is exactly the optimum over that candidate set."""
    rng = random.Random(SEED + 1)
    for _ in range(3):
        arch = random_arch(rng, max_dim=4).replace(act_words=10**6)
        while arch.rows < 4:  # rows = 1 or 2 would make the multiples dense
            arch = random_arch(rng, max_dim=4).replace(act_words=10**6)
        nest = LoopNest.gemm(rng.randint(17, 22), rng.randint(1, 3), rng.randint(17, 22))
        ad = axis_array_dims(arch)
        sizes = {d: candidate_sizes(n, ad[d], 0) for d, n in
                 (("m", nest.gemm_m), ("n", nest.gemm_n), ("k", nest.gemm_k))}
        assert len(sizes["m"]) < nest.gemm_m and len(sizes["k"]) < nest.gemm_k
        best = brute_force(nest, arch, ("latency", "energy"), sizes)
        _check(nest, arch, best, "latency", full_upto=0)
        _check(nest, arch, best, "energy", full_upto=0)


def test_pruning_gap_to_the_full_range_is_small():
    """How far the candidate set is from the 1..dim optimum (documented in docs/mapper.md)."""
    rng = random.Random(SEED + 2)
    gaps = []
    for _ in range(40):
        arch = random_arch(rng, max_dim=8).replace(act_words=10**6)
        nest = LoopNest.gemm(rng.randint(20, 70), rng.randint(20, 70), rng.randint(20, 70))
        full = search_layer(nest, arch, "latency", full_upto=10**6).cost.cycles
        pruned = search_layer(nest, arch, "latency", full_upto=0).cost.cycles
        assert pruned >= full
        gaps.append(pruned / full - 1)
    assert max(gaps) < 0.10
    assert float(np.mean(gaps)) < 0.01


def test_candidate_sizes():
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]
    assert candidate_sizes(10, 4, full_upto=16).tolist() == list(range(1, 11))
    got = candidate_sizes(100, 16, full_upto=16).tolist()
    # divisors, multiples of 16, ceil(100/c) for c <= 8 (13, 15, 17, 34), and 100
    assert got == [1, 2, 4, 5, 10, 13, 15, 16, 17, 20, 25, 32, 34, 48, 50, 64, 80, 96, 100]
    assert 48 in got and 100 % 48  # a non-divisor: the hardware runs an edge tile


def test_space_statistics():
    nest = LoopNest.gemm(100, 10, 40)
    arch = ArchSpec(rows=4, cols=4)
    r = search_layer(nest, arch, full_upto=16)
    n_m = len(candidate_sizes(100, 4, 16))
    n_k = len(candidate_sizes(40, 4, 16))
    assert r.space == n_m * 10 * n_k * 6
    assert r.valid <= r.evaluated <= r.space


def test_blocks_cover_the_grid_once_in_tie_order():
    """candidate_grid().blocks() (the enumeration search_layer and dse.mapsearch share): every
    candidate whose weight tile and single output tile fit is priced exactly once, tile_m
    ascending; block size does not change search_layer's choice."""
    rng = random.Random(SEED + 3)
    for _ in range(20):
        arch = random_arch(rng, max_dim=6)
        nest = LoopNest.gemm(rng.randint(1, 60), rng.randint(1, 40), rng.randint(1, 60))
        cg = candidate_grid(nest, arch, full_upto=8)
        halves = 2 if arch.double_buffer else 1
        want = {(m, n, k) for m in cg.tm.tolist() for n in cg.tn.tolist() for k in cg.tk.tolist()
                if n * k * halves <= arch.w_words and m * n <= arch.acc_words}
        for chunk in (5, 64, 1 << 18):
            got, last_m = [], 0
            for b in cg.blocks(chunk):
                assert b.tm[0, 0] > last_m
                assert (b.tm[0, 0] * b.tn <= arch.acc_words).all()  # fits for the first row
                last_m = int(b.tm[-1, 0])
                got += list(zip(*(b.flat(t).tolist() for t in (b.tm, b.tn, b.tk)), strict=True))
                assert [tuple(map(int, b.tiles(i))) for i in range(b.size)] == got[-b.size:]
            assert len(got) == len(set(got)) and want <= set(got)
            assert cg.space == len(cg.tm) * len(cg.tn) * len(cg.tk) * 6
            try:
                ref = search_layer(nest, arch, "energy", full_upto=8)
            except MappingError as exc:
                with pytest.raises(MappingError, match=re.escape(str(exc))):
                    search_layer(nest, arch, "energy", full_upto=8, chunk=chunk)
                continue
            r = search_layer(nest, arch, "energy", full_upto=8, chunk=chunk)
            assert (r.mapping, r.valid) == (ref.mapping, ref.valid)


def test_errors_name_the_limit():
    nest = LoopNest.conv(1, 16, 8, 16, 16, 3, 3, padding=1)  # input 2048 + output 4096
    with pytest.raises(MappingError, match=r"conv1: the activation scratchpad .* cannot hold one "
                                           r"output row .* at least 668"):
        map_layer(nest, ArchSpec(act_words=600), layer="conv1")
    with pytest.raises(MappingError, match="objective 'speed' is invalid; allowed: latency, "
                                           "energy, edp"):
        map_layer(nest, ArchSpec(), "speed")


def test_map_graph_with_a_graph_like_object():
    nests = [LoopNest.conv(1, 8, 3, 8, 8, 3, 3, padding=1), LoopNest.gemm(1, 10, 512)]
    graph = SimpleNamespace(compute_nodes=lambda: [SimpleNamespace(name=f"l{i}", nest=n)
                                                   for i, n in enumerate(nests)])
    arch = preset("edge-8x8")
    s = map_graph(graph, arch, "latency")
    assert isinstance(s, Schedule) and s.arch_name == "edge-8x8"
    assert [lm.layer for lm in s.layers] == ["l0", "l1"]
    for lm, cost, nest in zip(s.layers, s.costs, nests, strict=True):
        assert lm.nest == nest
        assert cost.cycles == timing.layer_cycles(lm, arch).cycles
        assert cost == map_layer(nest, arch, layer=lm.layer)[1]
    assert s.total_cycles == sum(c.cycles for c in s.costs)


@pytest.mark.slow
def test_resnet18_on_mid16x16_maps_within_one_cpu_second():
    """The bench_mapper workload: every conv + fc layer of zoo resnet18 (CPU time, one core)."""
    import time

    import models
    from mapping.passes import prepare

    entry = models.get("resnet18")
    x = entry.example_input()
    layers = [(n.name, n.nest) for n in prepare(entry.load(), x, x.numpy()).compute_nodes()]
    assert len(layers) == 21
    arch = preset("mid-16x16").replace(act_words=10**6)
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        for name, nest in layers:
            map_layer(nest, arch, "latency", layer=name)
        best = min(best, time.process_time() - c0)
    assert best <= 1.0
