"""mapping.passes.channel_layout: shuffles stored permuted. Reference: the same graph without
the pass (sim.golden on the unlowered quantised graph; torch for the float graph). Two
ShuffleNetV2 units in a row (shuffle, then chunk of the shuffled tensor) need no copy per
channel; a tensor read in logical order (flatten, the output, an add of two orders) is
gathered back."""

import numpy as np
import torch
from torch import nn

from hwgen.build.movement import channel_runs
from mapping.graph import trace
from mapping.passes import fold_batchnorm, fuse_activations, lower, quantize, run_float_graph
from mapping.passes.channel_layout import store_permuted
from sim import golden


def _shuffle(x, groups):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class TwoUnits(nn.Module):
    """stem -> 2 x (chunk, branch: 1x1, depthwise 3x3, 1x1; concat; shuffle) -> + skip of
    the stem (an add of two channel orders) -> 1x1 conv -> flatten -> linear."""

    def __init__(self, c=8):
        super().__init__()
        self.stem = nn.Conv2d(2, c, 3, padding=1)
        self.units = nn.ModuleList(nn.Sequential(
            nn.Conv2d(c // 2, c // 2, 1), nn.ReLU(),
            nn.Conv2d(c // 2, c // 2, 3, padding=1, groups=c // 2), nn.BatchNorm2d(c // 2),
            nn.Conv2d(c // 2, c // 2, 1), nn.ReLU()) for _ in range(2))
        self.head = nn.Conv2d(c, 4, 1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        x = s
        for u in self.units:
            a, b = x.chunk(2, dim=1)
            x = _shuffle(torch.cat((a, u(b)), 1), 2)
        x = torch.relu(x + s)
        return self.fc(torch.flatten(self.head(x), 1))


def _graphs():
    torch.manual_seed(0)
    m = TwoUnits().eval()
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(16, 2, 4, 4)
    return m, x, fuse_activations(fold_batchnorm(trace(m, x[:1])))


def test_float_graph_unchanged():
    m, x, g = _graphs()
    with torch.no_grad():
        want = m.double()(x.double()).numpy()
    np.testing.assert_allclose(run_float_graph(lower(g), x), want, rtol=1e-9, atol=1e-9)


def test_integers_unchanged_and_shuffles_cost_no_copy_per_channel():
    _, x, g = _graphs()
    q = quantize(g, x)
    low = lower(q)
    xi = golden.quantize_input(q, x.numpy())
    np.testing.assert_array_equal(golden.run(low, xi), golden.run(q, xi))
    selects = [n for n in low.nodes() if n.op == "select"]
    copies = {n.name: len(channel_runs(n.attrs["index"])) for n in selects}
    # no shuffle left; each chunk piece is at most 2 runs; the add of the stem (logical
    # order) and the shuffled tensor gathers the latter back: one select of 8 channels
    assert not any("view" in n for n in copies)
    restored = [n for n in copies if n.endswith("_logical")]
    assert len(restored) == 1 and copies[restored[0]] == 8
    assert all(c <= 2 for n, c in copies.items() if n not in restored)


def test_graph_without_selects_is_unchanged():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)).eval()
    g = fuse_activations(trace(m, torch.zeros(1, 2, 4, 4)))
    out = store_permuted(g)
    assert [(n.name, n.op) for n in out.nodes()] == [(n.name, n.op) for n in g.nodes()]
    for n in g.compute_nodes() or [n for n in g.nodes() if "weight" in n.params]:
        np.testing.assert_array_equal(out.node(n.name).params["weight"], n.params["weight"])
