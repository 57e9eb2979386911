"""LoopNest: the im2col GEMM view equals a brute-force convolution; P/Q; errors."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mapping.loopnest import LoopNest, LoopNestError


def _direct_conv(x, w, stride, pad, dil):
    """out[n, k, p, q] = sum_{c,r,s} x[n, c, p*sh + r*dh - ph, q*sw + s*dw - pw] w[k, c, r, s]
    (brute force; ``stride``/``pad``/``dil`` are ``(h, w)`` pairs)."""
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dil
    n_, c_, h_, w_ = x.shape
    k_, _, r_, s_ = w.shape
    p_ = (h_ + 2 * ph - dh * (r_ - 1) - 1) // sh + 1
    q_ = (w_ + 2 * pw - dw * (s_ - 1) - 1) // sw + 1
    out = np.zeros((n_, k_, p_, q_), np.int64)
    for n in range(n_):
        for k in range(k_):
            for p in range(p_):
                for q in range(q_):
                    acc = 0
                    for c in range(c_):
                        for r in range(r_):
                            for s in range(s_):
                                h, ww = p * sh + r * dh - ph, q * sw + s * dw - pw
                                if 0 <= h < h_ and 0 <= ww < w_:
                                    acc += x[n, c, h, ww] * w[k, c, r, s]
                    out[n, k, p, q] = acc
    return out


def _gemm_view_output(nest, x, wt):
    a = np.zeros((nest.gemm_m, nest.gemm_k), np.int64)  # the virtual im2col matrix
    for m in range(nest.gemm_m):
        for k in range(nest.gemm_k):
            idx = nest.im2col_index(m, k)
            a[m, k] = 0 if idx is None else x[idx]
    # weights in the GEMM view: row k = (r, s, c) with c fastest
    wg = wt.transpose(2, 3, 1, 0).reshape(nest.gemm_k, nest.gemm_n)
    return (a @ wg).reshape(nest.N, nest.P, nest.Q, nest.K).transpose(0, 3, 1, 2)


def test_im2col_gemm_equals_direct_convolution():
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    for _ in range(60):
        r, s = rng.randint(1, 3), rng.randint(1, 3)
        stride, pad, dil = rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 2)
        h, w = rng.randint(dil * (r - 1) + 1, 7), rng.randint(dil * (s - 1) + 1, 7)
        nest = LoopNest.conv(rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 3), h, w, r, s,
                             stride=stride, padding=pad, dilation=dil)
        x = nrng.integers(-5, 5, (nest.N, nest.C, h, w))
        wt = nrng.integers(-5, 5, (nest.K, nest.C, r, s))
        want = _direct_conv(x, wt, (stride,) * 2, (pad,) * 2, (dil,) * 2)
        np.testing.assert_array_equal(_gemm_view_output(nest, x, wt), want)
        assert nest.macs == nest.gemm_m * nest.gemm_n * nest.gemm_k


def test_im2col_per_axis_geometry_equals_torch():
    """Random per-axis stride / padding / dilation, 1 x k kernels on height-1 inputs
    (Conv1d) among them: the GEMM view equals torch's F.conv2d with the same arguments."""
    torch = pytest.importorskip("torch")
    rng = random.Random(11)
    nrng = np.random.default_rng(11)
    for i in range(80):
        conv1d = i % 4 == 0
        r, s = (1, rng.randint(1, 4)) if conv1d else (rng.randint(1, 3), rng.randint(1, 3))
        st = (1 if conv1d else rng.randint(1, 3), rng.randint(1, 3))
        pd = (0 if conv1d else rng.randint(0, 2), rng.randint(0, 2))
        dl = (1 if conv1d else rng.randint(1, 2), rng.randint(1, 3))
        h = 1 if conv1d else rng.randint(max(1, dl[0] * (r - 1) + 1 - 2 * pd[0]), 7)
        w = rng.randint(max(1, dl[1] * (s - 1) + 1 - 2 * pd[1]), 12)
        nest = LoopNest.conv(rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 3), h, w, r, s,
                             stride=st, padding=pd, dilation=dl)
        assert (nest.stride_h, nest.stride_w, nest.pad_h, nest.pad_w, nest.dil_h,
                nest.dil_w) == (*st, *pd, *dl)
        x = nrng.integers(-5, 5, (nest.N, nest.C, h, w))
        wt = nrng.integers(-5, 5, (nest.K, nest.C, r, s))
        want = torch.nn.functional.conv2d(torch.from_numpy(x).double(),
                                          torch.from_numpy(wt).double(), stride=st,
                                          padding=pd, dilation=dl).numpy().astype(np.int64)
        got = _gemm_view_output(nest, x, wt)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, _direct_conv(x, wt, st, pd, dl))


