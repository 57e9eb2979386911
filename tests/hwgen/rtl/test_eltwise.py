"""ResidualAdd and Pool vs plain-Python-int references and mapping.quant."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.rtl.eltwise import Pool, ResidualAdd
from mapping import quant
from mapping.arch import ArchSpec


def clamp(y: int, out_bits: int, relu: bool) -> int:
    return min(max(y, 0 if relu else -(1 << (out_bits - 1))), (1 << (out_bits - 1)) - 1)


def arch_for(in_bits: int, acc_bits: int = 32, rows: int = 3) -> ArchSpec:
    return ArchSpec(rows=rows, cols=2, in_bits=in_bits, w_bits=2, acc_bits=acc_bits)


# ------------------------------------------------------------------ residual add
def run_add(h, arch, lanes, rows):
    dut = ResidualAdd(arch, lanes=lanes)
    L = ResidualAdd.latency(arch)
    seen = {}

    async def bench(ctx):
        for t in range(len(rows) + L + 1):
            if t < len(rows):
                valid, a, b, ma, mb, sh, ob, relu = rows[t]
                for name, v in (("in_valid", valid), ("a", a), ("b", b), ("ma", ma), ("mb", mb),
                                ("shift", sh), ("out_bits", ob), ("relu", relu)):
                    ctx.set(getattr(dut, name), v)
            else:
                ctx.set(dut.in_valid, 0)
            if ctx.get(dut.out_valid):
                seen[t] = list(ctx.get(dut.out))
            await ctx.tick()

    h.run_simulation(dut, bench)
    expected = {}
    for t, (valid, a, b, ma, mb, sh, ob, relu) in enumerate(rows):
        if valid:
            expected[t + L] = [clamp((x * ma + y * mb + (1 << (sh - 1))) >> sh, ob, relu)
                               for x, y in zip(a, b, strict=True)]
            # and the same through mapping.quant
            q = quant.requantize_add(a, b, ma, mb, sh, ob, relu)
            assert expected[t + L] == [int(v) for v in q]
    return seen, expected


@pytest.mark.parametrize("seed", range(4))
def test_add_random(sim_helpers, seed):
    rng = np.random.default_rng(300 + seed)
    in_bits = int(rng.integers(2, 17))
    arch = arch_for(in_bits)
    lanes = int(rng.integers(1, 5))
    lo, hi = -(1 << (in_bits - 1)), 1 << (in_bits - 1)
    rows = []
    for _ in range(10):
        sa, sb, so = (float(rng.uniform(0.01, 2.0)) for _ in range(3))
        ma, mb, sh = quant.add_multipliers(sa, sb, so)
        rows.append((bool(rng.random() < 0.8), [int(v) for v in rng.integers(lo, hi, lanes)],
                     [int(v) for v in rng.integers(lo, hi, lanes)], ma, mb, sh,
                     int(rng.integers(2, in_bits + 1)), bool(rng.integers(0, 2))))
    seen, expected = run_add(sim_helpers, arch, lanes, rows)
    assert seen == expected


def test_add_extremes(sim_helpers):
    arch = arch_for(16)
    lo, hi = -(1 << 15), (1 << 15) - 1
    M = (1 << 15) - 1
    rows = [
        (True, [lo, hi, lo, hi], [lo, hi, hi, lo], M, M, 1, 16, False),
        (True, [lo, hi, lo, hi], [lo, hi, hi, lo], M, M, 62, 16, False),
        (True, [lo, hi, -1, 1], [lo, hi, -1, 1], M, 0, 15, 2, True),
        (True, [lo, hi, -1, 1], [lo, hi, -1, 1], 1 << 14, 1 << 14, 15, 16, False),
        (True, [0, 0, 0, 0], [-1, -1, 1, 1], 1, 1, 1, 8, False),
    ]
    seen, expected = run_add(sim_helpers, arch, 4, rows)
    assert seen == expected


# ------------------------------------------------------------------ pooling
def pool_windows(rng, in_bits, lanes, n_windows, max_window, extremes=False):
    """Random windows: list of (elements [(pad, values)], avg, mult, shift, out_bits, relu)."""
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1))
    out = []
    for _ in range(n_windows):
        size = int(rng.integers(1, max_window + 1))
        real = int(rng.integers(0, size))  # at least one real element
        elems = []
        for e in range(size):
            pad = e != real and bool(rng.random() < 0.3)
            if extremes:
                vals = [int(v) for v in rng.choice([lo, hi - 1, 0], lanes)]
            else:
                vals = [int(v) for v in rng.integers(lo, hi, lanes)]
            elems.append((pad, vals))
        avg = bool(rng.integers(0, 2))
        mult, shift = quant.quantize_multiplier(1.0 / size)
        out.append((elems, avg, mult, shift, int(rng.integers(2, in_bits + 1)),
                    bool(rng.integers(0, 2))))
    return out


def pool_reference(window, lanes):
    elems, avg, mult, shift, ob, relu = window
    res = []
    for j in range(lanes):
        if avg:
            s = sum(0 if pad else vals[j] for pad, vals in elems)  # zero padding counts
            res.append(int(quant.requantize(np.array([s]), mult, shift, ob, relu)[0]))
        else:
            res.append(clamp(max(vals[j] for pad, vals in elems if not pad), ob, relu))
    return res


def run_pool(h, arch, lanes, windows, gaps_rng=None):
    dut = Pool(arch, lanes=lanes)
    L = Pool.latency(arch)
    sched = []  # per cycle: dict of inputs
    expected = {}
    for w in windows:
        elems, avg, mult, shift, ob, relu = w
        for e, (pad, vals) in enumerate(elems):
            if gaps_rng is not None and gaps_rng.random() < 0.25:
                sched.append({"in_valid": 0, "in_first": 1, "in_last": 1, "in_data": [0] * lanes})
            sched.append({"in_valid": 1, "in_first": int(e == 0), "in_last": int(e == len(elems) - 1),
                          "in_pad": int(pad), "in_data": vals, "avg": int(avg), "mult": mult,
                          "shift": shift, "out_bits": ob, "relu": int(relu)})
        expected[len(sched) - 1 + L] = pool_reference(w, lanes)
    seen = {}

    async def bench(ctx):
        for t in range(len(sched) + L + 1):
            inputs = sched[t] if t < len(sched) else {"in_valid": 0}
            for name, v in inputs.items():
                ctx.set(getattr(dut, name), v)
            if ctx.get(dut.out_valid):
                seen[t] = list(ctx.get(dut.out))
            await ctx.tick()

    h.run_simulation(dut, bench)
    return seen, expected


@pytest.mark.parametrize("seed", range(4))
def test_pool_random(sim_helpers, seed):
    rng = np.random.default_rng(400 + seed)
    in_bits = int(rng.integers(2, 17))
    arch = arch_for(in_bits, acc_bits=int(rng.integers(in_bits + 6, 49)))
    lanes = int(rng.integers(1, 4))
    windows = pool_windows(rng, in_bits, lanes, 6, max_window=9)
    seen, expected = run_pool(sim_helpers, arch, lanes, windows, gaps_rng=rng)
    assert seen == expected


def test_pool_extremes_and_single_element(sim_helpers):
    rng = np.random.default_rng(5)
    arch = arch_for(8, acc_bits=16)
    lo, hi = -128, 127
    windows = [
        ([(False, [lo, lo, lo])], False, 1 << 14, 15, 8, False),  # 1-element max of minimum
        ([(True, [hi] * 3), (False, [lo, lo, lo]), (True, [hi] * 3)], False, 1, 1, 8, False),
        ([(False, [hi, lo, 0])] * 9, True, *quant.quantize_multiplier(1 / 9), 8, False),
        ([(False, [lo] * 3)] * 9, True, *quant.quantize_multiplier(1 / 9), 8, True),
        ([(False, [hi, lo, 5]), (False, [hi, lo, 7])], False, 1, 1, 4, True),
    ] + pool_windows(rng, 8, 3, 4, max_window=16, extremes=True)
    seen, expected = run_pool(sim_helpers, arch, 3, windows)
    assert seen == expected


def test_pool_bad_args_and_limits():
    arch = arch_for(8, acc_bits=20)
    assert Pool.max_window(arch) == 1 << 12
    assert Pool.latency(arch) == ResidualAdd.latency(arch) == 2
    with pytest.raises(ValueError, match="lanes"):
        Pool(arch, lanes=0)
    with pytest.raises(ValueError, match="out_width"):
        ResidualAdd(arch, out_width=1)
