"""mapping.cost against independent references: the plain tile loop of mapping.timing
(cycles) and the element-by-element reference executor (accesses, numpy output)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from random_cases import SEED, random_arch, random_mapping, random_nest
from reference_executor import execute, numpy_output, random_operands

from mapping import timing
from mapping.arch import ArchSpec
from mapping.cost import check_layer, evaluate, nonpad_count
from mapping.energy import ACCESS_KEYS, energy_table
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping, MappingError


def _valid_cases(n: int, seed: int, **nest_kw):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        arch = random_arch(rng)
        nest = random_nest(rng, **nest_kw)
        lm = random_mapping(rng, nest, arch)
        try:
            timing.check(lm, arch)
        except MappingError:
            continue
        out.append((lm, arch))
    return out


def test_cycles_equal_timing_reference_loop():
    """Closed form == mapping.timing.layer_cycles on 600 random layers x mappings x archs."""
    cases = _valid_cases(600, SEED)
    seen = set()
    for lm, arch in cases:
        ref = timing.layer_cycles(lm, arch)
        c = evaluate(lm, arch)
        b = c.breakdown
        assert (c.cycles, b["compute"], b["postproc"], b["dma"], b["dma_stall"], b["tiles"],
                b["dma_bursts"]) == (ref.cycles, ref.compute, ref.postproc, ref.dma,
                                     ref.dma_stall, ref.tiles, ref.dma_bursts), (lm, arch)
        assert c.utilization == pytest.approx(lm.nest.macs / (arch.pes * ref.cycles))
        nest = lm.nest
        edge = any(dim % t for dim, t in ((nest.gemm_m, lm.tile_m), (nest.gemm_n, lm.tile_n),
                                          (nest.gemm_k, lm.tile_k)))
        seen.add((arch.dataflow, arch.double_buffer, arch.weight_store, nest.kind, edge))
    # the sample covers every combination of the features the closed form distinguishes
    assert len(seen) == 32


def test_accesses_equal_reference_executor():
    """Access counts == the element-level executor, whose output == numpy, on 250 cases."""
    cases = _valid_cases(250, SEED + 1, max_gemm=9)
    rng = np.random.default_rng(SEED)
    for lm, arch in cases:
        x, w = random_operands(lm.nest, rng)
        out, counts = execute(lm, arch, x, w)
        np.testing.assert_array_equal(out, numpy_output(lm.nest, x, w))
        c = evaluate(lm, arch)
        assert c.accesses == {k: counts.get(k, 0) for k in ACCESS_KEYS}, (lm, arch)
        assert c.macs == lm.nest.gemm_m * lm.nest.gemm_n * lm.nest.gemm_k


def test_energy_is_counts_times_table():
    lm, arch = _valid_cases(1, SEED + 2)[0]
    c = evaluate(lm, arch)
    t = energy_table(lm.nest, arch)
    want = lm.nest.macs * t.mac + sum(c.accesses[k] * t.per_access[k] for k in ACCESS_KEYS)
    assert c.energy_pj == pytest.approx(want, rel=1e-12)


def test_nonpad_count_brute_force():
    rng = random.Random(SEED + 3)
    for _ in range(40):
        nest = random_nest(rng, conv_prob=0.9)
        want = sum(nest.im2col_index(m, k) is not None
                   for m in range(nest.gemm_m) for k in range(nest.gemm_k))
        assert nonpad_count(nest) == want


def test_single_tile_by_hand():
    """One tile, ws, ROM, no double buffering: the docs/timing.md table by hand."""
    arch = ArchSpec(rows=4, cols=4, dataflow="ws", double_buffer=False, w_words=64,
                    acc_words=64, ext_word_bits=32)
    lm = LayerMapping("l", LoopNest.gemm(5, 6, 7), "ws", 5, 6, 7, ("m", "n", "k"))
    p = 2 * 2  # ceil(7/4) * ceil(6/4)
    compute = 4 + (p - 1) * max(5, 4) + 5 + timing.ws_pipeline_depth(arch)
    post = 5 * 2 + timing.POST_LATENCY
    dma = timing.DMA_SETUP + timing.ROM_LATENCY + -(-42 // 4)
    c = evaluate(lm, arch)
    assert c.cycles == timing.LAYER_SETUP + dma + compute + post
    assert c.accesses["store.w.read"] == 11
    assert c.accesses["wbuf.w.read"] == 42
    assert c.accesses["act.in.read"] == 2 * 35  # two n blocks, each reads the 5x7 inputs
    assert c.accesses["acc.psum.write"] == 30 * 2  # two k passes per output
    assert c.accesses["acc.psum.read"] == 30


def test_act_words_check():
    nest = LoopNest.conv(1, 8, 4, 10, 10, 3, 3, padding=1)  # input 400, output 800
    check_layer(nest, ArchSpec(act_words=1000), "conv")  # does not fit: runs in row bands
    small = ArchSpec(act_words=200)  # one output row: 3 input rows of 40, 80 out, slack 28
    with pytest.raises(MappingError, match=r"conv: the activation scratchpad \(act_words=200\) "
                                           r"cannot hold one output row .* at least 228"):
        check_layer(nest, small, "conv")
    with pytest.raises(MappingError, match=r"input 800 \+ output 1600 = 2400 elements, "
                                           r"act_words = 1000 .* a batch"):
        check_layer(LoopNest.conv(2, 8, 4, 10, 10, 3, 3, padding=1), ArchSpec(act_words=1000))
    lm = LayerMapping("conv", nest, "ws", 10, 8, 36)
    with pytest.raises(MappingError, match="cannot hold one output row"):
        evaluate(lm, small)
    check_layer(nest, ArchSpec(act_words=1200))


def test_evaluate_rejects_what_the_hardware_cannot_run():
    arch = ArchSpec(rows=4, cols=4, w_words=32, double_buffer=True, acc_words=16)
    nest = LoopNest.gemm(8, 8, 8)
    with pytest.raises(MappingError, match="exceeds w_words=32"):
        evaluate(LayerMapping("l", nest, "ws", 1, 8, 8), arch)
    with pytest.raises(MappingError, match="live partial sums exceed acc_words=16"):
        evaluate(LayerMapping("l", nest, "ws", 8, 2, 1, ("k", "m", "n")), arch)
    with pytest.raises(MappingError, match="differs from the array's 'ws'"):
        evaluate(LayerMapping("l", nest, "os", 1, 1, 1), arch)


def test_runs_gather_closed_form_equals_timing():
    """``act_gather = "runs"``: the closed form == mapping.timing.layer_cycles on 400 random
    ws layers x mappings x archs, whether the k tiles start on a tap
    (:func:`runs_uniform`, priced by the closed form) or not (the tile loop)."""
    from mapping.cost import runs_uniform

    rng = random.Random(SEED + 7)
    kinds = set()
    n = 0
    while n < 400:
        arch = random_arch(rng).replace(dataflow="ws", act_gather="runs")
        nest = random_nest(rng, conv_prob=0.8)
        lm = random_mapping(rng, nest, arch)
        try:
            timing.check(lm, arch)
        except MappingError:
            continue
        n += 1
        ref = timing.layer_cycles(lm, arch)
        c = evaluate(lm, arch)
        assert (c.cycles, c.breakdown["compute"], c.breakdown["dma_stall"]) == (
            ref.cycles, ref.compute, ref.dma_stall), (lm, arch)
        taps = [g for t in timing.iter_tiles(lm)
                for g in timing.block_runs(t.k0, t.k, timing.gather_run(nest, arch),
                                           arch.rows)]
        kinds.add((bool(runs_uniform(nest, arch, lm.tile_k)), max(taps) > 1))
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}


def test_mapper_searches_tiles_on_the_taps():
    """The mapper's best mapping under "runs" starts every k tile on a run, and its cycles
    are the contract's."""
    from mapping.cost import runs_uniform
    from mapping.mapper import map_layer

    arch = ArchSpec(rows=8, cols=8, act_gather="runs", w_words=600, acc_words=4096)
    for nest in (LoopNest.conv(1, 16, 3, 12, 12, 3, 3, padding=1),
                 LoopNest.conv(1, 8, 20, 6, 6, 3, 3), LoopNest.gemm(5, 9, 70)):
        lm, cost = map_layer(nest, arch)
        assert runs_uniform(nest, arch, lm.tile_k)
        assert cost.cycles == timing.layer_cycles(lm, arch).cycles