def test_int_and_pair_arguments_are_one_nest():
    a = LoopNest.conv(1, 2, 3, 6, 6, 3, 3, stride=2, padding=1, dilation=1)
    b = LoopNest.conv(1, 2, 3, 6, 6, 3, 3, stride=(2, 2), padding=[1, 1], dilation=(1, 1))
    assert a == b and hash(a) == hash(b)
    c = LoopNest.conv(1, 2, 3, 6, 6, 3, 3, stride=(2, 1), padding=1)
    assert c != a and (c.P, c.Q) == (3, 6)
    assert c.describe() == "conv N=1 K=2 C=3 6x6->3x6 k=3x3 s=2x1 p=1 d=1"
    assert a.describe() == "conv N=1 K=2 C=3 6x6->3x3 k=3x3 s=2 p=1 d=1"
    # Conv1d: kernel 1 x 3 on a height-1 input, stride (1, 2), padding (0, 1), dilation (1, 2)
    c1 = LoopNest.conv(1, 4, 2, 1, 10, 1, 3, stride=(1, 2), padding=(0, 1), dilation=(1, 2))
    assert (c1.P, c1.Q) == (1, (10 + 2 - 4 - 1) // 2 + 1)


@pytest.mark.parametrize("h, r, stride, pad, dil, want", [
    (224, 7, 2, 3, 1, 112), (56, 3, 1, 1, 1, 56), (56, 1, 2, 0, 1, 28), (8, 3, 1, 0, 2, 4),
    (5, 5, 1, 0, 1, 1), (7, 3, 3, 1, 1, 3),
])
def test_output_size_formula(h, r, stride, pad, dil, want):
    nest = LoopNest.conv(1, 1, 1, h, h + 1, r, r, stride=stride, padding=pad, dilation=dil)
    assert nest.P == want
    assert nest.Q == (h + 1 + 2 * pad - dil * (r - 1) - 1) // stride + 1


def test_gemm_view():
    g = LoopNest.gemm(3, 4, 5)
    assert (g.gemm_m, g.gemm_n, g.gemm_k, g.weight_count) == (3, 4, 5, 20)
    assert g.im2col_index(2, 4) == (2, 4, 0, 0)
    assert "gemm M=3 N=4 K=5" == g.describe()


@pytest.mark.parametrize("make, msg", [
    (lambda: LoopNest(kind="fc"), "LoopNest.kind = 'fc'; allowed: 'gemm', 'conv'"),
    (lambda: LoopNest.gemm(0, 4, 5), "LoopNest.N = 0; must be a positive integer"),
    (lambda: LoopNest.gemm(2, 4, -1), "LoopNest.C = -1; must be a positive integer"),
    (lambda: LoopNest.conv(1, 1, 1, 2, 2, 5, 5), "convolution output would be -2x-2"),
    (lambda: LoopNest(kind="gemm", pad_w=-1), "LoopNest.pad_w = -1; must be >= 0"),
    (lambda: LoopNest(kind="gemm", stride_h=0), "LoopNest.stride_h = 0; must be a positive"),
    (lambda: LoopNest.conv(1, 1, 1, 4, 4, 1, 1, stride=(1, 2, 3)),
     "LoopNest stride = \\(1, 2, 3\\); allowed: an int or an \\(h, w\\) pair"),
    (lambda: LoopNest.conv(1, 1, 1, 4, 4, 1, 1, padding=1.5),
     "LoopNest padding = 1.5; allowed: an int or an \\(h, w\\) pair"),
    (lambda: LoopNest.conv(1, 1, 1, 1, 8, 3, 1), "convolution output would be -1x8"),
    (lambda: LoopNest(kind="conv", H=8, W=8, R=3, S=3, P=5, Q=6),
     "LoopNest.P = 5 does not match the input size and kernel \\(expected 6\\)"),
])
def test_errors(make, msg):
    with pytest.raises(LoopNestError, match=msg):
        make()
