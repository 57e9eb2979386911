"""Shared check of the front-end tests: a traced graph computes its module in float64."""

import copy

import numpy as np
import torch
from torch import nn

from mapping.graph import trace
from mapping.passes import fold_batchnorm, run_float_graph
from mapping.passes.fxtrace import tracer_of


def _randomise_bn(m: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    for b in m.modules():
        if isinstance(b, nn.modules.batchnorm._BatchNorm):
            b.running_mean.copy_(torch.rand(b.num_features, generator=g) * 2 - 1)
            b.running_var.copy_(torch.rand(b.num_features, generator=g) + 0.5)
            b.weight.data.copy_(torch.rand(b.num_features, generator=g) + 0.5)
            b.bias.data.copy_(torch.rand(b.num_features, generator=g) - 0.5)
    return m.eval()


def check(m: nn.Module, *xs, tracer="torch.fx", tol=1e-9):
    """Trace ``m``; the graph (and its BN-folded form) must compute ``m`` in float64."""
    torch.manual_seed(0)
    m = _randomise_bn(m)
    g = trace(m, xs if len(xs) > 1 else xs[0])
    assert tracer_of(g)[0] == tracer
    ref = copy.deepcopy(m).double()
    with torch.no_grad():
        want = ref(*[x.double() for x in xs])
    want = list(want.values()) if isinstance(want, dict) else want
    want = [w.numpy() for w in (want if isinstance(want, (tuple, list)) else (want,))]
    for graph, t in ((g, tol), (fold_batchnorm(g), 1e-5)):
        got = run_float_graph(graph, *xs)
        got = got if isinstance(got, list) else [got]
        for o, w in zip(got, want, strict=True):
            np.testing.assert_allclose(o.reshape(w.shape), w, rtol=t, atol=t)
    return g


def ops(g):
    return [n.op for n in g.nodes()]


class Fn(nn.Module):
    def __init__(self, f, *mods):
        super().__init__()
        self.f, self.mods = f, nn.ModuleList(mods)

    def forward(self, x):
        return self.f(self, x)
