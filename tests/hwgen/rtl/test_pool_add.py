"""Pooling and residual-add layers on the generated top (Amaranth simulation):
bit-exact against numpy references built from ``mapping.quant`` semantics (which
are checked against ``sim.golden``'s op implementations), and every layer's
cycle counter equal to ``mapping.timing`` (``pool_cycles``/``add_cycles``/
``layer_cycles``); multi-layer programs with a maxpool and a residual skip."""

from __future__ import annotations

import numpy as np
import pytest
from test_rtl_accelerator import random_input, random_layer, reference, run_accelerator

from hwgen.compiler.program import AddLayer, ComputeLayer, FlattenLayer, PoolLayer, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping import quant, timing
from mapping.arch import ArchSpec
from mapping.graph import Node
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping
from sim.golden import GoldenModel


def _arch(**kw) -> ArchSpec:
    base = dict(rows=2, cols=3, act_words=512, w_words=128, acc_words=128, ext_word_bits=16)
    base.update(kw)
    return ArchSpec(**base)


# ------------------------------------------------------------------ references
def pool_ref(x: np.ndarray, pl: PoolLayer, acc_bits: int = 32) -> np.ndarray:
    """NHWC pooling by explicit windows: max ignores padding, avg counts it as 0."""
    g = pl.geometry()
    x4 = np.asarray(x, dtype=np.int64).reshape(pl.N, pl.H, pl.W, pl.C)
    out = np.zeros((pl.N, g["P"], g["Q"], pl.C), dtype=np.int64)
    for n in range(pl.N):
        for p in range(g["P"]):
            for q in range(g["Q"]):
                vals = [x4[n, h, w] for i in range(g["kh"]) for j in range(g["kw"])
                        for h, w in [(p * g["sh"] - g["ph"] + i, q * g["sw"] - g["pw"] + j)]
                        if 0 <= h < pl.H and 0 <= w < pl.W]
                if pl.kind == "max":
                    out[n, p, q] = quant.clamp(np.max(vals, axis=0), pl.out_bits, pl.relu)
                else:
                    s = quant.wrap(np.sum(vals, axis=0), acc_bits)
                    out[n, p, q] = quant.requantize(s, pl.mult, pl.shift, pl.out_bits, pl.relu)
    return out.reshape(-1)


def golden_pool(x: np.ndarray, pl: PoolLayer) -> np.ndarray:
    """``sim.golden``'s maxpool2d/avgpool2d op (NCHW) on the same tensor, back to NHWC."""
    g = pl.geometry()
    qs = quant.QuantSpec(bits=pl.out_bits, scale=1.0, relu=pl.relu,
                         mult=np.array([pl.mult]), shift=np.array([pl.shift]))
    node = Node(f"{pl.kind}pool", f"{pl.kind}pool2d", out_shape=(pl.N, pl.C, g["P"], g["Q"]),
                attrs=dict(kernel=(g["kh"], g["kw"]), stride=(g["sh"], g["sw"]),
                           padding=(g["ph"], g["pw"])), quant=qs)
    xn = np.asarray(x, dtype=np.int64).reshape(pl.N, pl.H, pl.W, pl.C).transpose(0, 3, 1, 2)
    y = GoldenModel._op(object.__new__(GoldenModel), node, [xn])
    return y.transpose(0, 2, 3, 1).reshape(-1)


POOLS = [
    # (arch overrides, PoolLayer kwargs)
    (dict(dataflow="ws"), dict(kind="max", H=4, W=6, C=5, kernel=2)),
    (dict(dataflow="os", rows=3, cols=2), dict(kind="max", H=5, W=5, C=4, kernel=3, stride=2,
                                               padding=1, relu=True)),
    (dict(dataflow="ws"), dict(kind="avg", H=4, W=4, C=3, kernel=2, out_bits=6)),
    (dict(dataflow="os", rows=3, cols=2), dict(kind="avg", H=3, W=5, C=2, kernel=(3, 3),
                                               stride=1, padding=1, relu=True, N=2)),
]


def _pool_layer(kw: dict) -> PoolLayer:
    kw = dict(kw)
    if kw["kind"] == "avg":
        k = kw["kernel"] if isinstance(kw["kernel"], tuple) else (kw["kernel"],) * 2
        kw["mult"], kw["shift"] = quant.quantize_multiplier(1.0 / (k[0] * k[1]))
    return PoolLayer("pool", **kw)


@pytest.mark.parametrize("case", range(len(POOLS)))
def test_reference_matches_golden(case):
    pl = _pool_layer(POOLS[case][1])
    rng = np.random.default_rng(40 + case)
    for extremes in (False, True):
        x = random_input(rng, _arch(), LoopNest.gemm(1, 1, pl.in_elements), extremes=extremes)
        np.testing.assert_array_equal(pool_ref(x, pl), golden_pool(x, pl))


@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pool_layer(case):
    over, kw = POOLS[case]
    arch = _arch(**over)
    pl = _pool_layer(kw)
    prog = compile_program(arch, [pl])
    rng = np.random.default_rng(50 + case)
    x = random_input(rng, arch, LoopNest.gemm(1, 1, pl.in_elements), extremes=case % 2 == 1)
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    np.testing.assert_array_equal(out, pool_ref(x, pl))
    g = pl.geometry()
    predicted = timing.pool_cycles(pl.N * g["P"] * g["Q"], pl.C, g["kh"] * g["kw"], arch)
    assert layers == [predicted] == [prog.layers[0].predicted_cycles]


