"""concat, ceil_mode pooling and adaptive average pooling to any size: sim.golden against
independent torch references (torch's own pooling / cat on the integer tensors, and the
float function), mapping.fakequant == sim.golden, one scale for concat inputs, and the
one-line refusals of what the accelerator cannot run exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from hwgen.build.flow import FlowError, compile_model
from mapping import fakequant
from mapping.arch import preset
from mapping.passes import prepare
from sim import golden


class Net(nn.Module):
    def __init__(self, tail, n_flat):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.e1, self.e3 = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 5, 3, padding=1)
        self.tail, self.head = tail, nn.Linear(n_flat, 4)

    def forward(self, x):
        x = self.pool(torch.relu(self.c0(x)))
        x = torch.cat([torch.relu(self.e1(x)), self.e3(x)], 1)  # one relu'd, one signed
        return self.head(torch.flatten(self.tail(x), 1))


TAILS = {  # tail, its output size on the 4x4 concat
    "none": (nn.Identity(), 4 * 4),
    "avg-ceil": (nn.AvgPool2d(3, 2, ceil_mode=True), 2 * 2),
    "adaptive-3x5": (nn.AdaptiveAvgPool2d((3, 5)), 3 * 5),
    "adaptive-7x7": (nn.AdaptiveAvgPool2d((7, 7)), 7 * 7),
    "max-ceil-pad": (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), 3 * 3),
}


def _graph(tail):
    mod, hw = TAILS[tail]
    torch.manual_seed(0)
    m = Net(mod, 11 * hw).eval()
    g = prepare(m, torch.zeros(1, 3, 10, 10), torch.randn(32, 3, 10, 10))
    x = golden.quantize_input(g, torch.randn(6, 3, 10, 10))
    return m, g, x


@pytest.mark.parametrize("tail", list(TAILS))
def test_golden_vs_torch_and_fakequant(tail):
    m, g, x = _graph(tail)
    env = golden.run(g, x, trace=True)
    fq = fakequant.FakeQuantModel(g)(torch.from_numpy(x), trace=True)
    for k, v in env.items():
        np.testing.assert_array_equal(v, fq[k].numpy(), err_msg=k)
    # concat: torch.cat of the integer inputs; its inputs share one scale
    cat = g.node("cat")
    assert len({g.node(i).quant.scale for i in cat.inputs}) == 1
    ref = torch.cat([torch.from_numpy(env[i]) for i in cat.inputs], 1).numpy()
    np.testing.assert_array_equal(env["cat"], ref)
    # ceil_mode max pool: torch's own
    pool = torch.from_numpy(env[g.node("pool").inputs[0]]).double()
    np.testing.assert_array_equal(env["pool"], F.max_pool2d(pool, 3, 2, ceil_mode=True).numpy())
    assert env["pool"].shape[2:] == (4, 4)
    if tail == "none":
        return
    t = g.node("tail")
    xin = torch.from_numpy(env[t.inputs[0]]).double()
    if tail.startswith("max"):
        ref = F.max_pool2d(xin, 3, 2, padding=1, ceil_mode=True)
        np.testing.assert_array_equal(env["tail"], ref.numpy())
        return
    # average: torch's float average of the integers, requantised: within half a step
    ref = (F.avg_pool2d(xin, 3, 2, ceil_mode=True) if tail == "avg-ceil"
           else F.adaptive_avg_pool2d(xin, TAILS[tail][0].output_size))
    assert env["tail"].shape == tuple(ref.shape)
    assert np.abs(env["tail"] - ref.numpy()).max() <= 0.5 + 1e-3 * np.abs(ref.numpy()).max()


def test_float_agreement():
    m, g, _ = _graph("adaptive-3x5")
    xs = torch.randn(8, 3, 10, 10)
    _, y = golden.run_float(g, xs)
    want = m(xs).detach().numpy()
    assert np.abs(y - want).max() < 0.05 * np.abs(want).max()


@pytest.mark.parametrize("tail, words", [("avg-ceil", "ceil_mode"),
                                         ("adaptive-3x5", "4x4 -> 3x5")])
def test_refused_on_the_accelerator(tail, words, tmp_path):
    _, g, _ = _graph(tail)
    with pytest.raises(FlowError, match=words) as exc:
        compile_model(g, preset("edge-8x8"), tmp_path / "b")
    assert "'tail'" in str(exc.value) and "\n" not in str(exc.value)
