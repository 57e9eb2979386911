"""Front end forms (torch.fx path): each traced graph, run by ``run_float_graph`` (also
after ``fold_batchnorm``), equals the torch module's own float64 output."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trace_check import Fn, check, ops

from mapping.graph import ACT_FNS, UnsupportedOpError, trace
from mapping.passes import fold_batchnorm

X4 = torch.randn(2, 4, 9, 8)
X3 = torch.randn(2, 4, 20)


@pytest.mark.parametrize("mod,fn", [
    (nn.ReLU6(), "relu6"), (nn.Hardtanh(-0.5, 0.7), "hardtanh"), (nn.LeakyReLU(0.2), "leaky_relu"),
    (nn.Sigmoid(), "sigmoid"), (nn.Tanh(), "tanh"), (nn.SiLU(), "silu"),
    (nn.Hardswish(), "hardswish"), (nn.Hardsigmoid(), "hardsigmoid"), (nn.ELU(0.7), "elu"),
])
def test_activation_modules(mod, fn):
    g = check(nn.Sequential(nn.Conv2d(4, 4, 3), mod), X4 * 4)
    act = [n for n in g.nodes() if n.op == "act"]
    assert len(act) == 1 and act[0].attrs["fn"] == fn and fn in ACT_FNS


@pytest.mark.parametrize("f,fn", [
    (lambda s, x: F.relu6(x), "relu6"), (lambda s, x: F.hardtanh(x, -2.0, 1.0), "hardtanh"),
    (lambda s, x: x.clamp(-1.0, 0.5), "clamp"), (lambda s, x: torch.clamp(x, max=0.3), "clamp"),
    (lambda s, x: F.leaky_relu(x, 0.3), "leaky_relu"), (lambda s, x: torch.sigmoid(x), "sigmoid"),
    (lambda s, x: x.sigmoid(), "sigmoid"), (lambda s, x: x.tanh(), "tanh"),
    (lambda s, x: torch.tanh(x), "tanh"), (lambda s, x: F.silu(x), "silu"),
    (lambda s, x: F.hardswish(x), "hardswish"), (lambda s, x: F.hardsigmoid(x), "hardsigmoid"),
    (lambda s, x: F.elu(x, 0.5), "elu"),
])
def test_activation_functions(f, fn):
    g = check(Fn(f), X4 * 4)
    assert [n.attrs["fn"] for n in g.nodes() if n.op == "act"] == [fn]


def test_clamp_min_zero_is_relu():
    assert "relu" in ops(check(Fn(lambda s, x: x.clamp(min=0)), X4))


def test_conv1d_bn1d_pools_as_height_one():
    m = nn.Sequential(nn.Conv1d(4, 6, 5, stride=2, padding=1, dilation=2), nn.BatchNorm1d(6),
                      nn.ReLU(), nn.MaxPool1d(2, ceil_mode=True), nn.Conv1d(6, 6, 3, groups=3),
                      nn.AvgPool1d(2, padding=1), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                      nn.Linear(6, 3))
    g = check(m, X3)
    x = g.node(g.inputs[0])
    assert x.out_shape == (2, 4, 1, 20) and x.attrs["torch_shape"] == (2, 4, 20)
    conv = g.node("_0")
    assert conv.attrs == {"kernel": (1, 5), "stride": (1, 2), "padding": (0, 1),
                          "dilation": (1, 2)} and conv.params["weight"].shape == (6, 4, 1, 5)
    assert "reshape" not in ops(g)
    assert g.node("_3").attrs["ceil_mode"] is True


def test_conv1d_model_output_stays_lifted():
    g = check(nn.Sequential(nn.Conv1d(4, 2, 3), nn.Tanh()), X3)
    out = g.node("output")
    assert out.out_shape == (2, 2, 1, 18) and out.attrs["torch_shape"] == (2, 2, 18)


def test_jet_tagger_linear_bn1d_folds_into_linear():
    m = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5),
                      nn.Softmax(dim=1))
    g = check(m, torch.randn(8, 16))
    folded = fold_batchnorm(g)
    assert "batchnorm2d" in ops(g) and "batchnorm2d" not in ops(folded)
    assert folded.node("_0").attrs["folded_bn"] == "_1"


def test_non_square_grouped_depthwise_conv():
    m = nn.Sequential(nn.Conv2d(4, 8, (3, 1), stride=(2, 1), padding=(1, 0), groups=2),
                      nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                      nn.BatchNorm2d(8), nn.Conv2d(8, 4, (1, 3), padding="same", dilation=(1, 2)))
    g = check(m, X4)
    c0, c2, c4 = g.node("_0"), g.node("_2"), g.node("_4")
    assert c0.attrs == {"kernel": (3, 1), "stride": (2, 1), "padding": (1, 0), "dilation": 1,
                        "groups": 2} and c0.params["weight"].shape == (8, 2, 3, 1)
    assert c2.attrs["groups"] == 8 and c2.params["weight"].shape == (8, 1, 3, 3)
    assert c4.attrs["padding"] == (0, 2) and "groups" not in c4.attrs
    assert "batchnorm2d" not in ops(fold_batchnorm(g))


def test_ceil_mode_and_adaptive_non_divisor():
    m = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 2, 1, ceil_mode=True),
                      nn.AdaptiveAvgPool2d((2, 3)), nn.AdaptiveAvgPool2d(5))
    g = check(m, torch.randn(2, 3, 11, 13))
    assert g.node("_0").attrs["ceil_mode"] is True and g.node("_0").out_shape == (2, 3, 6, 7)
    a2 = g.node("_2").attrs
    assert a2["adaptive"] and a2["output_size"] == (2, 3) and "kernel" not in a2
    assert g.node("_3").attrs["output_size"] == (5, 5)


def test_adaptive_divisible_keeps_kernel_stride():
    g = check(nn.Sequential(nn.AdaptiveAvgPool2d((3, 2))), X4)
    assert g.node("_0").attrs["kernel"] == (3, 4) == g.node("_0").attrs["stride"]


def test_ceil_mode_without_effect_is_not_recorded():
    g = check(nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), torch.randn(1, 2, 8, 8))
    assert "ceil_mode" not in g.node("_0").attrs


class FunctionalNet(nn.Module):
    """Functional BN with buffers, F.conv2d / F.linear with constant weights, mean, cat."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4, 3, 3) * 0.3)
        self.register_buffer("mu", torch.randn(6))
        self.register_buffer("var", torch.rand(6) + 0.5)
        self.gamma = nn.Parameter(torch.rand(6) + 0.5)
        self.fc = nn.Parameter(torch.randn(5, 12) * 0.3)

    def forward(self, x):
        y = F.conv2d(x, self.w, None, 1, 1)
        y = F.batch_norm(y, self.mu, self.var, self.gamma, None, False, 0.1, 1e-3)
        a = y.mean((2, 3))
        b = y.mean(dim=(-1, -2), keepdim=True).flatten(1)
        return F.linear(torch.cat([a, b], 1), self.fc * 0.5)


