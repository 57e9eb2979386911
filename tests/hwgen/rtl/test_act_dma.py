"""Activation DMA (``hwgen.rtl.act_dma``) in Amaranth simulation against plain models of its
two sides: a scratchpad (writes by lane mask; reads answered the cycle after, held while the
read enable is low) and an external memory on the documented schedule (read word i of a
burst requested at t at ``t + latency + ceil((i+1)/b)``, write word i taken no earlier than
``t + ceil((i+1)/b)``, masked). Random loads and stores of random runs, offsets and counts:
exactly the transfer's elements move, nothing else changes, and the DMA is busy for
``runs * (XFER_REQUEST + latency + ceil(words / b))`` cycles (docs/timing.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.compiler.isa import Op
from hwgen.rtl.act_dma import ActivationDMA
from mapping import timing
from mapping.arch import ArchSpec


def _lanes(word: int, apw: int, bits: int) -> list[int]:
    out = []
    for lane in range(apw):
        v = (word >> (lane * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def _run(arch: ArchSpec, store: bool, ext: int, sp: int, off: int, count: int, runs: int,
         wstride: int, sp_stride: int, scratch: dict, memory: list[int]) -> int:
    """One XFER against the models (changed in place); returns the cycles it was busy."""
    dma = ActivationDMA(arch)
    apw, lat, bw = dma.apw, arch.ext_latency, arch.ext_bandwidth
    words = math.ceil((off + count) / apw)
    busy = {"n": 0}

    async def bench(ctx):
        instr = dict(op=Op.XFER, store=int(store), ext=ext, words=words, sp=sp, off=off,
                     count=count, runs=runs, wstride=wstride, sp_stride=sp_stride)
        for k, v in instr.items():
            ctx.set(getattr(dma.cmd.instr, k), v)
        ctx.set(dma.cmd.go, 1)
        burst, rd_data, t = None, None, 0
        while t < 5000:
            # the memory's side of this cycle
            ready = burst is None
            ctx.set(dma.ext.req.ready, int(ready))
            present = take = False
            if burst is not None and not burst["write"]:
                i = burst["done"]
                present = t >= burst["t"] + lat + math.ceil((i + 1) / bw)
                ctx.set(dma.ext.resp.payload, memory[burst["addr"] + i] if present else 0)
            if burst is not None and burst["write"]:
                take = t >= burst["t"] + math.ceil((burst["done"] + 1) / bw)
            ctx.set(dma.ext.resp.valid, int(present))
            ctx.set(dma.ext.wdata.ready, int(take))
            if rd_data is not None:
                for lane in range(apw):
                    ctx.set(dma.act_rd.data[lane], rd_data[lane])
            # what the DMA does in it
            if t > 0:
                busy["n"] += ctx.get(dma.cmd.busy)
            req = ready and ctx.get(dma.ext.req.valid)
            if req:
                new = dict(t=t, addr=ctx.get(dma.ext.req.payload.addr),
                           words=ctx.get(dma.ext.req.payload.len),
                           write=bool(ctx.get(dma.ext.req.payload.write)), done=0)
            mask = ctx.get(dma.act_wr.mask)
            base = ctx.get(dma.act_wr.addr)
            for lane in range(apw):
                if mask >> lane & 1:
                    scratch[base + lane] = ctx.get(dma.act_wr.data[lane])
            took = take and ctx.get(dma.ext.wdata.valid)
            if took:
                d, k = ctx.get(dma.ext.wdata.payload.data), ctx.get(dma.ext.wdata.payload.mask)
                a = burst["addr"] + burst["done"]
                memory[a] = (memory[a] & ~k) | (d & k)
            reading = ctx.get(dma.act_rd.en)
            addrs = [ctx.get(dma.act_rd.addr[lane]) for lane in range(apw)]
            done = t > 0 and not ctx.get(dma.cmd.busy)
            await ctx.tick()
            ctx.set(dma.cmd.go, 0)
            if reading:
                rd_data = [scratch.get(a, 0) for a in addrs]
            if burst is not None and (present or took):
                burst["done"] += 1
                if burst["done"] == burst["words"]:
                    burst = None
            if req:
                burst = new
            t += 1
            if done:
                break

    sim = Simulator(dma)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return busy["n"]


@pytest.mark.parametrize("seed", range(12))
def test_loads_and_stores_move_exactly_their_elements(seed):
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([2, 4, 8]))
    in_bits = int(rng.choice([4, 8]))
    arch = ArchSpec(rows=rows, cols=4, in_bits=in_bits, w_bits=8, act_words=512,
                    ext_word_bits=int(rng.choice([16, 32, 64])),
                    ext_latency=int(rng.integers(0, 6)),
                    ext_bandwidth=float(rng.choice([1.0, 0.5, 1 / 3])))
    apw = timing.act_per_word(arch)
    runs = int(rng.choice([1, 1, 3]))
    off, count = int(rng.integers(0, apw)), int(rng.integers(1, 3 * apw + 2))
    words = math.ceil((off + count) / apw)
    wstride, sp_stride = words + int(rng.integers(0, 3)), apw * (words + int(rng.integers(0, 2)))
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    memory = [(int(rng.integers(0, 1 << 32)) | int(rng.integers(0, 1 << 32)) << 32)
              & ((1 << arch.ext_word_bits) - 1) for _ in range(64)]
    scratch = {a: int(rng.integers(lo, hi + 1)) for a in range(400)}
    ext, sp = int(rng.integers(0, 4)), apw * int(rng.integers(0, 8))
    # load: the transfer's elements of each run land in the scratchpad, nothing else moves
    before = dict(scratch)
    busy = _run(arch, False, ext, sp, off, count, runs, wstride, sp_stride, scratch, memory)
    want = dict(before)
    for r in range(runs):
        vals = [v for w in memory[ext + r * wstride:ext + r * wstride + words]
                for v in _lanes(w, apw, in_bits)]
        for e in range(off, off + count):
            want[sp + r * sp_stride + e] = vals[e]
    assert scratch == want
    assert busy == runs * (timing.XFER_REQUEST + arch.ext_latency
                           + math.ceil(words / arch.ext_bandwidth))
    # store: fresh scratchpad values go back; only the transfer's lanes of memory change
    for a in range(400):
        scratch[a] = int(rng.integers(lo, hi + 1))
    old = list(memory)
    busy = _run(arch, True, ext, sp, off, count, runs, wstride, sp_stride, scratch, memory)
    mask = (1 << in_bits) - 1
    want_mem = list(old)
    for r in range(runs):
        for e in range(off, off + count):
            w, lane = ext + r * wstride + e // apw, e % apw
            v = scratch[sp + r * sp_stride + e] & mask
            want_mem[w] = (want_mem[w] & ~(mask << (lane * in_bits))) | (v << (lane * in_bits))
    assert memory == want_mem
    assert busy == runs * (timing.XFER_REQUEST + math.ceil(words / arch.ext_bandwidth))
