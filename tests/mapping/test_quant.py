"""mapping.quant against brute-force Python-int / fractions references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from mapping import quant as Q
from mapping.loopnest import LoopNest
from mapping.quant import QuantError

SEED = 1234


def ref_requant(acc: int, mult: int, shift: int, bits: int, relu: bool) -> int:
    """floor(acc * mult / 2**shift + 1/2) with exact rationals, then saturate."""
    y = math.floor(Fraction(acc * mult, 2**shift) + Fraction(1, 2))
    lo = 0 if relu else -(2 ** (bits - 1))
    return max(lo, min(2 ** (bits - 1) - 1, y))


def ref_wrap(v: int, bits: int) -> int:
    v %= 2**bits
    return v - 2**bits if v >= 2 ** (bits - 1) else v


@pytest.mark.parametrize("bad", [0, 1, 17, 33, -8, 8.0, True, "8"])
def test_check_bits_rejects_with_range(bad):
    with pytest.raises(QuantError) as exc:
        Q.check_bits(bad, "bits")
    msg = str(exc.value)
    assert repr(bad) in msg and "2" in msg and "16" in msg


@pytest.mark.parametrize("bad", [4, 7, 49, 64])
def test_check_acc_bits(bad):
    with pytest.raises(QuantError, match=r"acc_bits = .* from 8 to 48"):
        Q.check_acc_bits(bad)
    assert Q.check_acc_bits(48) == 48


def test_qrange():
    assert Q.qrange(8) == (-128, 127)
    assert Q.qrange(8, relu=True) == (0, 127)
    assert Q.qrange(2) == (-2, 1)
    assert Q.qrange(16) == (-32768, 32767)


def test_round_half_away():
    x = np.array([-2.5, -1.5, -0.5, -0.49, 0.0, 0.5, 1.5, 2.5, 2.49])
    assert Q.round_half_away(x).tolist() == [-3, -2, -1, 0, 0, 1, 2, 3, 2]


def test_quantize_act_floor_half_up_and_saturation():
    s = 0.5
    x = np.array([-100.0, -0.25, -0.26, 0.25, 0.24, 63.4, 1000.0])
    # x/s = -200, -0.5, -0.52, 0.5, 0.48, 126.8, 2000
    assert Q.quantize_act(x, s, 8).tolist() == [-128, 0, -1, 1, 0, 127, 127]
    assert Q.quantize_act(x, s, 8, relu=True).tolist() == [0, 0, 0, 1, 0, 127, 127]


def test_act_scale():
    assert Q.act_scale(12.7, 8) == pytest.approx(0.1)
    assert Q.act_scale(0.0, 8) == 1.0
    assert Q.act_scale(7.0, 4) == pytest.approx(1.0)


def test_quantize_weights_per_channel():
    rng = np.random.default_rng(SEED)
    w = rng.normal(size=(5, 3, 2, 2))
    w[2] = 0.0
    q, s = Q.quantize_weights(w, 8)
    for c in range(5):
        m = np.abs(w[c]).max()
        sc = m / 127 if m > 0 else 1.0
        assert s[c] == pytest.approx(sc)
        exp = [max(-128, min(127, int(math.copysign(math.floor(abs(v / sc) + 0.5), v))))
               for v in w[c].ravel()]
        assert q[c].ravel().tolist() == exp
    assert np.abs(q).max() == 127
    assert (q[2] == 0).all()


def test_quantize_bias():
    b = np.array([1.0, -1.0, 0.3])
    qb = Q.quantize_bias(b, 0.1, np.array([0.5, 0.5, 0.2]))
    assert qb.tolist() == [20, -20, 15]


def test_wrap_vs_python_ints():
    rng = np.random.default_rng(SEED)
    for bits in (8, 16, 24, 32, 48):
        v = rng.integers(-(2**60), 2**60, size=500, dtype=np.int64)
        v[:4] = [2 ** (bits - 1), -(2 ** (bits - 1)) - 1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1))]
        got = Q.wrap(v, bits)
        assert got.tolist() == [ref_wrap(int(x), bits) for x in v]


def test_quantize_multiplier_reconstructs():
    rng = np.random.default_rng(SEED)
    ms = np.concatenate([10.0 ** rng.uniform(-14, 4, size=2000),
                         [1.0, 0.5, 2.0**-20, 2.0**-47.9, 1 - 1e-12, 2.0**14 - 0.5]])
    for m in ms:
        mult, shift = Q.quantize_multiplier(m)
        assert 2**14 <= mult < 2**15 and 1 <= shift <= 62
        assert abs(mult * 2.0**-shift - m) <= m * 2.0**-15


def test_quantize_multiplier_tiny_and_bad():
    mult, shift = Q.quantize_multiplier(2.0**-50)
    assert shift == 62 and mult == 2**12
    assert Q.quantize_multiplier(1e-30) == (0, 62)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(QuantError, match="positive finite"):
            Q.quantize_multiplier(bad)
    with pytest.raises(QuantError, match="too large"):
        Q.quantize_multiplier(2.0**14)


@pytest.mark.parametrize("bits,relu", [(8, False), (8, True), (4, False), (16, False), (2, True)])
def test_requantize_vs_fractions(bits, relu):
    rng = np.random.default_rng(SEED + bits)
    n = 400
    acc = rng.integers(-(2**31), 2**31, size=n, dtype=np.int64)
    acc[:8] = [0, -1, 1, 2**31 - 1, -(2**31), -(2**47), 2**47 - 1, -3]
    mult = rng.integers(2**14, 2**15, size=n, dtype=np.int64)
    shift = rng.integers(1, 63, size=n, dtype=np.int64)
    shift[:8] = [1, 1, 1, 62, 62, 62, 62, 2]
    mult[7] = 2**14  # -3 * 2**14 / 2**2 = -12288 -> saturates low
    got = Q.requantize(acc, mult, shift, bits, relu)
    exp = [ref_requant(int(a), int(m), int(s), bits, relu)
           for a, m, s in zip(acc, mult, shift, strict=True)]
    assert got.tolist() == exp
    assert got.dtype == np.int64


def test_requantize_negative_rounding_halves():
    # -3 * 2**14 >> 15 = -1.5 -> floor(-1.5 + 0.5) = -1; -5/2 -> -2; 5/2 -> 3
    mult, shift = 2**14, 15
    acc = np.array([-3, -5, 5, -1, 1])
    assert Q.requantize(acc, mult, shift, 8).tolist() == [-1, -2, 3, 0, 1]


def test_requantize_per_channel_broadcast():
    acc = np.arange(-12, 12).reshape(2, 3, 4)
    mult = np.array([2**14, 3 * 2**13, 2**14 + 1])
    shift = np.array([14, 15, 16])
    got = Q.requantize(acc, mult.reshape(1, 3, 1), shift.reshape(1, 3, 1), 8)
    for c in range(3):
        exp = [ref_requant(int(a), int(mult[c]), int(shift[c]), 8, False) for a in acc[:, c].ravel()]
        assert got[:, c].ravel().tolist() == exp


def test_add_multipliers_and_requantize_add():
    rng = np.random.default_rng(SEED)
    for _ in range(50):
        sa, sb, so = 10.0 ** rng.uniform(-3, 0, size=3)
        so = max(so, sa / 100, sb / 100)
        ma, mb, sh = Q.add_multipliers(sa, sb, so)
        assert ma < 2**15 and mb < 2**15 and 1 <= sh <= 62
        assert max(ma, mb) >= 2**14 or sh == 62  # the largest shift: doubling would overflow
        assert abs(ma * 2.0**-sh - sa / so) <= 2.0 ** -(sh + 1)
        a = rng.integers(-128, 128, size=64)
        b = rng.integers(-128, 128, size=64)
        got = Q.requantize_add(a, b, ma, mb, sh, 8, relu=False)
        exp = [max(-128, min(127, math.floor(Fraction(int(x) * ma + int(y) * mb, 2**sh)
                                             + Fraction(1, 2))))
               for x, y in zip(a, b, strict=True)]
        assert got.tolist() == exp


def test_gemm_weights_order_matches_loopnest():
    rng = np.random.default_rng(SEED)
    w = rng.integers(-8, 8, size=(4, 3, 2, 3))  # K, C, R, S
    g = Q.gemm_weights(w)
    nest = LoopNest.conv(1, 4, 3, 5, 5, 2, 3)
    assert g.shape == (nest.gemm_k, nest.gemm_n)
    for k in range(nest.gemm_k):
        rs, c = divmod(k, nest.C)
        r, s = divmod(rs, nest.S)
        assert g[k].tolist() == w[:, c, r, s].tolist()
    lin = rng.integers(-8, 8, size=(5, 7))
    assert (Q.gemm_weights(lin) == lin.T).all()


def test_host_ops_match_torch():
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(2, 3, 8))
    t = torch.from_numpy(x)
    assert np.allclose(Q.host_op("softmax", x, {"dim": 2}, {}), torch.softmax(t, 2).numpy())
    assert np.allclose(Q.host_op("gelu", x, {}, {}), torch.nn.functional.gelu(t).numpy())
    assert np.allclose(Q.host_op("gelu", x, {"approximate": "tanh"}, {}),
                       torch.nn.functional.gelu(t, approximate="tanh").numpy())
    w, b = rng.normal(size=8), rng.normal(size=8)
    ln = torch.nn.functional.layer_norm(t, (8,), torch.from_numpy(w), torch.from_numpy(b), 1e-5)
    got = Q.host_op("layernorm", x, {"normalized_shape": (8,), "eps": 1e-5},
                    {"weight": w, "bias": b})
    assert np.allclose(got, ln.numpy())
    with pytest.raises(QuantError, match="host ops: softmax, layernorm, gelu"):
        Q.host_op("relu", x, {}, {})


def test_bias_floor_keeps_dead_channel_bias_in_accumulator():
    w = np.array([[1e-20, -1e-20], [0.5, -0.25], [0.0, 0.0]])
    b = np.array([0.3, 0.1, -0.2])
    s_in, acc_bits = 0.01, 32
    qw, s_w = Q.quantize_weights(w, 8, min_scale=Q.bias_scale_floor(b, s_in, acc_bits))
    qb = Q.quantize_bias(b, s_in, s_w)
    assert np.abs(qb).max() <= 2**30
    assert np.allclose(qb * s_in * s_w, b, rtol=1e-6)  # bias survives exactly enough
    assert s_w[1] == pytest.approx(0.5 / 127) and qw[1].tolist() == [127, -64]
    assert qw[0].tolist() == [0, 0] and qw[2].tolist() == [0, 0]
