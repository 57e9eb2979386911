"""boards imports nothing of ours, so it restates a few hardware constants and formulas;
they must equal the originals (mapping.hwconst, mapping.quant, hwgen.compiler.isa)."""

from __future__ import annotations

import itertools

from boards import family_rules, resource_model
from hwgen.compiler.isa import param_bits
from mapping import hwconst, quant
from mapping.arch import ArchSpec


def test_bits_for_and_bank_count_agree():
    for n in range(0, 5000):
        assert family_rules.bits_for(n) == hwconst.bits_for(n)
    for lanes in itertools.product(range(1, 40), (1, 2, 3, 4, 8, 16)):
        assert family_rules.bank_count(*lanes) == hwconst.bank_count(*lanes)
        assert family_rules.bank_count(lanes[0]) == hwconst.bank_count(lanes[0])
    # the model's own re-exports are the same functions
    assert resource_model.bits_for is family_rules.bits_for
    assert resource_model.bank_count is family_rules.bank_count


def test_requantisation_widths_agree():
    assert resource_model.MULT_BITS == quant.MULT_BITS
    assert resource_model.SHIFT_BITS == quant.SHIFT_BITS


def test_param_word_agrees():
    for acc_bits in (16, 20, 32, 48):
        arch = ArchSpec(acc_bits=acc_bits)
        assert resource_model.param_bits(acc_bits) == param_bits(arch)
        f = resource_model.features_from_arch(arch.to_dict(), param_words=10)
        (params,) = [m for m in resource_model.memories(f) if m.name == "params"]
        assert params.width == param_bits(arch)
