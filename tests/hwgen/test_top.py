"""End-to-end: single GEMM / conv layers on the generated top (Amaranth simulation)
against a numpy reference built from ``mapping.quant``, and the per-layer cycle
counter against ``mapping.timing.layer_cycles``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen.program import ComputeLayer, compile_program
from hwgen.top import Accelerator
from mapping import quant, timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


# ------------------------------------------------------------------ references
def im2col(nest: LoopNest, x: np.ndarray) -> np.ndarray:
    """The virtual im2col matrix (gemm_m, gemm_k) of input ``x`` (NHWC or (M, K))."""
    if nest.kind == "gemm":
        return x.reshape(nest.gemm_m, nest.gemm_k)
    x4 = x.reshape(nest.N, nest.H, nest.W, nest.C)
    out = np.zeros((nest.gemm_m, nest.gemm_k), dtype=np.int64)
    for mm in range(nest.gemm_m):
        for kk in range(nest.gemm_k):
            idx = nest.im2col_index(mm, kk)
            if idx is not None:
                n, c, h, w = idx
                out[mm, kk] = x4[n, h, w, c]
    return out


def reference(layer: ComputeLayer, arch: ArchSpec, x: np.ndarray) -> np.ndarray:
    nest = layer.mapping.nest
    acc = quant.wrap(im2col(nest, x) @ layer.weights, arch.acc_bits)
    acc = quant.wrap(acc + layer.bias[None, :], arch.acc_bits)
    return quant.requantize(acc, layer.mult[None, :], layer.shift[None, :], layer.out_bits,
                            layer.relu).reshape(-1)


def random_layer(rng, arch: ArchSpec, nest: LoopNest, tiles, order, relu=False, out_bits=None,
                 extremes=False) -> ComputeLayer:
    lm = LayerMapping("L0", nest, arch.dataflow, *tiles, order=order)
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    if extremes:
        w = rng.choice(np.array([lo, hi]), size=(nest.gemm_k, nest.gemm_n))
    else:
        w = rng.integers(lo, hi + 1, size=(nest.gemm_k, nest.gemm_n))
    blim = 1 << min(10, arch.acc_bits - 2)
    bias = rng.integers(-blim, blim, size=nest.gemm_n)
    mult = rng.integers(1 << 14, 1 << 15, size=nest.gemm_n)
    shift = rng.integers(8, 16, size=nest.gemm_n)
    return ComputeLayer(lm, w, bias, mult, shift, out_bits=out_bits or arch.in_bits, relu=relu)


def random_input(rng, arch, nest, extremes=False):
    n = nest.gemm_m * nest.gemm_k if nest.kind == "gemm" else nest.N * nest.H * nest.W * nest.C
    lo, hi = -(1 << (arch.in_bits - 1)), (1 << (arch.in_bits - 1)) - 1
    if extremes:
        return rng.choice(np.array([lo, hi]), size=n)
    return rng.integers(lo, hi + 1, size=n)


# ------------------------------------------------------------------ simulation
def run_accelerator(acc: Accelerator, x: np.ndarray, max_cycles: int = 200_000):
    """Stream ``x`` in, run, stream the output out. External weight store: a
    memory model with ``ext_latency``/``ext_bandwidth`` exactly as docs/timing.md."""
    arch = acc.arch
    image = acc.weights
    result = {"out": [], "layers": [], "run": None}

    async def bench(ctx):
        sched: dict[int, int] = {}
        idx, cyc = 0, 0
        ctx.set(acc.out.ready, 1)
        ctx.set(acc.start, 1)
        ext = getattr(acc, "ext", None)
        if ext is not None:
            ctx.set(ext.req.ready, 1)
        while True:
            if ext is not None:
                if cyc in sched:
                    ctx.set(ext.resp.valid, 1)
                    ctx.set(ext.resp.payload, sched.pop(cyc))
                else:
                    ctx.set(ext.resp.valid, 0)
                if ctx.get(ext.req.valid):
                    addr, ln = ctx.get(ext.req.payload.addr), ctx.get(ext.req.payload.len)
                    for i in range(ln):
                        at = cyc + arch.ext_latency + math.ceil((i + 1) / arch.ext_bandwidth)
                        sched[at] = image[addr + i]
            if idx < len(x):
                ctx.set(acc.inp.valid, 1)
                ctx.set(acc.inp.payload, int(x[idx]))
                if ctx.get(acc.inp.ready):
                    idx += 1
            else:
                ctx.set(acc.inp.valid, 0)
            if ctx.get(acc.out.valid):
                result["out"].append(ctx.get(acc.out.payload))
            if cyc > 0 and ctx.get(acc.done):
                break
            await ctx.tick()
            ctx.set(acc.start, 0)
            cyc += 1
            assert cyc < max_cycles, "accelerator did not finish"
        result["run"] = ctx.get(acc.run_cycles)
        for i in range(acc.program.compute_layers):
            ctx.set(acc.layer_sel, i)
            result["layers"].append(ctx.get(acc.layer_count))

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(result["out"], dtype=np.int64), result["layers"], result["run"]