def _selector(name: str, e: int, half: int) -> ComputeLayer:
    """A GEMM copying half ``half`` of a 2e-element input exactly (x * 2**14 >> 14)."""
    w = np.zeros((2 * e, e), dtype=np.int64)
    w[np.arange(e) + half * e, np.arange(e)] = 1
    lm = LayerMapping(name, LoopNest.gemm(1, e, 2 * e), "ws", 1, e, 2 * e)
    return ComputeLayer(lm, w, np.zeros(e, dtype=np.int64), np.full(e, 1 << 14),
                        np.full(e, 14), src="input")


@pytest.mark.parametrize("relu", [False, True])
def test_add_layer_saturation(relu):
    """Two independent operands (copied out of the input by exact selector GEMMs),
    extreme values and multipliers that saturate both ends of the output range."""
    arch = _arch(dataflow="ws", rows=3, cols=3, w_words=256)
    e = 7
    ma, mb, sh = 3 << 12, 5 << 11, 13  # 1.5 and 1.25
    add = AddLayer("add", (1, 1, e), ma, mb, sh, out_bits=8, relu=relu, src="a", src2="b")
    prog = compile_program(arch, [_selector("a", e, 0), _selector("b", e, 1), add])
    rng = np.random.default_rng(60 + relu)
    x = rng.choice(np.array([-128, 127, 0, -1, 1, 100, -100]), size=2 * e)
    x[[0, e, 1, e + 1, 2, e + 2]] = [127, 127, -128, -128, 127, -128]  # both ends, mixed
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    ref = quant.requantize_add(x[:e], x[e:], ma, mb, sh, 8, relu)
    plain = [min(max((int(a) * ma + int(b) * mb + (1 << (sh - 1))) >> sh,
                     0 if relu else -128), 127) for a, b in zip(x[:e], x[e:], strict=True)]
    assert list(ref) == plain
    np.testing.assert_array_equal(out, ref)
    assert 127 in ref and (0 if relu else -128) in ref
    assert layers[2] == timing.add_cycles(e, arch) == prog.layers[2].predicted_cycles


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_conv_maxpool_linear(dataflow):
    """conv -> maxpool 2x2/2 -> flatten -> linear (cnn-digits shape, scaled down)."""
    arch = _arch(dataflow=dataflow, act_words=1024, w_words=256)
    rng = np.random.default_rng(70)
    conv = LoopNest.conv(1, 4, 2, 4, 6, 3, 3, padding=1)
    l1 = random_layer(rng, arch, conv, (12, 4, 18), ("n", "m", "k"), relu=True)
    pool = PoolLayer("pool", "max", 4, 6, 4, 2, relu=True)
    lin = LoopNest.gemm(1, 5, 24)
    w_torch = rng.integers(-128, 128, size=(5, 4, 2, 3))  # linear over the NCHW flatten
    l3 = random_layer(rng, arch, lin, (1, 5, 24), ("n", "m", "k"))
    l3 = ComputeLayer(LayerMapping("fc", lin, dataflow, 1, 5, 12), w_torch.reshape(5, -1).T,
                      l3.bias, l3.mult, l3.shift, out_bits=8)
    prog = compile_program(arch, [l1, pool, FlattenLayer(), l3])
    x = random_input(rng, arch, conv)
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    y1 = reference(l1, arch, x)
    y2 = pool_ref(y1, pool).reshape(2, 3, 4)
    np.testing.assert_array_equal(out, reference(l3, arch, y2.transpose(2, 0, 1).reshape(-1)))
    assert layers == [timing.layer_cycles(l1.mapping, arch).cycles,
                      timing.pool_cycles(6, 4, 4, arch),
                      timing.layer_cycles(l3.mapping, arch).cycles]
    assert layers == [li.predicted_cycles for li in prog.layers]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_residual_block(dataflow):
    """conv-ReLU -> conv -> add(skip = the block input) -> ReLU: the skip tensor stays
    live in the scratchpad across both convolutions."""
    arch = _arch(dataflow=dataflow, act_words=256, w_words=256)
    rng = np.random.default_rng(80)
    nest = LoopNest.conv(1, 3, 3, 4, 4, 3, 3, padding=1)
    c1 = random_layer(rng, arch, nest, (16, 3, 27), ("n", "m", "k"), relu=True)
    c2 = random_layer(rng, arch, nest, (8, 3, 14), ("m", "n", "k"))
    c1 = ComputeLayer(LayerMapping("conv1", nest, dataflow, 16, 3, 27), c1.weights, c1.bias,
                      c1.mult, c1.shift, relu=True)
    c2 = ComputeLayer(LayerMapping("conv2", nest, dataflow, 8, 3, 14), c2.weights, c2.bias,
                      c2.mult, c2.shift)
    ma, mb, sh = quant.add_multipliers(0.02, 0.03, 0.04)
    add = AddLayer("add", (4, 4, 3), ma, mb, sh, relu=True, src="conv2", src2="input")
    prog = compile_program(arch, [c1, c2, add])
    base = {n: b for n, (b, _) in prog.tensors.items()}
    assert base["conv2"] not in range(base["input"], base["input"] + 48)
    x = random_input(rng, arch, nest)
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    y2 = reference(c2, arch, reference(c1, arch, x))
    np.testing.assert_array_equal(out, quant.requantize_add(y2, x, ma, mb, sh, 8, True))
    assert layers == [timing.layer_cycles(c1.mapping, arch).cycles,
                      timing.layer_cycles(c2.mapping, arch).cycles,
                      timing.add_cycles(48, arch)]
