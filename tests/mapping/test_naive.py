"""mapping.naive against its definition, a closed form of its cycles, the element-by-element
reference executor and the mapper (which must never be slower)."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
from random_cases import SEED, random_arch, random_nest
from reference_executor import execute, numpy_output, random_operands

from mapping import timing
from mapping.arch import ArchSpec, preset
from mapping.loopnest import LoopNest
from mapping.mapper import map_layer
from mapping.naive import naive_layer, naive_schedule
from mapping.schedule import MappingError, Schedule


def cases(n: int, seed: int = SEED):
    rng = random.Random(seed)
    for _ in range(n):
        yield random_arch(rng), random_nest(rng, max_gemm=24)


def expected_tiles(nest: LoopNest, arch: ArchSpec, temporal: str) -> tuple[int, int, int]:
    """(tile_m, tile_n, tile_k) as the module docstring states them."""
    M, N, K = nest.gemm_m, nest.gemm_n, nest.gemm_k
    tn = min(N, arch.cols)
    if arch.dataflow == "ws":
        return (1 if temporal == "one" else min(M, arch.acc_words // tn)), tn, min(K, arch.rows)
    halves = 2 if arch.double_buffer else 1
    tk = 1 if temporal == "one" else min(K, arch.w_words // (tn * halves))
    return min(M, arch.rows, arch.acc_words // tn), tn, tk


@pytest.mark.parametrize("temporal", ["one", "full"])
def test_tiles_are_the_definition_and_one_pass_each(temporal):
    for arch, nest in cases(150):
        lm = naive_layer(nest, arch, "l", temporal)
        assert (lm.tile_m, lm.tile_n, lm.tile_k) == expected_tiles(nest, arch, temporal)
        assert lm.order == ("m", "n", "k") and lm.dataflow == arch.dataflow
        tm, tn, tk = lm.tile_m, lm.tile_n, lm.tile_k
        # one array pass per tile: the spatial block fits rows x cols
        spatial = (tk, tn) if arch.dataflow == "ws" else (tm, tn)
        assert spatial[0] <= arch.rows and spatial[1] <= arch.cols
        if temporal == "one":
            assert (tm if arch.dataflow == "ws" else tk) == 1
        # legal: weight tile and live partial sums fit
        assert tk * tn * (2 if arch.double_buffer else 1) <= arch.w_words
        assert tm * tn <= arch.acc_words


def closed_form_ws_one(nest: LoopNest, arch: ArchSpec) -> int:
    """docs/timing.md summed by hand for ws, temporal one, single-buffered: every tile is
    one pass of one input vector; a DMA burst whenever the weight tile changes."""
    M, N, K = nest.gemm_m, nest.gemm_n, nest.gemm_k
    rows, cols = arch.rows, arch.cols
    cn, ck = math.ceil(N / cols), math.ceil(K / rows)
    compute = rows + 1 + (rows + cols + 3)  # p = 1, m = 1
    post = 1 + 3  # m = 1 row, n <= cols
    wpw = arch.ext_word_bits // arch.w_bits

    def burst(words: int) -> int:
        if arch.weight_store == "rom":
            return 2 + 1 + words
        return 2 + arch.ext_latency + math.ceil(words / arch.ext_bandwidth)

    dma_one_pass = 0
    for ni in range(cn):
        for ki in range(ck):
            n = min(cols, N - ni * cols)
            k = min(rows, K - ki * rows)
            dma_one_pass += burst(math.ceil(k * n / wpw))
    # weights reload for every m unless there is a single weight tile
    dma = dma_one_pass * (M if cn * ck > 1 else 1)
    return 2 + M * cn * ck * compute + M * cn * post + dma


def test_cycles_closed_form_ws_single_buffered():
    checked = 0
    for arch, nest in cases(200, seed=SEED + 1):
        arch = arch.replace(dataflow="ws", double_buffer=False)
        g = SimpleNamespace(compute_nodes=lambda nest=nest: [SimpleNamespace(name="l", nest=nest)])
        s = naive_schedule(g, arch)
        assert s.total_cycles == closed_form_ws_one(nest, arch)
        checked += 1
    assert checked == 200


@pytest.mark.parametrize("temporal", ["one", "full"])
def test_cycles_equal_timing_tile_loop(temporal):
    for arch, nest in cases(120, seed=SEED + 2):
        g = SimpleNamespace(compute_nodes=lambda nest=nest: [SimpleNamespace(name="a", nest=nest),
                                                             SimpleNamespace(name="b", nest=nest)])
        s = naive_schedule(g, arch, temporal)
        assert isinstance(s, Schedule) and [lm.layer for lm in s.layers] == ["a", "b"]
        ref = timing.layer_cycles(naive_layer(nest, arch, "a", temporal), arch).cycles
        assert [c.cycles for c in s.costs] == [ref, ref]
        assert s.costs[0].macs == nest.gemm_m * nest.gemm_n * nest.gemm_k


@pytest.mark.parametrize("temporal", ["one", "full"])
def test_naive_mapping_computes_the_layer(temporal):
    rng = np.random.default_rng(SEED)
    for arch, nest in cases(40, seed=SEED + 3):
        x, w = random_operands(nest, rng)
        out, _ = execute(naive_layer(nest, arch, "l", temporal), arch, x, w)
        np.testing.assert_array_equal(out, numpy_output(nest, x, w))


def test_mapper_never_slower():
    worse = 0
    for arch, nest in cases(80, seed=SEED + 4):
        naive = timing.layer_cycles(naive_layer(nest, arch), arch).cycles
        _, best = map_layer(nest, arch)
        assert best.cycles <= naive
        worse += best.cycles < naive
    assert worse > 40  # the naive mapping is rarely already optimal


def test_digits_sized_layers_on_edge_8x8():
    # conv2 of cnn-digits: M = 64 pixels, N = 16, K = 72
    nest = LoopNest.conv(1, 16, 8, 8, 8, 3, 3, padding=1)
    arch = preset("edge-8x8")
    lm = naive_layer(nest, arch)
    assert (lm.tile_m, lm.tile_n, lm.tile_k) == (1, 8, 8)
    naive = timing.layer_cycles(lm, arch)
    assert naive.tiles == 64 * 2 * 9 and naive.dma_bursts == 64 * 2 * 9
    _, best = map_layer(nest, arch)
    assert naive.cycles > 5 * best.cycles
    full = naive_layer(nest, arch, temporal="full")
    assert (full.tile_m, full.tile_n, full.tile_k) == (64, 8, 8)
    assert best.cycles <= timing.layer_cycles(full, arch).cycles < naive.cycles


def test_errors_name_the_problem():
    nest = LoopNest.gemm(4, 4, 4)
    with pytest.raises(MappingError, match="temporal = 'half' is invalid; allowed: one, full"):
        naive_layer(nest, preset("tiny-4x4"), temporal="half")
    with pytest.raises(MappingError, match="act_words"):
        naive_layer(LoopNest.gemm(100, 100, 100), ArchSpec(act_words=64))
    with pytest.raises(MappingError, match="ArchSpec"):
        naive_layer(nest, "edge-8x8")
