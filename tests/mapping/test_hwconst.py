"""The shared hardware widths and formulas (mapping.hwconst, mapping.quant) are consistent."""

from __future__ import annotations

import pytest

from mapping import hwconst, quant


@pytest.mark.parametrize("n,bits", [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8),
                                    (257, 9), (4096, 12)])
def test_bits_for(n, bits):
    assert hwconst.bits_for(n) == bits
    if n > 1:  # 0..n-1 fits, 0..n does not when n is a power of two
        assert (n - 1).bit_length() <= hwconst.bits_for(n)


def test_bank_count():
    assert [hwconst.bank_count(1), hwconst.bank_count(3), hwconst.bank_count(4),
            hwconst.bank_count(5, 2), hwconst.bank_count(0)] == [1, 4, 4, 8, 1]
    for lanes in range(1, 70):
        b = hwconst.bank_count(lanes)
        assert b >= lanes and b & (b - 1) == 0 and b < 2 * lanes


def test_widths_hold_their_ranges():
    assert hwconst.MAX_LAYERS == 1 << hwconst.LAYER_ID_BITS
    assert quant.SHIFT_MAX < 1 << quant.SHIFT_BITS  # every requantisation shift fits
    assert quant.SHIFT_MIN >= 1  # 0 stays free: the max pool's "no rounding"
    # a multiplier in [2**14, 2**15) is what quantize_multiplier produces
    mult, shift = quant.quantize_multiplier(0.75)
    assert 1 << (quant.MULT_BITS - 1) <= mult < 1 << quant.MULT_BITS
    assert quant.SHIFT_MIN <= shift <= quant.SHIFT_MAX
    assert hwconst.CYCLE_COUNTER_BITS >= hwconst.LAYER_COUNTER_BITS
