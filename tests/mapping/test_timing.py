"""mapping.timing (the executable timing contract) against docs/timing.md, by hand and by an
explicit two-resource timeline; the closed form of mapping.cost is tested in test_cost.py."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from random_cases import SEED, random_arch, random_mapping, random_nest

from mapping import timing
from mapping.arch import ArchSpec, preset
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping, MappingError


def _valid(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        arch = random_arch(rng)
        lm = random_mapping(rng, random_nest(rng), arch)
        try:
            timing.check(lm, arch)
        except MappingError:
            continue
        out.append((lm, arch))
    return out


def test_tiles_cover_the_iteration_space_once():
    for lm, _ in _valid(80, SEED):
        n = lm.nest
        seen = {}
        prev = None
        for t in timing.iter_tiles(lm):
            for m in range(t.mi * lm.tile_m, t.mi * lm.tile_m + t.m):
                for nn in range(t.ni * lm.tile_n, t.ni * lm.tile_n + t.n):
                    for k in range(t.ki * lm.tile_k, t.ki * lm.tile_k + t.k):
                        seen[m, nn, k] = seen.get((m, nn, k), 0) + 1
            assert t.first_k == (t.ki == 0)
            assert t.last_k == ((t.ki + 1) * lm.tile_k >= n.gemm_k)
            assert t.load_weights == ((t.ki, t.ni) != prev)
            prev = (t.ki, t.ni)
        assert len(seen) == n.macs and set(seen.values()) == {1}


def test_overlap_equals_an_explicit_timeline():
    """Double buffering as two resources: burst i+1 starts with tile i, tile i+1 waits for both."""
    for lm, arch in _valid(150, SEED + 1):
        tiles = list(timing.iter_tiles(lm))
        dur = [timing.compute_cycles(t, lm.dataflow, arch)
               + (timing.postproc_cycles(t, arch) if t.last_k else 0) for t in tiles]
        dma = [timing.dma_cycles(timing.weight_words(t, arch), arch) if t.load_weights else 0
               for t in tiles]
        if arch.double_buffer:
            start = dma[0]
            for i in range(len(tiles) - 1):
                burst_end = start + dma[i + 1]
                start = max(start + dur[i], burst_end)
            end = start + dur[-1]
        else:
            end = sum(dur) + sum(dma)
        lt = timing.layer_cycles(lm, arch)
        assert lt.cycles == timing.LAYER_SETUP + end
        assert lt.dma_stall == end - sum(dur)
        assert lt.tiles == len(tiles) and lt.dma_bursts == sum(1 for d in dma if d)


def test_phase_lengths_by_hand():
    arch = ArchSpec(rows=4, cols=3, ext_word_bits=32, weight_store="external",
                    ext_bandwidth=0.5, ext_latency=10)
    t = timing.Tile(0, 0, 0, m=6, n=5, k=9, first_k=True, last_k=True, load_weights=True)
    p_ws = math.ceil(9 / 4) * math.ceil(5 / 3)  # 6 passes
    assert timing.passes(t, "ws", arch) == p_ws
    assert timing.compute_cycles(t, "ws", arch) == (4 + 5 * max(6, 4) + 6
                                                    + timing.ws_pipeline_depth(arch))
    p_os = math.ceil(6 / 4) * math.ceil(5 / 3)  # 4 passes
    assert timing.compute_cycles(t, "os", arch) == 3 * max(9, 4) + 9 + timing.os_pipeline_depth(arch)
    assert p_os == timing.passes(t, "os", arch)
    assert timing.postproc_cycles(t, arch) == 6 * 2 + timing.POST_LATENCY
    assert timing.weight_words(t, arch) == math.ceil(45 / 4)
    assert timing.dma_cycles(12, arch) == timing.DMA_SETUP + 10 + 24
    rom = arch.replace(weight_store="rom")
    assert timing.dma_cycles(12, rom) == timing.DMA_SETUP + timing.ROM_LATENCY + 12
    assert timing.pool_cycles(10, 8, 4, arch) == (timing.LAYER_SETUP + 10 * 2 * 4
                                                 + timing.POST_LATENCY)
    assert timing.add_cycles(10, arch) == timing.LAYER_SETUP + 2 * 3 + timing.POST_LATENCY


def test_acc_footprint():
    nest = LoopNest.gemm(10, 12, 8)
    lm = LayerMapping("l", nest, "ws", 3, 5, 2, ("k", "m", "n"))  # 4 m x 3 n tiles inside k
    assert timing.acc_footprint(lm) == 3 * 5 * 4 * 3
    lm = LayerMapping("l", nest, "ws", 3, 5, 2, ("m", "k", "n"))
    assert timing.acc_footprint(lm) == 3 * 5 * 3
    lm = LayerMapping("l", nest, "ws", 3, 5, 2, ("m", "n", "k"))
    assert timing.acc_footprint(lm) == 3 * 5


def test_check_messages():
    arch = ArchSpec(rows=2, cols=2, w_words=16, acc_words=8, double_buffer=True)
    nest = LoopNest.gemm(4, 4, 4)
    with pytest.raises(MappingError, match=r"weight tile 4x4 \(x2, double-buffered\) exceeds "
                                           r"w_words=16"):
        timing.check(LayerMapping("l", nest, "ws", 1, 4, 4), arch)
    with pytest.raises(MappingError, match="16 live partial sums exceed acc_words=8"):
        timing.check(LayerMapping("l", nest, "ws", 4, 4, 1), arch)
    with pytest.raises(MappingError, match="mapping dataflow 'os' differs"):
        timing.check(LayerMapping("l", nest, "os", 1, 1, 1), arch)


def test_block_runs_brute_force():
    """Taps a block spans = distinct ``k // C`` among its indices (brute force)."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        run, rows = int(rng.integers(1, 20)), int(rng.integers(1, 17))
        k0, k = int(rng.integers(0, 60)), int(rng.integers(1, 80))
        want = [len({i // run for i in range(lo, min(lo + rows, k0 + k))})
                for lo in range(k0, k0 + k, rows)]
        assert timing.block_runs(k0, k, run, rows) == want


def test_runs_gather_cycles():
    """``act_gather = "runs"``: with ``C`` a multiple of ``rows`` the "lanes" cycles; a
    1-channel 3x3 conv on 8 rows (runs of 3: kernel rows) streams block 0 (k 0..7: rows
    0, 1, 2) 3 times and block 1 once; dilated along w, runs are single taps (8 times)."""
    lanes = preset("edge-8x8")
    runs = lanes.replace(act_gather="runs")
    wide = LoopNest.conv(1, 8, 16, 6, 6, 3, 3, padding=1)
    lm = LayerMapping("c", wide, "ws", 36, 8, 144)
    assert timing.layer_cycles(lm, runs) == timing.layer_cycles(lm, lanes)
    one = LoopNest.conv(1, 8, 1, 6, 6, 3, 3, padding=1)
    t = next(timing.iter_tiles(LayerMapping("c", one, "ws", 36, 8, 9)))
    assert timing.gather_run(one, runs) == 3
    assert timing.ws_streams(t, runs, 3) == [3 * 36, 36]
    assert timing.compute_cycles(t, "ws", runs, 3) == (
        8 + 3 * 36 + 36 + timing.ws_pipeline_depth(runs))
    dil = LoopNest.conv(1, 8, 1, 6, 6, 3, 3, padding=2, dilation=2)
    assert timing.gather_run(dil, runs) == 1
    assert timing.ws_streams(t, runs, 1) == [8 * 36, 36]
    assert timing.gather_run(one, lanes) is None
    with pytest.raises(ValueError, match="act_gather"):
        lanes.replace(dataflow="os", act_gather="runs")
