"""Scratchpads and accumulator buffer against numpy models (random shapes and widths)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from hwgen.memory import (
    AccumulatorBuffer,
    ActivationScratchpad,
    ConstTable,
    WeightScratchpad,
    bank_count,
)
from mapping import quant
from mapping.arch import ArchSpec


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _rand(rng, bits, n):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=n)


def test_bank_count():
    assert [bank_count(1), bank_count(3), bank_count(4), bank_count(5, 2)] == [1, 4, 4, 8]


@pytest.mark.parametrize("seed", range(3))
def test_activation_scratchpad(seed):
    rng = np.random.default_rng(seed)
    R, C, bits = int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(2, 17))
    words = int(rng.integers(C + 1, 90))
    arch = ArchSpec(rows=R, cols=C, in_bits=bits, w_bits=2, acc_bits=max(8, bits + 2),
                    act_words=words, ext_word_bits=16)
    dut = ActivationScratchpad(arch)
    ref = np.zeros(words, dtype=np.int64)

    async def bench(ctx):
        for _ in range(40):
            a = int(rng.integers(0, words - C + 1))
            vals, mask = _rand(rng, bits, C), rng.integers(0, 2, C)
            ctx.set(dut.wr_addr, a)
            ctx.set(dut.wr_mask, int(sum(int(b) << i for i, b in enumerate(mask))))
            for j in range(C):
                ctx.set(dut.wr_data[j], int(vals[j]))
            await ctx.tick()
            ref[a:a + C][mask == 1] = vals[mask == 1]
            ctx.set(dut.wr_mask, 0)
            addrs = rng.integers(0, words, R)
            ctx.set(dut.rd_en, 1)
            for r in range(R):
                ctx.set(dut.rd_addr[r], int(addrs[r]))
            await ctx.tick()
            ctx.set(dut.rd_en, 0)
            assert [ctx.get(dut.rd_data[r]) for r in range(R)] == list(ref[addrs])

    _sim(dut, bench)


@pytest.mark.parametrize("seed", range(3))
def test_weight_scratchpad(seed):
    rng = np.random.default_rng(10 + seed)
    C, wb = int(rng.integers(1, 6)), int(rng.integers(2, 9))
    ewb = int(rng.choice([8, 16, 32]))
    ewb = max(ewb, wb)
    words = int(rng.integers(64, 200))
    arch = ArchSpec(rows=2, cols=C, w_bits=wb, in_bits=2, acc_bits=max(8, wb + 2),
                    w_words=words, ext_word_bits=ewb, double_buffer=False)
    dut = WeightScratchpad(arch)
    wpw = arch.weights_per_ext_word
    ref = np.zeros(words, dtype=np.int64)

    async def bench(ctx):
        for _ in range(40):
            a = int(rng.integers(0, words - wpw + 1))
            vals, mask = _rand(rng, wb, wpw), rng.integers(0, 2, wpw)
            ctx.set(dut.wr_addr, a)
            ctx.set(dut.wr_mask, int(sum(int(b) << i for i, b in enumerate(mask))))
            for j in range(wpw):
                ctx.set(dut.wr_data[j], int(vals[j]))
            await ctx.tick()
            ref[a:a + wpw][mask == 1] = vals[mask == 1]
            ctx.set(dut.wr_mask, 0)
            a = int(rng.integers(0, words - C + 1))
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, a)
            await ctx.tick()
            ctx.set(dut.rd_en, 0)
            assert [ctx.get(dut.rd_data[j]) for j in range(C)] == list(ref[a:a + C])

    _sim(dut, bench)


@pytest.mark.parametrize("seed", range(3))
def test_accumulator_read_modify_write(seed):
    """Back-to-back updates of random (often equal) rows, overwrite/accumulate, wrap-around."""
    rng = np.random.default_rng(20 + seed)
    C, ab = int(rng.integers(1, 6)), int(rng.integers(8, 20))
    words = int(rng.integers(C + 4, 40))
    arch = ArchSpec(rows=2, cols=C, in_bits=2, w_bits=2, acc_bits=ab, acc_words=words,
                    ext_word_bits=16)
    dut = AccumulatorBuffer(arch)
    ref = np.zeros(words, dtype=np.int64)

    async def bench(ctx):
        base = int(rng.integers(0, words - C + 1))
        for _ in range(60):
            a = base if rng.random() < 0.5 else int(rng.integers(0, words - C + 1))
            vals = _rand(rng, ab, C)
            cw = int(rng.integers(1, C + 1))
            accum = bool(rng.integers(0, 2))
            ctx.set(dut.in_valid, 1)
            ctx.set(dut.in_addr, a)
            ctx.set(dut.in_mask, (1 << cw) - 1)
            ctx.set(dut.in_accumulate, int(accum))
            for j in range(C):
                ctx.set(dut.in_data[j], int(vals[j]))
            await ctx.tick()
            old = ref[a:a + cw] if accum else 0
            ref[a:a + cw] = quant.wrap(old + vals[:cw], ab)
        ctx.set(dut.in_valid, 0)
        await ctx.tick()  # the last write
        for a in range(0, words - C + 1):
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, a)
            await ctx.tick()
            assert [ctx.get(dut.rd_data[j]) for j in range(C)] == list(ref[a:a + C])

    _sim(dut, bench)


def test_const_table():
    rng = np.random.default_rng(5)
    init = [int(v) for v in rng.integers(0, 1 << 20, size=23)]
    dut = ConstTable(unsigned(20), init, 3)

    async def bench(ctx):
        for a in range(0, 23):
            ctx.set(dut.rd_en, 1)
            ctx.set(dut.rd_addr, a)
            await ctx.tick()
            want = [(init[a + j] if a + j < 23 else 0) for j in range(3)]
            assert [ctx.get(dut.rd_data[j]) for j in range(3)] == want

    _sim(dut, bench)
