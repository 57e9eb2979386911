"""sim.golden against brute-force Python-int loops, LoopNest.im2col_index, and accuracy."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

import models
from mapping.loopnest import LoopNest
from mapping.passes import calibration_inputs, prepare, prepare_entry
from sim import golden

SEED = 7


def py_requant(acc: int, mult: int, shift: int, bits: int, relu: bool) -> int:
    y = (acc * mult + 2 ** (shift - 1)) // 2**shift  # Python ints: exact floor
    return max(0 if relu else -(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, y))


def py_wrap(v: int, bits: int) -> int:
    v %= 2**bits
    return v - 2**bits if v >= 2 ** (bits - 1) else v


@pytest.mark.parametrize("cfg", [
    dict(N=2, K=3, C=2, H=5, W=4, R=3, S=3, stride=1, padding=1),
    dict(N=1, K=2, C=3, H=7, W=7, R=3, S=2, stride=2, padding=0, dilation=2),
    dict(N=1, K=1, C=1, H=3, W=3, R=1, S=1, stride=1, padding=2),
    # per-axis: Conv1d (1 x 3 on height 1), a 3x1 kernel, mixed strides / paddings / dilations
    dict(N=2, K=2, C=2, H=1, W=9, R=1, S=3, stride=(1, 2), padding=(0, 1), dilation=(1, 2)),
    dict(N=1, K=2, C=3, H=6, W=4, R=3, S=1, stride=(2, 1), padding=(1, 0)),
    dict(N=1, K=2, C=2, H=7, W=5, R=2, S=3, stride=(3, 1), padding=(0, 2), dilation=(2, 1)),
])
def test_im2col_follows_loopnest_index(cfg):
    nest = LoopNest.conv(**cfg)
    rng = np.random.default_rng(SEED)
    x = rng.integers(-50, 50, size=(nest.N, nest.C, nest.H, nest.W))
    cols = golden.im2col(x, nest).reshape(nest.gemm_m, nest.gemm_k)  # batch folded into m
    for m in range(nest.gemm_m):
        for k in range(nest.gemm_k):
            idx = nest.im2col_index(m, k)
            assert cols[m, k] == (0 if idx is None else x[idx]), (m, k)


def _quantised(module, x_shape, seed=SEED, bits=8):
    g = torch.Generator().manual_seed(seed)
    calib = torch.randn((16,) + x_shape, generator=g)
    return prepare(module.eval(), calib[:1], calib.numpy(), bits=bits)


def _axes(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("model, shape", [
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1), nn.ReLU(),
                           nn.Conv2d(4, 2, 2, dilation=2, bias=False)), (3, 7, 7)),
    # per-axis geometry: a 3x1 kernel with stride (2, 1) and padding (1, 0), then a 1 x 3
    # kernel with stride (1, 2), padding (0, 1), dilation (1, 2)
    (lambda: nn.Sequential(nn.Conv2d(2, 3, (3, 1), stride=(2, 1), padding=(1, 0)), nn.ReLU(),
                           nn.Conv2d(3, 2, (1, 3), stride=(1, 2), padding=(0, 1),
                                     dilation=(1, 2))), (2, 7, 9)),
])
def test_conv_relu_vs_brute_force(model, shape):
    torch.manual_seed(SEED)
    g = _quantised(model(), shape)
    rng = np.random.default_rng(SEED)
    x = rng.integers(-128, 128, size=(2, *shape))
    env = golden.run(g, x, trace=True)
    for name, inp in (("_0", g.inputs[0]), ("_2", "_0")):
        n = g.node(name)
        q, w, b = n.quant, n.params["qweight"], n.params["qbias"]
        a = env[inp]
        k_, c_, r_, s_ = w.shape
        (sh, sw), (ph, pw), (dh, dw) = (_axes(n.attrs[k]) for k in ("stride", "padding",
                                                                     "dilation"))
        bsz, _, h_, w_ = a.shape
        p_, q_ = n.out_shape[2:]
        assert env[name].shape == (bsz, k_, p_, q_)
        for bi, k, p, qq in itertools.product(range(bsz), range(k_), range(p_), range(q_)):
            acc = int(b[k])
            for c, r, s in itertools.product(range(c_), range(r_), range(s_)):
                h, ww = p * sh + r * dh - ph, qq * sw + s * dw - pw
                if 0 <= h < h_ and 0 <= ww < w_:
                    acc += int(a[bi, c, h, ww]) * int(w[k, c, r, s])
            exp = py_requant(py_wrap(acc, q.acc_bits), int(q.mult[k]), int(q.shift[k]), q.bits,
                             q.relu)
            assert env[name][bi, k, p, qq] == exp


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.fc2 = nn.Linear(6, 6)

    def forward(self, x):
        return torch.relu(self.fc2(torch.relu(self.fc1(x))) + x)


def test_linear_and_residual_add_vs_brute_force():
    torch.manual_seed(SEED)
    g = _quantised(Residual(), (6,), bits=6)
    rng = np.random.default_rng(SEED)
    x = rng.integers(-32, 32, size=(5, 6))
    env = golden.run(g, x, trace=True)
    fc1 = g.node("fc1")
    q, w, b = fc1.quant, fc1.params["qweight"], fc1.params["qbias"]
    for i, j in itertools.product(range(5), range(6)):
        acc = sum(int(x[i, k]) * int(w[j, k]) for k in range(6)) + int(b[j])
        assert env["fc1"][i, j] == py_requant(acc, int(q.mult[j]), int(q.shift[j]), 6, True)
    add = g.node("add").quant
    ma, mb, sh = (int(v) for v in (*add.mult, add.shift[0]))
    for i, j in itertools.product(range(5), range(6)):
        v = (int(env["fc2"][i, j]) * ma + int(x[i, j]) * mb + 2 ** (sh - 1)) // 2**sh
        assert env["add"][i, j] == max(0, min(31, v))


def test_pooling_vs_brute_force():
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(2, padding=1),
                          nn.AdaptiveAvgPool2d(1))
    g = _quantised(model, (2, 7, 7))
    rng = np.random.default_rng(SEED)
    x = rng.integers(-128, 128, size=(3, 2, 7, 7))
    env = golden.run(g, x, trace=True)
    mp = env["_0"]
    assert mp.shape == (3, 2, 4, 4)
    for b, c, p, q in itertools.product(range(3), range(2), range(4), range(4)):
        win = [x[b, c, h, w] for h in range(2 * p - 1, 2 * p + 2) for w in range(2 * q - 1, 2 * q + 2)
               if 0 <= h < 7 and 0 <= w < 7]
        assert mp[b, c, p, q] == max(win)
    avg = g.node("_1").quant
    assert avg.scale == g.node("_0").quant.scale
    ap = env["_1"]  # 4x4 padded by 1 -> 3x3, windows of 4 (padding counts as zeros)
    for b, c, p, q in itertools.product(range(3), range(2), range(3), range(3)):
        s = sum(int(mp[b, c, h, w]) for h in range(2 * p - 1, 2 * p + 1)
                for w in range(2 * q - 1, 2 * q + 1) if 0 <= h < 4 and 0 <= w < 4)
        assert ap[b, c, p, q] == py_requant(s, int(avg.mult[0]), int(avg.shift[0]), 8, False)
        assert ap[b, c, p, q] == math.floor(s / 4 + 0.5)  # 1/4 is exact: 2**14 >> 16
    gp = env["_2"]
    for b, c in itertools.product(range(3), range(2)):
        s = int(ap[b, c].sum())
        q = g.node("_2").quant
        assert gp[b, c, 0, 0] == py_requant(s, int(q.mult[0]), int(q.shift[0]), 8, False)


def _digits(name):
    entry = models.get(name)
    ds = entry.dataset()
    x = np.array(ds.x_test, dtype=np.float32).reshape((-1,) + entry.input_shape[1:])
    return entry, x, np.asarray(ds.y_test)


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_int8_accuracy_within_one_point(name):
    entry, x, y = _digits(name)
    with torch.no_grad():
        float_acc = (entry.load()(torch.from_numpy(x)).argmax(-1).numpy() == y).mean()
    g = prepare_entry(entry, bits=8)
    int_acc = (golden.predict(g, x) == y).mean()
    assert len(y) == 360
    assert int_acc >= float_acc - 0.01, (float_acc, int_acc)


def test_mlp_full_test_split_is_fast():
    entry, x, _ = _digits("mlp-digits")
    g = prepare_entry(entry)
    model = golden.GoldenModel(g)
    xq = golden.quantize_input(g, x)
    model.run(xq)
    t0 = time.perf_counter()
    model.run(xq)
    assert time.perf_counter() - t0 < 1.0


def test_trace_and_run_float():
    entry, x, _ = _digits("cnn-digits")
    g = prepare_entry(entry)
    env = golden.run(g, golden.quantize_input(g, x[:4]), trace=True)
    assert set(env) == {n.name for n in g.nodes()}
    assert env["conv1"].shape == (4, 8, 8, 8) and env["conv1"].min() >= 0
    q, f = golden.run_float(g, x[:4])
    assert np.array_equal(q, env["output"])
    assert np.allclose(f, q * g.node("output").quant.scale)


def test_errors():
    entry = models.get("mlp-digits")
    g = prepare_entry(entry)
    from mapping.graph import trace

    with pytest.raises(golden.GoldenError, match="not quantised.*quantize"):
        golden.GoldenModel(trace(entry.load(), entry.example_input()))
    with pytest.raises(golden.GoldenError, match=r"shape \(2, 10\); expected \(batch, 64\)"):
        golden.run(g, np.zeros((2, 10), np.int64))
    with pytest.raises(golden.GoldenError, match="must be integers"):
        golden.run(g, np.zeros((2, 64)))
    with pytest.raises(golden.GoldenError, match=r"outside the 8-bit range \[-128, 127\]"):
        golden.run(g, np.full((1, 64), 200))
    with pytest.raises(golden.GoldenError, match="1 input"):
        golden.run(g)


def test_random_inputs_other_models_are_sane():
    for name in ("jsc-mlp", "resnet-block", "tiny-transformer"):
        entry = models.get(name)
        g = prepare_entry(entry)
        x = calibration_inputs(entry)[:8]
        q, f = golden.run_float(g, x)
        lo, hi = -(2 ** 7), 2**7 - 1
        assert q.min() >= lo and q.max() <= hi and q.dtype == np.int64
        with torch.no_grad():
            ref = entry.load().double()(torch.from_numpy(x).double()).numpy()
        assert np.abs(f - ref).max() < 0.06 * np.abs(ref).max(), name
