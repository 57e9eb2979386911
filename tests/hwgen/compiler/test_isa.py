"""The instruction layouts are the one definition: encode/decode agree with Amaranth's
own reading of the layout, enums and ranges are checked, the compiler needs no RTL."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data, enum

from hwgen.compiler import isa
from hwgen.compiler.layers import ProgramError
from mapping import quant
from mapping.arch import ArchSpec
from mapping.hwconst import LAYER_ID_BITS

ARCHS = [ArchSpec(rows=2, cols=3, act_words=512, w_words=128, acc_words=128, ext_word_bits=16),
         ArchSpec(rows=8, cols=8, act_words=4096, w_words=2048, acc_words=1024)]


def _random_values(rng, layout) -> dict:
    vals = {}
    for name, fld in layout:
        if isinstance(fld.shape, type) and issubclass(fld.shape, enum.Enum):
            vals[name] = list(fld.shape)[int(rng.integers(len(fld.shape)))]
            continue
        s = Shape.cast(fld.shape)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else \
            (0, (1 << s.width) - 1)
        vals[name] = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1))]))
    return vals


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("which", ["layer", "step", "elt", "param"])
def test_layout_round_trip_matches_amaranth(arch, which):
    """encode -> the word Amaranth casts to the same fields (what the sequencer sees),
    and decode gives them back."""
    layout = getattr(isa, f"{which}_layout")(arch)
    rng = np.random.default_rng(len(which))
    for _ in range(20):
        vals = _random_values(rng, layout)
        word = isa.encode(layout, vals, "x")
        assert 0 <= word < 1 << layout.size
        view = data.Const(layout, word)
        assert {n: view[n] for n, _ in layout} == vals
        ints = {n: (v.value if isinstance(v, enum.Enum) else v) for n, v in vals.items()}
        assert isa.decode(layout, word) == ints
        # the (name, width, signed) view reads the same bits
        if which != "param":
            flat = getattr(isa, f"{which}_fields")(arch)
            assert isa.decode(flat, word) == ints and isa.encode(flat, ints, "x") == word


def test_every_instruction_starts_with_its_opcode():
    for arch in ARCHS:
        for lay in isa.INSTRUCTION_LAYOUTS:
            layout = lay(arch)
            assert layout["op"].offset == 0 and layout["op"].shape is isa.Op
            assert layout.size <= isa.word_bits(arch)
        assert isa.word_bits(arch) == max(lay(arch).size for lay in isa.INSTRUCTION_LAYOUTS)
        assert isa.layer_layout(arch)["layer_id"].shape.width == LAYER_ID_BITS
        assert isa.elt_layout(arch)["kind"].shape is isa.EltKind
    assert (isa.OP_END, isa.OP_LAYER, isa.OP_STEP, isa.OP_ELT, isa.OP_XFER, isa.OP_LOOP) == tuple(
        op.value for op in isa.Op)
    assert (isa.ELT_MAX, isa.ELT_AVG, isa.ELT_ADD, isa.ELT_LUT) == tuple(
        k.value for k in isa.EltKind)[:4]
    assert isa.ELT_DW == isa.EltKind.DW.value == 4


def test_param_word():
    arch = ARCHS[0]
    assert isa.param_bits(arch) == arch.acc_bits + quant.MULT_BITS + quant.SHIFT_BITS
    word = isa.encode(isa.param_layout(arch), dict(bias=-5, mult=(1 << 15) - 1, shift=62), "p")
    assert word == ((-5) & ((1 << arch.acc_bits) - 1)) | ((1 << 15) - 1) << arch.acc_bits \
        | 62 << (arch.acc_bits + quant.MULT_BITS)


def test_encode_errors_name_the_field():
    arch = ARCHS[0]
    with pytest.raises(ProgramError, match="ELT: field kind = 8 does not fit 3 bits"):
        isa.encode(isa.elt_layout(arch), {"op": isa.Op.ELT, "kind": 8}, "ELT")
    with pytest.raises(ProgramError, match=r"field layer_id = 256 does not fit 8 bits "
                                           r"\(unsigned; allowed 0..255\)"):
        isa.encode(isa.layer_layout(arch), {"layer_id": 256}, "L")
    w = isa.delta_bits(arch)
    with pytest.raises(ProgramError, match=f"field pix0 = .* does not fit {w} bits \\(signed"):
        isa.encode(isa.step_layout(arch), {"pix0": -(1 << w)}, "S")
    with pytest.raises(ProgramError, match="field op = .*ADD.* is no Op"):
        isa.encode(isa.elt_layout(arch), {"op": isa.EltKind.ADD}, "ELT")
    assert isa.encode(isa.layer_fields(arch), {"op": isa.Op.END}, "END") == isa.OP_END
    with pytest.raises(ProgramError, match="no field bogus"):
        isa.encode(isa.step_layout(arch), {"bogus": 1}, "S")


def test_compiler_imports_no_rtl():
    code = ("import sys, hwgen.compiler.program, hwgen.compiler.codegen; "
            "print(sorted(m for m in sys.modules if m.startswith('hwgen.rtl')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
