"""One PE vs a plain-Python model of a signed MAC with wrap-around accumulation."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from hwgen.rtl.pe import PE


def widths(rng):
    in_bits, w_bits = int(rng.integers(2, 17)), int(rng.integers(2, 17))
    return in_bits, w_bits, int(rng.integers(in_bits + w_bits, 49))


@pytest.mark.parametrize("seed", range(5))
def test_ws_pe_mac_and_switch(sim_helpers, seed):
    """psum_out = wrap(psum_in + a * w) with w the active weight, or the shadow one
    (which becomes active) in a cycle with first_in; shadow writes take effect next cycle."""
    h = sim_helpers
    rng = np.random.default_rng(seed)
    ib, wb, ab = widths(rng)
    dut = PE(ib, wb, ab, "ws")
    n = 40
    a = h.rand_signed(rng, ib, n, extremes=seed % 2 == 1)
    w = h.rand_signed(rng, wb, n, extremes=seed % 2 == 1)
    p = h.rand_signed(rng, ab, n, extremes=seed % 2 == 1)
    first = rng.random(n) < 0.3
    load = rng.random(n) < 0.4

    async def bench(ctx):
        active = shadow = 0
        for t in range(n):
            for name, v in (("a_in", a[t]), ("w_data", w[t]), ("psum_in", p[t]),
                            ("first_in", first[t]), ("w_load", load[t])):
                ctx.set(getattr(dut, name), int(v))
            await ctx.tick()
            use = shadow if first[t] else active
            assert ctx.get(dut.psum_out) == h.wrap(int(p[t]) + int(a[t]) * use, ab)
            assert ctx.get(dut.a_out) == a[t] and ctx.get(dut.first_out) == first[t]
            if first[t]:
                active = shadow
            if load[t]:
                shadow = int(w[t])

    h.run_simulation(dut, bench)


@pytest.mark.parametrize("seed", range(5))
def test_os_pe_accumulates_with_wrap(sim_helpers, seed):
    h = sim_helpers
    rng = np.random.default_rng(10 + seed)
    ib, wb, ab = widths(rng)
    if seed == 0:
        ib, wb, ab = 8, 8, 16  # tight accumulator: wraps after a few extreme products
    dut = PE(ib, wb, ab, "os")
    n = 40
    a = h.rand_signed(rng, ib, n, extremes=seed % 2 == 0)
    w = h.rand_signed(rng, wb, n, extremes=seed % 2 == 0)
    first = rng.random(n) < 0.2
    last = rng.random(n) < 0.2

    async def bench(ctx):
        acc = 0
        for t in range(n):
            for name, v in (("a_in", a[t]), ("w_in", w[t]), ("first_in", first[t]),
                            ("last_in", last[t])):
                ctx.set(getattr(dut, name), int(v))
            await ctx.tick()
            prod = int(a[t]) * int(w[t])
            acc = h.wrap(prod if first[t] else acc + prod, ab)
            assert ctx.get(dut.acc) == acc
            assert ctx.get(dut.a_out) == a[t] and ctx.get(dut.w_out) == w[t]
            assert ctx.get(dut.first_out) == first[t] and ctx.get(dut.last_out) == last[t]

    h.run_simulation(dut, bench)


def test_register_bits_and_elaboration():
    assert PE.register_bits(8, 8, 32, "ws") == 8 + 1 + 32 + 16
    assert PE.register_bits(8, 8, 32, "os") == 8 + 8 + 2 + 32
    assert "psum_out" in rtlil.convert(PE(16, 16, 48, "ws"))
    assert "last_out" in rtlil.convert(PE(16, 16, 48, "os"))


@pytest.mark.parametrize("args,match", [
    ((1, 8, 32, "ws"), "in_bits"),
    ((8, 17, 32, "ws"), "w_bits"),
    ((8, 8, 15, "ws"), "acc_bits"),
    ((8, 8, 49, "os"), "acc_bits"),
    ((8, 8, 32, "is"), "dataflow"),
])
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        PE(*args)
