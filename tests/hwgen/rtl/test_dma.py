"""Weight DMA with the baked ROM and with a modelled external memory: data and burst cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hwgen.compiler.isa import pack_words
from hwgen.rtl.dma import WeightDMA, WeightROM
from mapping import timing
from mapping.arch import ArchSpec


def _unpack(word, wb, wpw):
    vals = [(word >> (i * wb)) & ((1 << wb) - 1) for i in range(wpw)]
    return [v - (1 << wb) if v >> (wb - 1) else v for v in vals]


def test_pack_words_round_trip():
    rng = np.random.default_rng(0)
    vals = list(rng.integers(-8, 8, size=11))
    words = pack_words(vals, 4, 3)
    assert len(words) == 4
    flat = [v for w in words for v in _unpack(w, 4, 3)]
    assert flat[:11] == vals and flat[11:] == [0]


def _run_burst(arch, image, src, count, ext_model):
    """Start one burst; return (writes {addr: value}, cycles from start to last write)."""
    dma = WeightDMA(arch)
    m = Module()
    m.submodules.dma = dma
    if not ext_model:
        m.submodules.rom = rom = WeightROM(arch, image)
        wiring.connect(m, dma.ext, rom.port)
    wpw = arch.weights_per_ext_word
    words = math.ceil(count / wpw)
    got, last = {}, {}

    async def bench(ctx):
        ctx.set(dma.cmd.start, 1)
        ctx.set(dma.cmd.src, src)
        ctx.set(dma.cmd.words, words)
        ctx.set(dma.cmd.count, count)
        ctx.set(dma.cmd.dst, 5)
        sched, cyc = {}, 0
        if ext_model:
            ctx.set(dma.ext.req.ready, 1)
        while cyc < 500:
            if ext_model:
                ctx.set(dma.ext.resp.valid, int(cyc in sched))
                ctx.set(dma.ext.resp.payload, sched.pop(cyc, 0))
                if ctx.get(dma.ext.req.valid):
                    for i in range(ctx.get(dma.ext.req.payload.len)):
                        at = cyc + arch.ext_latency + math.ceil((i + 1) / arch.ext_bandwidth)
                        sched[at] = image[ctx.get(dma.ext.req.payload.addr) + i]
            mask = ctx.get(dma.wr.mask)
            base = ctx.get(dma.wr.addr)
            for lane in range(wpw):
                if mask >> lane & 1:
                    got[base + lane] = ctx.get(dma.wr.data[lane])
                    last["cyc"] = cyc
            await ctx.tick()
            ctx.set(dma.cmd.start, 0)
            cyc += 1
            if cyc > 2 and not ctx.get(dma.cmd.busy):
                break
        last["busy_end"] = cyc

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert last["busy_end"] == last["cyc"] + 1  # busy drops right after the last write
    return got, last["cyc"] + 1


@pytest.mark.parametrize("store,lat,bw,wb,ewb,count", [
    ("rom", 0, 1.0, 8, 64, 37), ("rom", 0, 1.0, 3, 16, 10), ("external", 0, 1.0, 8, 32, 9),
    ("external", 6, 0.5, 5, 16, 20), ("external", 3, 0.75, 8, 24, 31), ("external", 1, 0.3, 4, 8, 7),
])
def test_burst_data_and_cycles(store, lat, bw, wb, ewb, count):
    arch = ArchSpec(rows=2, cols=2, in_bits=4, w_bits=wb, acc_bits=16, w_words=128,
                    ext_word_bits=ewb, weight_store=store, ext_latency=lat, ext_bandwidth=bw)
    rng = np.random.default_rng(count)
    wpw = arch.weights_per_ext_word
    vals = list(rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=count))
    image = [7] * 3 + pack_words(vals, wb, wpw) + [9]
    got, cycles = _run_burst(arch, image, 3, count, store == "external")
    assert got == {5 + i: v for i, v in enumerate(vals)}
    assert cycles == timing.dma_cycles(math.ceil(count / wpw), arch)
