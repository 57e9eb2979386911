"""PostProc vs a plain-Python-int reference and vs mapping.quant.requantize."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.rtl.postproc import MULT_BITS, PostProc
from mapping import quant
from mapping.arch import ArchSpec


def ref_requant(acc: int, bias: int, mult: int, shift: int, acc_bits: int, out_bits: int,
                relu: bool) -> int:
    """Plain Python ints, written from the formula (not from the hardware)."""
    x = acc + bias
    x = (x + (1 << (acc_bits - 1))) % (1 << acc_bits) - (1 << (acc_bits - 1))
    y = (x * mult + (1 << (shift - 1))) >> shift  # Python >> on ints is a floor shift
    lo = 0 if relu else -(1 << (out_bits - 1))
    hi = (1 << (out_bits - 1)) - 1
    return min(max(y, lo), hi)


def make_rows(rng, arch, lanes, n, extremes=False):
    A = arch.acc_bits
    rows = []
    for _ in range(n):
        if extremes:
            pick = lambda vals: [int(rng.choice(vals)) for _ in range(lanes)]  # noqa: E731
            amin, amax = -(1 << (A - 1)), (1 << (A - 1)) - 1
            acc, bias = pick([amin, amax, 0, -1]), pick([amin, amax, 0, 1])
            mult, shift = pick([0, 1, (1 << MULT_BITS) - 1, 1 << 14]), pick([1, 2, 62, A])
        else:
            acc = [int(v) for v in rng.integers(-(1 << (A - 1)), 1 << (A - 1), lanes)]
            bias = [int(v) for v in rng.integers(-(1 << min(A - 1, 20)), 1 << min(A - 1, 20), lanes)]
            mult = [int(v) for v in rng.integers(1 << 14, 1 << MULT_BITS, lanes)]
            shift = [int(v) for v in rng.integers(max(1, A - 10), min(62, A + 14) + 1, lanes)]
        out_bits = int(rng.integers(2, arch.in_bits + 1))
        relu = bool(rng.integers(0, 2))
        valid = bool(rng.random() < 0.8)
        rows.append((valid, acc, bias, mult, shift, out_bits, relu))
    return rows


def run_postproc(h, arch, lanes, rows):
    dut = PostProc(arch, lanes=lanes)
    L = PostProc.latency(arch)
    seen = {}

    async def bench(ctx):
        for t in range(len(rows) + L + 1):
            if t < len(rows):
                valid, acc, bias, mult, shift, out_bits, relu = rows[t]
                ctx.set(dut.in_valid, valid)
                ctx.set(dut.acc, acc)
                ctx.set(dut.bias, bias)
                ctx.set(dut.mult, mult)
                ctx.set(dut.shift, shift)
                ctx.set(dut.out_bits, out_bits)
                ctx.set(dut.relu, relu)
            else:
                ctx.set(dut.in_valid, 0)
            if ctx.get(dut.out_valid):
                seen[t] = list(ctx.get(dut.out))
            await ctx.tick()

    h.run_simulation(dut, bench)
    expected = {}
    for t, (valid, acc, bias, mult, shift, out_bits, relu) in enumerate(rows):
        if valid:
            expected[t + L] = [ref_requant(acc[j], bias[j], mult[j], shift[j], arch.acc_bits,
                                           out_bits, relu) for j in range(lanes)]
    return seen, expected


@pytest.mark.parametrize("seed", range(6))
def test_postproc_random(sim_helpers, seed):
    rng = np.random.default_rng(1000 + seed)
    in_bits = int(rng.integers(2, 17))
    acc_bits = int(rng.integers(max(8, in_bits + 2), 49))
    arch = ArchSpec(rows=2, cols=3, in_bits=in_bits, w_bits=2, acc_bits=acc_bits)
    lanes = int(rng.integers(1, 5))
    seen, expected = run_postproc(sim_helpers, arch, lanes, make_rows(rng, arch, lanes, 12))
    assert seen == expected


@pytest.mark.parametrize("in_bits,acc_bits", [(8, 16), (16, 48), (2, 8), (8, 32)])
def test_postproc_extremes(sim_helpers, in_bits, acc_bits):
    rng = np.random.default_rng(in_bits + acc_bits)
    arch = ArchSpec(rows=2, cols=4, in_bits=in_bits, w_bits=2, acc_bits=acc_bits)
    seen, expected = run_postproc(sim_helpers, arch, 4, make_rows(rng, arch, 4, 16, extremes=True))
    assert seen == expected


def test_reference_agrees_with_mapping_quant():
    """The plain-int reference used above is mapping.quant.requantize of the wrapped sum."""
    rng = np.random.default_rng(7)
    for acc_bits in (16, 32, 48):
        acc = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), 200)
        bias = rng.integers(-(1 << (acc_bits - 1)), 1 << (acc_bits - 1), 200)
        mult = rng.integers(0, 1 << MULT_BITS, 200)
        shift = rng.integers(1, 63, 200)
        for out_bits, relu in ((8, False), (4, True), (16, False)):
            want = quant.requantize(quant.wrap(acc + bias, acc_bits), mult, shift, out_bits, relu)
            got = [ref_requant(int(a), int(b), int(m), int(s), acc_bits, out_bits, relu)
                   for a, b, m, s in zip(acc, bias, mult, shift, strict=True)]
            assert got == [int(v) for v in want]


def test_hardware_matches_mapping_quant(sim_helpers):
    """Hardware output equals mapping.quant.requantize directly (per-lane mult/shift)."""
    rng = np.random.default_rng(11)
    arch = ArchSpec(rows=2, cols=4, in_bits=8, w_bits=8, acc_bits=32)
    rows = make_rows(rng, arch, 4, 10)
    seen, _ = run_postproc(sim_helpers, arch, 4, rows)
    L = PostProc.latency(arch)
    for t, (valid, acc, bias, mult, shift, out_bits, relu) in enumerate(rows):
        if valid:
            x = quant.wrap(np.array(acc) + np.array(bias), 32)
            assert seen[t + L] == [int(v) for v in quant.requantize(x, mult, shift, out_bits, relu)]


def test_latency_and_bad_args():
    arch = ArchSpec()
    assert PostProc.latency(arch) == 2
    with pytest.raises(ValueError, match="lanes"):
        PostProc(arch, lanes=0)
    with pytest.raises(ValueError, match="out_width"):
        PostProc(arch, out_width=17)