def test_functional_constants_mean_cat():
    g = check(FunctionalNet(), X4)
    assert ops(g).count("avgpool2d") == 2 and "concat" in ops(g)
    assert g.node("cat").attrs["dim"] == 1
    assert "batchnorm2d" not in ops(fold_batchnorm(g))


def test_channel_shuffle_and_concat():
    def f(s, x):
        a, b = s.mods[0](x), s.mods[1](x)
        y = torch.cat((a, b), dim=1)
        n, c, h, w = y.size()
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        return y
    g = check(Fn(f, nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)), X4)
    assert ops(g)[-3:] == ["concat", "select", "output"]  # the shuffle: one channel select


def test_squeeze_excitation_broadcast_mul():
    def f(s, x):
        z = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(s.mods[0](z))
    check(Fn(f, nn.Conv2d(4, 4, 1)), X4)


def test_1d_concat_and_residual_stay_lifted():
    def f(s, x):
        a = s.mods[0](x)
        return torch.cat([a, F.silu(a) + a], dim=-1).flatten(1)
    g = check(Fn(f, nn.Conv1d(4, 4, 3, padding=1)), X3)
    assert g.node("cat").attrs["dim"] == 3 and "reshape" not in ops(g)


def test_1d_layer_after_transpose_reads_through_reshape():
    def f(s, x):
        return s.mods[0](x.transpose(1, 2)).transpose(1, 2)
    g = check(Fn(f, nn.Conv1d(4, 3, 3)), torch.randn(2, 20, 4))
    assert ops(g).count("reshape") == 2


@pytest.mark.parametrize("f,needle", [
    (lambda s, x: x - 1.0, "sub"),
    (lambda s, x: x[:, :, :2], "slicing"),
    (lambda s, x: x.mean(1), "mean over dims (1,)"),
    (lambda s, x: torch.exp(x), "exp"),
])
def test_unsupported_is_one_line(f, needle):
    with pytest.raises(UnsupportedOpError) as exc:
        trace(Fn(f), X4)
    msg = str(exc.value)
    assert needle in msg and "supported:" in msg and "\n" not in msg and "node '" in msg
