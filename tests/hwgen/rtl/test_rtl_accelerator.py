"""End-to-end: single GEMM / conv layers on the generated top (Amaranth simulation)
against a numpy reference built from ``mapping.quant``, and the per-layer cycle
counter against ``mapping.timing.layer_cycles``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.compiler.program import ComputeLayer, compile_program
from hwgen.rtl.accelerator import Accelerator
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


# ------------------------------------------------------------------ tests
def _arch(**kw):
    base = dict(rows=2, cols=3, act_words=512, w_words=128, acc_words=128, ext_word_bits=16)
    base.update(kw)
    return ArchSpec(**base)


CASES = [
    # (arch overrides, nest, tiles, order)
    (dict(dataflow="ws"), LoopNest.gemm(7, 5, 9), (3, 4, 5), ("n", "m", "k")),
    (dict(dataflow="os"), LoopNest.gemm(7, 5, 9), (3, 4, 5), ("m", "k", "n")),
    (dict(dataflow="ws", double_buffer=False), LoopNest.gemm(6, 7, 4), (6, 2, 3), ("k", "n", "m")),
    (dict(dataflow="os", double_buffer=False, weight_store="external", ext_latency=3,
          ext_bandwidth=0.5), LoopNest.gemm(5, 4, 6), (2, 4, 6), ("n", "k", "m")),
    (dict(dataflow="ws", weight_store="external", ext_latency=5, ext_bandwidth=0.75),
     LoopNest.conv(1, 3, 2, 5, 5, 3, 3, stride=2, padding=1), (4, 3, 7), ("m", "n", "k")),
    (dict(dataflow="os", rows=3, cols=2),
     LoopNest.conv(2, 3, 2, 4, 5, 3, 3, stride=1, padding=1), (7, 2, 10), ("n", "m", "k")),
    (dict(dataflow="ws", rows=3, cols=1, double_buffer=False, in_bits=6, w_bits=5, acc_bits=12),
     LoopNest.conv(1, 2, 3, 4, 4, 2, 2, stride=1, padding=0, dilation=2), (4, 1, 5),
     ("k", "m", "n")),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_single_layer_bit_exact_and_cycle_exact(case):
    over, nest, tiles, order = CASES[case]
    arch = _arch(**over)
    nest = LoopNest(**{**nest.__dict__, "in_bits": arch.in_bits, "w_bits": arch.w_bits})
    rng = np.random.default_rng(100 + case)
    layer = random_layer(rng, arch, nest, tiles, order, relu=case % 2 == 1,
                         out_bits=arch.in_bits - case % 3)
    acc = Accelerator(arch, compile_program(arch, [layer]))
    x = random_input(rng, arch, nest)
    out, layers, run = run_accelerator(acc, x)
    np.testing.assert_array_equal(out, reference(layer, arch, x))
    assert layers[0] == timing.layer_cycles(layer.mapping, arch).cycles
    assert run > layers[0] + len(x)


# per-axis geometry: (arch overrides, LoopNest.conv arguments, tiles, order)
PER_AXIS = [
    # Conv1d: kernel 1 x 3 on a height-1 input, stride (1, 2), padding (0, 1), dilation (1, 2)
    (dict(dataflow="ws"), dict(N=1, K=3, C=2, H=1, W=11, R=1, S=3, stride=(1, 2),
                               padding=(0, 1), dilation=(1, 2)), (3, 3, 4), ("m", "n", "k")),
    (dict(dataflow="os", rows=3, cols=2), dict(N=2, K=3, C=2, H=1, W=11, R=1, S=3,
                                               stride=(1, 2), padding=(0, 1), dilation=(1, 2)),
     (5, 2, 6), ("n", "m", "k")),
    # a 3x1 kernel, stride (2, 1), padding (1, 0)
    (dict(dataflow="ws", double_buffer=False), dict(N=1, K=2, C=3, H=7, W=4, R=3, S=1,
                                                    stride=(2, 1), padding=(1, 0)),
     (7, 2, 5), ("k", "m", "n")),
    (dict(dataflow="os", weight_store="external", ext_latency=2, ext_bandwidth=0.5),
     dict(N=1, K=3, C=2, H=7, W=4, R=3, S=1, stride=(2, 1), padding=(1, 0)), (16, 3, 6),
     ("m", "k", "n")),
    # every axis different: 2x3 kernel, stride (1, 2), padding (2, 0), dilation (2, 1)
    (dict(dataflow="ws", rows=3, cols=2), dict(N=1, K=2, C=2, H=5, W=7, R=2, S=3,
                                               stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
     (6, 2, 7), ("n", "k", "m")),
]


@pytest.mark.parametrize("case", range(len(PER_AXIS)))
def test_per_axis_conv_bit_exact_vs_torch(case):
    """Non-square convolutions on the generated top against torch's ``F.conv2d`` with the
    same per-axis stride / padding / dilation (independent of LoopNest.im2col_index)."""
    torch = pytest.importorskip("torch")
    over, conv, tiles, order = PER_AXIS[case]
    arch = _arch(**over)
    nest = LoopNest.conv(**conv, in_bits=arch.in_bits, w_bits=arch.w_bits)
    rng = np.random.default_rng(300 + case)
    w4 = rng.integers(-128, 128, size=(nest.K, nest.C, nest.R, nest.S))  # torch layout
    base = random_layer(rng, arch, nest, tiles, order, relu=case % 2 == 0)
    wg = w4.transpose(2, 3, 1, 0).reshape(nest.gemm_k, nest.gemm_n)  # rows (r, s, c)
    layer = ComputeLayer(base.mapping, wg, base.bias, base.mult, base.shift,
                         out_bits=base.out_bits, relu=base.relu)
    x = random_input(rng, arch, nest)
    out, layers, _ = run_accelerator(Accelerator(arch, compile_program(arch, [layer])), x)
    xn = x.reshape(nest.N, nest.H, nest.W, nest.C).transpose(0, 3, 1, 2)
    y = torch.nn.functional.conv2d(torch.from_numpy(xn).double(), torch.from_numpy(w4).double(),
                                   stride=conv.get("stride", 1), padding=conv.get("padding", 0),
                                   dilation=conv.get("dilation", 1))
    acc = y.numpy().astype(np.int64).transpose(0, 2, 3, 1).reshape(-1, nest.K)  # NHWC rows
    acc = quant.wrap(quant.wrap(acc, arch.acc_bits) + layer.bias[None, :], arch.acc_bits)
    ref = quant.requantize(acc, layer.mult[None, :], layer.shift[None, :], layer.out_bits,
                           layer.relu).reshape(-1)
    np.testing.assert_array_equal(out, ref)
    assert layers[0] == timing.layer_cycles(layer.mapping, arch).cycles


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_saturation_extremes(dataflow):
    """Extreme operands: accumulator wrap-around (small acc_bits) and output saturation."""
    arch = _arch(dataflow=dataflow, in_bits=8, w_bits=8, acc_bits=16)
    nest = LoopNest.gemm(4, 4, 8)
    rng = np.random.default_rng(7)
    layer = random_layer(rng, arch, nest, (4, 4, 8), ("m", "n", "k"), extremes=True)
    acc = Accelerator(arch, compile_program(arch, [layer]))
    x = random_input(rng, arch, nest, extremes=True)
    out, layers, _ = run_accelerator(acc, x)
    ref = reference(layer, arch, x)
    np.testing.assert_array_equal(out, ref)
    assert set(ref) & {-128, 127}
    assert layers[0] == timing.layer_cycles(layer.mapping, arch).cycles


def test_two_layers_with_flatten():
    """conv -> flatten -> linear in one program: the linear consumes NHWC directly."""
    from hwgen.compiler.program import FlattenLayer

    arch = _arch(dataflow="ws", act_words=1024, w_words=256)
    rng = np.random.default_rng(3)
    conv = LoopNest.conv(1, 3, 2, 4, 4, 3, 3, padding=1)
    l1 = random_layer(rng, arch, conv, (16, 3, 18), ("n", "m", "k"))
    lin = LoopNest.gemm(1, 5, 48)
    w_torch = rng.integers(-128, 128, size=(5, 3, 4, 4))  # linear over NCHW flatten
    l2 = random_layer(rng, arch, lin, (1, 5, 24), ("n", "m", "k"))
    l2 = ComputeLayer(LayerMapping("L1", lin, "ws", 1, 5, 24), w_torch.reshape(5, -1).T,
                      l2.bias, l2.mult, l2.shift, out_bits=8)
    prog = compile_program(arch, [l1, FlattenLayer(), l2])
    x = random_input(rng, arch, conv)
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    y1 = reference(l1, arch, x).reshape(4, 4, 3)  # NHWC
    ref = reference(l2, arch, y1.transpose(2, 0, 1).reshape(-1))  # torch flatten (C, H, W)
    np.testing.assert_array_equal(out, ref)
    assert layers == [timing.layer_cycles(l1.mapping, arch).cycles,
                      timing.layer_cycles(l2.mapping, arch).cycles]


def test_generation_errors():
    from hwgen.rtl.accelerator import GenerationError

    arch = _arch()
    rng = np.random.default_rng(1)
    layer = random_layer(rng, arch, LoopNest.gemm(4, 4, 4), (4, 4, 4), ("m", "n", "k"))
    prog = compile_program(arch, [layer])
    with pytest.raises(GenerationError, match="ROM budget"):
        Accelerator(arch, prog, rom_budget_bits=8)
    with pytest.raises(GenerationError, match="different ArchSpec"):
        Accelerator(arch.replace(cols=2), prog)
