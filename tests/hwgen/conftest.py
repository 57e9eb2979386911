"""Shared Amaranth-simulation helpers for the hardware tests.

Use the ``simulate`` fixture::

    def test_x(simulate):
        dut = Thing()

        async def bench(ctx):
            ctx.set(dut.a, 1)
            await ctx.tick()
            assert ctx.get(dut.b) == 2

        simulate(dut, bench)

Helpers for signed vectors (``wrap``/``sat``) are plain functions of the
``sim_helpers`` fixture so that test modules need no import path set-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

CLOCK_PERIOD = 1e-6

# rtl/test_rtl_accelerator.py's random-layer bench (run_accelerator, reference, ...) is shared
# by the compiler and build tests
sys.path.insert(0, str(Path(__file__).parent / "rtl"))


def run_simulation(dut, *testbenches, processes=(), vcd: str | None = None,
                   deadline_cycles: int | None = None) -> None:
    """Simulate ``dut`` with a 1 MHz clock on its ``sync`` domain.

    ``testbenches`` / ``processes`` are async functions ``f(ctx)``; the run ends
    when every testbench returns. ``deadline_cycles`` bounds the run (a hung
    testbench then fails instead of hanging). Set ``HWGEN_VCD=1`` to dump
    ``<name>.vcd`` files into the current directory, or pass ``vcd``.
    """
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for tb in testbenches:
        sim.add_testbench(tb)
    for p in processes:
        sim.add_process(p)
    if vcd is None and os.environ.get("HWGEN_VCD"):
        vcd = f"{type(dut).__name__}.vcd"

    def _run():
        if deadline_cycles is None:
            sim.run()
        else:
            sim.run_until(deadline_cycles * CLOCK_PERIOD)

    if vcd:
        with sim.write_vcd(vcd):
            _run()
    else:
        _run()


def wrap(x, bits: int):
    """Two's complement wrap of (numpy int64 or Python int) ``x`` to ``bits`` bits."""
    if isinstance(x, (int, np.integer)):
        x = int(x)
        return ((x + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))
    x = np.asarray(x, dtype=np.int64)
    half = np.int64(1) << np.int64(bits - 1)
    mask = (np.int64(1) << np.int64(bits)) - 1
    return ((x + half) & mask) - half


def rand_signed(rng: np.random.Generator, bits: int, shape, extremes: bool = False):
    """Random signed ``bits``-wide integers; ``extremes`` draws only min/max/0/-1/1."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if extremes:
        return rng.choice(np.array([lo, hi, 0, -1, 1], dtype=np.int64), size=shape)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)


@pytest.fixture
def simulate():
    """The :func:`run_simulation` function."""
    return run_simulation


@pytest.fixture
def sim_helpers():
    """Namespace with ``wrap``, ``rand_signed`` and ``run_simulation``."""
    return SimpleNamespace(wrap=wrap, rand_signed=rand_signed, run_simulation=run_simulation)
