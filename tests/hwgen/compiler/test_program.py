"""Program encoding and compilation: fields, weight image, steps, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwgen.compiler.buffers import Buffer, allocate
from hwgen.compiler.isa import pack_words
from hwgen.compiler.program import (
    OP_END,
    OP_LAYER,
    OP_STEP,
    AddLayer,
    ComputeLayer,
    FlattenLayer,
    PoolLayer,
    ProgramError,
    compile_program,
    decode,
    encode,
    layer_fields,
    step_fields,
)
from mapping import timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping

ARCH = ArchSpec(rows=2, cols=3, act_words=512, w_words=128, acc_words=128, ext_word_bits=16)


def _layer(nest, tiles, order=("n", "m", "k"), arch=ARCH, seed=0, **kw):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(nest.gemm_k, nest.gemm_n))
    n = nest.gemm_n
    args = dict(weights=w, bias=rng.integers(-100, 100, n), mult=np.full(n, 1 << 14),
                shift=np.full(n, 10))
    args.update(kw)
    return ComputeLayer(LayerMapping("L", nest, arch.dataflow, *tiles, order=order), **args)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    for fields in (layer_fields(ARCH), step_fields(ARCH)):
        vals = {}
        for name, width, sgn in fields:
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sgn else (0, (1 << width) - 1)
            vals[name] = int(rng.integers(lo, hi + 1))
        assert decode(fields, encode(fields, vals, "x")) == vals
    with pytest.raises(ProgramError, match="field op = 9 does not fit 3 bits"):
        encode(layer_fields(ARCH), {"op": 9}, "x")


@pytest.mark.parametrize("double", [True, False])
def test_steps_and_weight_image(double):
    arch = ARCH.replace(double_buffer=double)
    nest = LoopNest.gemm(5, 7, 9)
    layer = _layer(nest, (3, 4, 5), ("m", "n", "k"), arch=arch)
    prog = compile_program(arch, [layer])
    ops = [w & 3 for w in prog.instructions]
    tiles = list(timing.iter_tiles(layer.mapping))
    assert ops[0] == OP_LAYER and ops[-1] == OP_END
    assert ops[1:-1] == [OP_STEP] * (len(tiles) + int(double))
    steps = [decode(step_fields(arch), w) for w in prog.instructions[1:-1]]
    assert [s["last"] for s in steps] == [0] * (len(steps) - 1) + [1]
    assert sum(s["tile_en"] for s in steps) == len(tiles)
    assert sum(s["dma_en"] for s in steps) == sum(t.load_weights for t in tiles)
    wpw = arch.weights_per_ext_word
    for s in steps:  # every burst reads the row-major weight tile it names
        if s["dma_en"]:
            blk = prog.weight_image[s["dma_src"]:s["dma_src"] + s["dma_words"]]
            assert s["dma_words"] == math.ceil(s["dma_count"] / wpw)
            assert any(blk == pack_words(list(layer.weights[k0:k0 + t.k, n0:n0 + t.n].reshape(-1)),
                                         arch.w_bits, wpw)
                       for t in tiles for k0, n0 in [(t.ki * 5, t.ni * 4)])
    assert prog.layers[0].predicted_cycles == timing.layer_cycles(layer.mapping, arch).cycles
    assert prog.input_count == 45 and prog.output_count == 35


@pytest.mark.parametrize("geo", [
    dict(H=5, W=4, R=3, S=3, stride=2, padding=1),
    # per-axis: Conv1d (1 x 3 on height 1), a 3x1 kernel, every axis different
    dict(H=1, W=9, R=1, S=3, stride=(1, 2), padding=(0, 1), dilation=(1, 2)),
    dict(H=6, W=4, R=3, S=1, stride=(2, 1), padding=(1, 0)),
    dict(H=7, W=5, R=2, S=3, stride=(3, 1), padding=(0, 2), dilation=(2, 1)),
])
def test_conv_tile_starts_follow_im2col(geo):
    """The compiled start address of each tile is the im2col address of its first element,
    and the LAYER word carries the per-axis strides, dilations and width padding."""
    nest = LoopNest.conv(2, 3, 2, **geo)
    tk = min(7, nest.gemm_k - 1)
    layer = _layer(nest, (3, 3, tk), ("m", "k", "n"))
    prog = compile_program(ARCH, [layer])
    hdr = decode(layer_fields(ARCH), prog.instructions[0])
    assert (hdr["sh"], hdr["sw"], hdr["dh"], hdr["dw"], hdr["pw"]) == (
        nest.stride_h, nest.stride_w, nest.dil_h, nest.dil_w, nest.pad_w)
    H, W, C = geo["H"], geo["W"], 2
    for word, t in zip(prog.instructions[2:-1],
                       list(timing.iter_tiles(layer.mapping)), strict=False):
        s = decode(step_fields(ARCH), word)
        m0, k0 = t.mi * 3, t.ki * tk
        idx = nest.im2col_index(m0, k0)
        h, w = s["hp0"] + s["hoff0"], s["wq0"] + s["woff0"]
        if idx is None:
            assert not (0 <= h < H and 0 <= w < W)
        else:
            n, c, hh, ww = idx
            assert (h, w) == (hh, ww)
            assert s["pix0"] + s["koff0"] == ((n * H + hh) * W + ww) * C + c


@pytest.mark.parametrize("bad,match", [
    (dict(tiles=(5, 7, 9)), "exceeds w_words"),
    (dict(weights=np.full((9, 7), 300)), "outside the signed 8-bit range"),
    (dict(weights=np.zeros((7, 9))), "GEMM view needs"),
    (dict(out_bits=9), "out_bits=9"),
    (dict(shift=np.zeros(7, dtype=int)), "shift values"),
    (dict(mult=np.full(7, 1 << 15)), "mult values"),
])
def test_errors(bad, match):
    nest = LoopNest.gemm(5, 7, 9)
    tiles = bad.pop("tiles", (3, 4, 5))
    arch = ARCH.replace(w_words=64)
    with pytest.raises(ProgramError, match=match):
        compile_program(arch, [_layer(nest, tiles, arch=arch, **bad)])


def test_activation_capacity_and_layer_types():
    nest = LoopNest.gemm(30, 10, 10)
    arch = ARCH.replace(act_words=500)  # 300 in + 300 out: runs in row bands (spilled)
    assert compile_program(arch, [_layer(nest, (4, 4, 4), arch=arch)]).spilled
    fits = ARCH.replace(act_words=600)
    assert not compile_program(fits, [_layer(nest, (4, 4, 4), arch=fits)]).spilled
    arch = ARCH.replace(act_words=20)  # one row: 10 in + 10 out + word alignment slack
    with pytest.raises(ProgramError, match="cannot hold one output row"):
        compile_program(arch, [_layer(nest, (4, 4, 4), arch=arch)])
    with pytest.raises(ProgramError, match="at least one compute layer"):
        compile_program(ARCH, [FlattenLayer()])
    with pytest.raises(ProgramError, match="not a ComputeLayer"):
        compile_program(ARCH, ["relu"])


# ------------------------------------------------------------ named tensors
def _conv(name, arch=ARCH, **kw):
    nest = LoopNest.conv(1, 3, 3, 4, 4, 3, 3, padding=1)
    lm = LayerMapping(name, nest, arch.dataflow, 16, 3, 18, order=("n", "m", "k"))
    rng = np.random.default_rng(0)
    return ComputeLayer(lm, rng.integers(-8, 8, size=(27, 3)), np.zeros(3, dtype=int),
                        np.full(3, 1 << 14), np.full(3, 10), **kw)


def _live_ranges(layers_src_dst, output):
    """Independent live ranges: tensor -> (first writer index, last reader index)."""
    rng = {"input": [-1, -1]}
    for i, (srcs, dst) in enumerate(layers_src_dst):
        for s in srcs:
            rng[s][1] = i
        rng[dst] = [i, i]
    rng[output][1] = len(layers_src_dst)
    return rng


def test_residual_allocation_keeps_skip_alive():
    layers = [_conv("c1", relu=True), _conv("c2"),
              AddLayer("add", (4, 4, 3), 1 << 14, 1 << 14, 15, src="c2", src2="input"),
              PoolLayer("pool", "max", 4, 4, 3, 2)]
    prog = compile_program(ARCH, layers)
    t = prog.tensors
    assert {n: s for n, (_, s) in t.items()} == {"input": 48, "c1": 48, "c2": 48, "add": 48,
                                                  "pool": 12}
    live = _live_ranges([(("input",), "c1"), (("c1",), "c2"), (("c2", "input"), "add"),
                         (("add",), "pool")], "pool")
    for a in t:
        for b in t:
            overlap_time = live[a][0] <= live[b][1] and live[b][0] <= live[a][1]
            overlap_mem = t[a][0] < t[b][0] + t[b][1] and t[b][0] < t[a][0] + t[a][1]
            assert a == b or not (overlap_time and overlap_mem), (a, b, t)
    assert t["input"][0] == 0 and t["c1"][0] == 48 and t["c2"][0] == 96  # first fit
    assert t["add"][0] == 48  # c1 is dead after c2
    assert [li.kind for li in prog.layers] == ["conv", "conv", "add", "maxpool"]
    assert prog.layers[2].in2_base == 0 and prog.layers[2].src2 == "input"
    assert (prog.output_base, prog.output_count, prog.output_name) == (t["pool"][0], 12, "pool")
    assert prog.layers[2].predicted_cycles == timing.add_cycles(48, ARCH)
    assert prog.layers[3].predicted_cycles == timing.pool_cycles(4, 3, 4, ARCH)


def test_elt_instruction_fields():
    from hwgen.compiler.program import OP_ELT, elt_fields

    pool = PoolLayer("p", "avg", 5, 6, 3, 3, stride=2, padding=1, mult=1 << 14, shift=17)
    prog = compile_program(ARCH, [pool])
    f = decode(elt_fields(ARCH), prog.instructions[0])
    assert (f["op"], f["kind"], f["P"], f["Q"], f["kh"], f["sh"]) == (OP_ELT, 1, 3, 3, 3, 2)
    assert (f["ma"], f["shift"], f["count"], f["hp0"], f["wq0"]) == (1 << 14, 17, 3, -1, -1)
    assert f["pix0"] == -(6 * 3 + 3)  # the input at 0; window origin at (-1, -1)
    assert prog.output_count == 3 * 3 * 3


@pytest.mark.parametrize("layers,match", [
    (lambda: [_conv("c1", src="nope")], "reads tensor 'nope', which no earlier layer"),
    (lambda: [_conv("c1"), _conv("c1")], "tensor 'c1' is already written"),
    (lambda: [_conv("c1"), _conv("c2", dst="input")], "tensor 'input' is already written"),
    (lambda: [_conv("c1"), PoolLayer("p", "max", 4, 4, 2, 2)],
     "reads 32 elements of tensor 'c1', which holds 48"),
    (lambda: [_conv("c1"), AddLayer("a", (4, 4, 3), 1, 1, 1)], "needs src2"),
    (lambda: [PoolLayer("p", "min", 4, 4, 2, 2)], "'max' or 'avg'"),
    (lambda: [PoolLayer("p", "max", 4, 4, 2, 2, padding=2)], "at most half the kernel"),
    (lambda: [PoolLayer("p", "max", 2, 2, 2, 4)], "larger than the padded input"),
    (lambda: [PoolLayer("p", "max", 4, 4, 2, (2, 0))], "kernel"),
    (lambda: [PoolLayer("p", "avg", 4, 4, 2, 2, mult=1, shift=0)], "shift = 0"),
    (lambda: [PoolLayer("p", "avg", 4, 4, 2, 2, mult=1 << 15, shift=3)], "mult = 32768"),
    (lambda: [PoolLayer("p", "max", 4, 4, 2, 2, out_bits=9)], "out_bits=9"),
    (lambda: [_conv("c1"), AddLayer("a", (4, 4, 3), 1, 1, 63, src2="input")], "shift = 63"),
])
def test_tensor_and_eltwise_errors(layers, match):
    with pytest.raises(ProgramError, match=match):
        compile_program(ARCH, layers())


def test_avg_window_limit_and_output_name():
    arch = ARCH.replace(in_bits=8, w_bits=2, acc_bits=10)  # exact sums up to 4 elements
    with pytest.raises(ProgramError, match="window of 9 elements exceeds 4"):
        compile_program(arch, [PoolLayer("p", "avg", 4, 4, 2, 3, mult=1, shift=3)])
    with pytest.raises(ProgramError, match="output tensor 'zz'"):
        compile_program(ARCH, [_conv("c1")], output="zz")
    prog = compile_program(ARCH, [_conv("c1"), _conv("c2", src="input")], output="c1")
    assert (prog.output_base, prog.output_count) == (prog.tensors["c1"][0], 48)


def test_act_words_error_names_tensor_and_need():
    arch = ARCH.replace(act_words=140)
    layers = [_conv("c1"), _conv("c2"),
              AddLayer("add", (4, 4, 3), 1 << 14, 1 << 14, 15, src="c2", src2="input")]
    with pytest.raises(ProgramError, match=r"layer c2: tensor 'c2' \(48 elements\) and the live "
                       r"tensors \['input' \(48 at 0..47\), 'c1' \(48 at 48..95\)\] exceed "
                       r"act_words=140: this layer needs 144 words"):
        allocate([Buffer("input", 48, -1, 2), Buffer("c1", 48, 0, 1), Buffer("c2", 48, 1, 2)],
                 ["c1", "c2", "add"], 140)
    assert compile_program(arch, layers).spilled  # the compiler then runs it in row bands
    with pytest.raises(ProgramError, match="tensor 'input' .* needs 180 words"):
        allocate([Buffer("input", 180, -1, 0), Buffer("p", 24, 0, 1)], ["p"], 100)
    with pytest.raises(ProgramError, match=r"layer p: the activation scratchpad \(act_words=50\) "
                       r"cannot hold one output row of it .* at least 79"):
        compile_program(ARCH.replace(act_words=50), [PoolLayer("p", "max", 6, 10, 3, 2)])
