"""mapping.energy reproduces the published Horowitz (ISSCC 2014) figures it scales from."""

from __future__ import annotations

import pytest

from mapping.arch import ArchSpec
from mapping.energy import (
    ACCESS_KEYS,
    add_pj,
    energy_table,
    mult_pj,
    sram_64bit_pj,
    sram_access_pj,
)
from mapping.loopnest import LoopNest


def test_published_points():
    assert add_pj(8) == pytest.approx(0.03) and add_pj(32) == pytest.approx(0.1)
    assert mult_pj(8, 8) == pytest.approx(0.2)
    assert mult_pj(32, 32) == pytest.approx(3.1, rel=0.05)
    for size, pj in ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0)):
        assert sram_64bit_pj(size) == pytest.approx(pj)


def test_scaling_is_monotone_and_width_linear():
    sizes = [256, 2048, 8192, 20000, 32768, 200000, 1 << 20, 1 << 24]
    e = [sram_64bit_pj(s) for s in sizes]
    assert e == sorted(e)
    assert sram_64bit_pj(2 * 1024) == pytest.approx(5.0)  # slope 1/2 below 8 KB: 10 * (1/4)^0.5
    assert sram_access_pj(1024, 64, 8) == pytest.approx(10.0 / 8)  # 8 KB array, 8-bit access
    with pytest.raises(ValueError, match="SRAM size must be positive"):
        sram_64bit_pj(0)


def test_table():
    nest = LoopNest.gemm(4, 4, 1024, in_bits=8, w_bits=4)
    arch = ArchSpec(w_bits=4, ext_word_bits=64)
    t = energy_table(nest, arch)
    assert set(t.per_access) == set(ACCESS_KEYS)
    assert t.mac == pytest.approx(mult_pj(8, 4) + add_pj(32))
    # ROM: an SRAM holding the layer's 4096 4-bit weights = 256 words of 64 bits (2 KB)
    assert t.per_access["store.w.read"] == pytest.approx(sram_64bit_pj(2048))
    ext = energy_table(nest, arch.replace(weight_store="external", ext_word_bits=128))
    assert ext.per_access["store.w.read"] == pytest.approx(1950.0 * 2)
    assert t.per_access["acc.psum.read"] == pytest.approx(
        sram_64bit_pj(arch.acc_words * 4) * 32 / 64)
    assert t.energy(dict.fromkeys(ACCESS_KEYS, 0), 10) == pytest.approx(10 * t.mac)
