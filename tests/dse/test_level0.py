"""Level 0 vs independent references: mapping.mapper.map_graph on the lowered graph (cycles,
energy), mapping.timing for pooling, the I/O stream length. Resources (the boards resource
model given the compiled program's sizes): tests/dse/test_resources.py."""

import random

import pytest

import models
from dse.level0 import Level0Evaluator
from dse.model import model_layers, nests_for_bits
from dse.resources import NoResourceModel
from dse.space import default_space
from mapping import timing
from mapping.graph import trace
from mapping.mapper import map_graph
from mapping.passes import fold_batchnorm, fuse_activations, lower
from mapping.schedule import MappingError


@pytest.fixture(scope="module")
def graph():
    e = models.get("cnn-digits")
    return lower(fuse_activations(fold_batchnorm(trace(e.load(), e.example_input()))))


def reference(graph, arch, objective):
    from mapping.cost import act_requirement

    # level 0 prices programs whose layers fit act_words; one that would spill (its tensors
    # in external memory, docs/timing.md) is not priced there yet: infeasible
    if any(sum(act_requirement(n.nest)) > arch.act_words for n in graph.compute_nodes()):
        return None
    try:
        s = map_graph(graph, arch, objective)
    except MappingError:
        return None
    pool = timing.pool_cycles(16, 16, 4, arch)  # maxpool 2x2 of 16 x 8 x 8 -> 16 x 4 x 4
    run = timing.run_cycles(64, s.total_cycles + pool, 10)  # 1x8x8 in, 10 logits out
    return run, sum(c.energy_pj for c in s.costs)


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_cycles_and_energy_match_map_graph(graph, objective):
    sp = default_space()
    ev = Level0Evaluator(sp, model_layers("cnn-digits"), NoResourceModel("test"),
                         {"bram_bits": 10**9}, accuracy=None)
    rng = random.Random(3)
    checked = 0
    for _ in range(40):
        p = {**sp.point(rng.randrange(sp.size)), "bits": 8, "objective": objective}
        arch, _ = sp.arch_or_error(p)
        m = ev.evaluate(p)
        if arch is None:
            assert not m["feasible"]
            continue
        ref = reference(graph, arch, objective)
        if ref is None:
            assert not m["feasible"] and m["reason"]
            continue
        assert m["feasible"]
        assert m["cycles"] == ref[0]
        assert m["energy_nj"] * 1000 == pytest.approx(ref[1], rel=1e-9)
        assert m["throughput"] == pytest.approx(arch.clock_mhz * 1e6 / ref[0])
        checked += 1
    assert checked >= 10


def test_cache_reuses_layer_results():
    sp = default_space()
    ev = Level0Evaluator(sp, model_layers("cnn-digits"), NoResourceModel("test"),
                         {"bram_bits": 10**9})
    p = {**sp.point(0), "rows": 4, "cols": 4, "act_words": 4096, "bits": 8,
         "objective": "latency"}
    a = ev.evaluate(p)
    misses = ev.misses
    # banks and act_words do not change the mapping; w_words beyond the largest tile neither
    b = ev.evaluate({**p, "act_banks": 4, "w_banks": 2, "acc_banks": 2})
    assert ev.misses == misses and a["cycles"] == b["cycles"]


def test_nests_carry_bits():
    L = model_layers("cnn-digits")
    n = nests_for_bits(L, 4, {"conv2": 6})
    assert [(x.in_bits, x.w_bits, x.out_bits) for x in n] == [(4, 4, 4), (4, 6, 6), (6, 4, 4)]
