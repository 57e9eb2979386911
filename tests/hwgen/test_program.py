"""Program encoding and compilation: fields, weight image, steps, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwgen.dma import pack_words
from hwgen.program import (
    OP_END,
    OP_LAYER,
    OP_STEP,
    ComputeLayer,
    FlattenLayer,
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
    with pytest.raises(ProgramError, match="field op = 9 does not fit 2 bits"):
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


def test_conv_tile_starts_follow_im2col():
    """The compiled start address of each tile is the im2col address of its first element."""
    nest = LoopNest.conv(2, 3, 2, 5, 4, 3, 3, stride=2, padding=1)
    layer = _layer(nest, (3, 3, 7), ("m", "k", "n"))
    prog = compile_program(ARCH, [layer])
    H, W, C = 5, 4, 2
    for word, t in zip(prog.instructions[2:-1],
                       list(timing.iter_tiles(layer.mapping)), strict=False):
        s = decode(step_fields(ARCH), word)
        m0, k0 = t.mi * 3, t.ki * 7
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
    arch = ARCH.replace(act_words=500)
    with pytest.raises(ProgramError, match="exceed act_words=500"):
        compile_program(arch, [_layer(nest, (4, 4, 4), arch=arch)])
    with pytest.raises(ProgramError, match="at least one compute layer"):
        compile_program(ARCH, [FlattenLayer()])
    with pytest.raises(ProgramError, match="not a ComputeLayer"):
        compile_program(ARCH, ["relu"])
