"""Lookup-table activation layers (``LutLayer``, ELT kind ``LUT``): the compiled ELT word
and lookup ROM, and the generated top in Amaranth simulation, bit-exact against a direct
numpy table lookup with each layer's cycle counter equal to ``mapping.timing.lut_cycles``."""

from __future__ import annotations

import numpy as np
import pytest
from test_rtl_accelerator import run_accelerator

from hwgen.compiler.isa import EltKind, decode, elt_layout
from hwgen.compiler.program import LutLayer, PoolLayer, ProgramError, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping import timing
from mapping.arch import ArchSpec


def _arch(**kw) -> ArchSpec:
    base = dict(rows=3, cols=2, act_words=256, w_words=64, acc_words=64, ext_word_bits=16)
    base.update(kw)
    return ArchSpec(**base)


def _table(rng, in_bits: int, out_bits: int) -> np.ndarray:
    return rng.integers(-(1 << (out_bits - 1)), 1 << (out_bits - 1), size=1 << in_bits)


def test_elt_word_and_rom():
    rng = np.random.default_rng(1)
    arch = _arch()
    t1, t2 = _table(rng, 8, 4), _table(rng, 4, 8)
    layers = [LutLayer("a", (1, 10), t1, out_bits=4), LutLayer("b", (1, 10), t2, out_bits=8)]
    prog = compile_program(arch, layers)
    assert prog.luts == [int(v) for v in np.concatenate([t1, t2])]
    assert prog.summary()["lut_entries"] == 256 + 16
    fa = decode(elt_layout(arch), prog.instructions[0])
    fb = decode(elt_layout(arch), prog.instructions[1])
    assert fa["kind"] == fb["kind"] == EltKind.LUT.value
    assert (fa["tab"], fb["tab"]) == (128, 256 + 8)  # the entry of input value 0
    assert (fa["count"], fa["out_bits"], fb["out_bits"]) == (10, 4, 8)
    assert (fa["src"], fa["dst"]) == (prog.tensors["input"][0], prog.tensors["a"][0])
    assert [li.kind for li in prog.layers] == ["lut", "lut"]
    assert prog.layers[0].predicted_cycles == timing.lut_cycles(10, arch) == 2 + 4 + 3


@pytest.mark.parametrize("layer,match", [
    (LutLayer("x", (8,), np.arange(12) - 6), "table must be a 1-D integer array of 2\\*\\*b"),
    (LutLayer("x", (8,), np.zeros(512, np.int64)), "2 <= b <= in_bits=8"),
    (LutLayer("x", (8,), np.full(16, 8), out_bits=4), "table values must be in -8..7"),
    (LutLayer("x", (8,), np.zeros(16, np.int64), out_bits=9), "out_bits=9 must be 2..in_bits"),
])
def test_lut_layer_errors(layer, match):
    with pytest.raises(ProgramError, match=match):
        compile_program(_arch(), [layer])


@pytest.mark.parametrize("rows,elements", [(3, 10), (4, 8), (1, 5)])
def test_lut_layers_on_the_top(rows, elements):
    """Input -> LUT (8-bit table, 5-bit values) -> LUT (5-bit table) -> max pool -> LUT:
    three tables in one ROM, partial last groups, a LUT after another element-wise layer."""
    rng = np.random.default_rng(rows)
    arch = _arch(rows=rows)
    t1, t2, t3 = _table(rng, 8, 5), _table(rng, 5, 8), _table(rng, 8, 8)
    layers = [LutLayer("a", (elements,), t1, out_bits=5),
              LutLayer("b", (elements,), t2, out_bits=8),
              PoolLayer("p", "max", 1, elements, 1, (1, 2), stride=(1, 1)),
              LutLayer("c", (elements - 1,), t3, out_bits=8)]
    prog = compile_program(arch, layers)
    x = rng.integers(-128, 128, size=elements)
    x[:2] = [-128, 127]
    out, counted, _ = run_accelerator(Accelerator(arch, prog), x)
    a = t1[x + 128]
    b = t2[a + 16]
    p = np.maximum(b[:-1], b[1:])
    np.testing.assert_array_equal(out, t3[p + 128])
    want = [timing.lut_cycles(elements, arch), timing.lut_cycles(elements, arch),
            timing.pool_cycles(elements - 1, 1, 2, arch), timing.lut_cycles(elements - 1, arch)]
    assert counted == want == [li.predicted_cycles for li in prog.layers]
