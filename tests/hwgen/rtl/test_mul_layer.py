"""Tensor multiply layers on the generated top (Amaranth simulation): a squeeze-excitation
gate ``x * s`` (``s`` one value per channel) and a same-shape product, bit-exact against a
plain-integer reference written here (product wrapped to ``acc_bits``, then
``(p * mult + 2**(shift-1)) >> shift`` clamped), and every layer's cycle counter equal to
the closed form of docs/timing.md (``LAYER_SETUP + 2 * pixels * ceil(C/rows) +
MUL_LATENCY``)."""

from __future__ import annotations

import numpy as np
import pytest
from test_rtl_accelerator import run_accelerator

from hwgen.compiler.program import ComputeLayer, MulLayer, ProgramError, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping import timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


def _selector(name: str, start: int, count: int, total: int, w_bits: int = 8) -> ComputeLayer:
    """A GEMM copying elements ``start .. start+count-1`` of the ``total``-element input
    exactly (``x * 2**14 >> 14``)."""
    w = np.zeros((total, count), dtype=np.int64)
    w[np.arange(count) + start, np.arange(count)] = 1
    lm = LayerMapping(name, LoopNest.gemm(1, count, total, w_bits=w_bits), "ws", 1, min(count, 8), total)
    return ComputeLayer(lm, w, np.zeros(count, dtype=np.int64), np.full(count, 1 << 14),
                        np.full(count, 14), src="input", dst=name)


def _plain(x: int, s: int, mult: int, shift: int, acc_bits: int, out_bits: int,
           relu: bool) -> int:
    p = (x * s + (1 << (acc_bits - 1))) % (1 << acc_bits) - (1 << (acc_bits - 1))
    y = (p * mult + (1 << (shift - 1))) >> shift
    hi = (1 << (out_bits - 1)) - 1
    return min(max(y, 0 if relu else -hi - 1), hi)


CASES = [
    # (arch overrides, pixels, channels, broadcast, mult, shift, out_bits, relu)
    (dict(rows=3, cols=2), 5, 7, True, 3 << 13, 14, 8, False),  # channels not a multiple
    (dict(rows=4, cols=4), 3, 4, True, 1 << 14, 20, 6, True),  # one group per pixel
    (dict(rows=2, cols=3, w_bits=4, acc_bits=13), 4, 3, True, 17000, 12, 8, False),  # wraps
    (dict(rows=3, cols=3), 4, 5, False, 12345, 15, 8, False),  # same shape
]


@pytest.mark.parametrize("case", range(len(CASES)), ids=lambda c: f"case{c}")
def test_mul_layer(case):
    over, pixels, ch, broadcast, mult, shift, out_bits, relu = CASES[case]
    arch = ArchSpec(**{**dict(act_words=512, w_words=1024, acc_words=128, ext_word_bits=16),
                       **over})
    e = pixels * ch
    g = ch if broadcast else e
    mul = MulLayer("mul", pixels, ch, mult, shift, out_bits=out_bits, relu=relu,
                   broadcast=broadcast, src="x", src2="s")
    prog = compile_program(arch, [_selector("x", 0, e, e + g, arch.w_bits),
                                  _selector("s", e, g, e + g, arch.w_bits), mul])
    rng = np.random.default_rng(90 + case)
    x = rng.integers(-128, 128, size=e + g)
    x[:3] = [-128, 127, -128]
    x[e:e + 2] = [-128, 127]  # the extreme products, both signs
    out, layers, _ = run_accelerator(Accelerator(arch, prog), x)
    xs, ss = x[:e].reshape(pixels, ch), x[e:]
    gate = np.broadcast_to(ss, (pixels, ch)) if broadcast else ss.reshape(pixels, ch)
    want = [_plain(int(a), int(b), mult, shift, arch.acc_bits, out_bits, relu)
            for a, b in zip(xs.ravel(), gate.ravel(), strict=True)]
    np.testing.assert_array_equal(out, want)
    walk_p, walk_c = (pixels, ch) if broadcast else (1, e)
    closed = timing.LAYER_SETUP + 2 * walk_p * -(-walk_c // arch.rows) + timing.MUL_LATENCY
    assert layers[2] == closed == prog.layers[2].predicted_cycles
    assert prog.layers[2].kind == "mul"


def test_mul_layer_errors():
    arch = ArchSpec(rows=2, cols=2, act_words=256, w_words=256, acc_words=64)
    sel = _selector("x", 0, 6, 6)
    with pytest.raises(ProgramError, match="needs src2"):
        compile_program(arch, [sel, MulLayer("m", 2, 3, 1 << 14, 14, src="x")])
    with pytest.raises(ProgramError, match="reads 3 elements of tensor 'x', which holds 6"):
        compile_program(arch, [sel, MulLayer("m", 2, 3, 1 << 14, 14, src="x", src2="x")])
    with pytest.raises(ProgramError, match="shift = 0"):
        compile_program(arch, [sel, MulLayer("m", 1, 6, 1, 0, src="x", src2="x",
                                             broadcast=False)])
    with pytest.raises(ProgramError, match="out_bits=9"):
        compile_program(arch, [sel, MulLayer("m", 1, 6, 1, 3, out_bits=9, src="x", src2="x",
                                             broadcast=False)])
