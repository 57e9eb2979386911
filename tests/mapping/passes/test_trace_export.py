"""torch.export front end: the fallback when fx cannot trace, ExportedPrograms passed
directly (default and core-ATen decomposed IR); graphs checked against torch's output."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from trace_check import _randomise_bn, check, ops

from mapping.graph import GraphError, UnsupportedOpError, trace
from mapping.passes import fold_batchnorm, run_float_graph
from mapping.passes.fxtrace import tracer_of


class OptionalArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x, mask=None, scale: float = 1.0):
        y = F.relu6(self.bn(self.conv(x)))
        if mask is not None:
            y = y * mask
        return y.mean((2, 3)) * scale


class ShapeBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 4), nn.Linear(8, 4)

    def forward(self, x):
        if x.shape[-1] > 4:  # data-dependent Python fx cannot trace
            return torch.tanh(self.a(x))
        return self.b(x)


class VarArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, *args):
        return F.silu(self.fc(args[0]))


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        y.sigmoid_()  # fx records an unused in-place call: must not be dropped
        return y


class HFStyle(nn.Module):
    """Keyword-heavy forward returning a dict, like Hugging Face models."""

    def __init__(self):
        super().__init__()
        self.proj, self.norm = nn.Linear(8, 8), nn.LayerNorm(8)

    def forward(self, inputs_embeds=None, attention_mask=None, output_hidden=False):
        h = self.norm(F.gelu(self.proj(inputs_embeds)))
        if attention_mask is None:
            attention_mask = torch.ones(h.shape[:2])
        return {"last_hidden_state": torch.softmax(h @ h.transpose(1, 2), dim=-1) @ h}


@pytest.mark.parametrize("m,x,why", [
    (OptionalArgs(), torch.randn(2, 3, 8, 8), "optional arguments"),
    (ShapeBranch(), torch.randn(2, 8), "could not trace"),
    (VarArgs(), torch.randn(2, 6), "*args"),
    (InPlace(), torch.randn(2, 3, 5, 5), "sigmoid_"),
    (HFStyle(), torch.randn(2, 5, 8), "optional arguments"),
])
def test_fallback_to_export(m, x, why):
    g = check(m, x, tracer="torch.export", tol=1e-6)
    assert why in tracer_of(g)[1]


def test_export_names_follow_module_paths():
    g = check(OptionalArgs(), torch.randn(1, 3, 6, 6), tracer="torch.export")
    assert {"conv", "bn"} <= {n.name for n in g.nodes()}
    assert "batchnorm2d" not in ops(fold_batchnorm(g))


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)
        self.c2, self.b2 = nn.Conv2d(4, 6, (3, 1), groups=2, padding=(1, 0)), nn.BatchNorm2d(6)
        self.l, self.ln = nn.Linear(12, 6), nn.LayerNorm(6)

    def forward(self, x, y):
        x = F.max_pool1d(F.relu(self.b1(self.c1(x))), 2)
        x = F.adaptive_avg_pool1d(F.avg_pool1d(x, 2, ceil_mode=True), 3).flatten(1)
        y = F.max_pool2d(F.relu6(self.b2(self.c2(y))), 2, ceil_mode=True)
        y = F.adaptive_avg_pool2d(torch.sigmoid(y), (2, 3)).mean((2, 3))
        return torch.softmax(self.ln(self.l(x)) + torch.cat([y, y], 1)[:, :6] * 0 + y, -1)


class MixedNoSlice(Mixed):
    def forward(self, x, y):
        x = F.max_pool1d(F.relu(self.b1(self.c1(x))), 2)
        x = F.adaptive_avg_pool1d(F.avg_pool1d(x, 2, ceil_mode=True), 3).flatten(1)
        y = F.max_pool2d(F.relu6(self.b2(self.c2(y))), 2, ceil_mode=True)
        y = F.adaptive_avg_pool2d(torch.tanh(y), (2, 3)).mean((2, 3))
        return torch.softmax(self.ln(self.l(x)) + y, -1), torch.cat([y, F.elu(y)], 1)


XS = (torch.randn(2, 3, 20), torch.randn(2, 4, 9, 8))


@pytest.mark.parametrize("decompose", [False, True])
def test_exported_program_directly(decompose):
    m = _randomise_bn(MixedNoSlice())
    ep = torch.export.export(m, XS, strict=False)
    if decompose:
        ep = ep.run_decompositions()
    g = trace(ep)
    assert tracer_of(g) == ("torch.export", None)
    with torch.no_grad():
        want = [w.double().numpy() for w in m(*XS)]
    for graph in (g, fold_batchnorm(g)):
        got = run_float_graph(graph, *XS)
        for o, w in zip(got, want, strict=True):
            np.testing.assert_allclose(o.reshape(w.shape), w, rtol=1e-5, atol=1e-5)
    assert "batchnorm2d" not in ops(fold_batchnorm(g))
    assert ops(g).count("conv2d") == 2 and "linear" in ops(g)
    fx_graph = trace(m, XS)
    assert sorted(ops(fx_graph)) == sorted(ops(g))
    assert g.node(g.inputs[0]).out_shape == (2, 3, 1, 20)


def test_exported_program_example_input_must_match():
    ep = torch.export.export(MixedNoSlice().eval(), XS, strict=False)
    trace(ep, XS)
    with pytest.raises(GraphError, match="do not match"):
        trace(ep, (torch.randn(2, 3, 21), XS[1]))


def test_export_channel_slice_and_unsupported_slice():
    g = check(Mixed(), *XS, tol=1e-6)  # x[:, :6]: a channel select (fx traces it now)
    assert [n.attrs["index"] for n in g.nodes() if n.op == "select"] == [tuple(range(6))]

    class SliceRows(Mixed):
        def forward(self, x, y):
            return super().forward(x, y)[:1, :6]

    with pytest.raises(UnsupportedOpError) as exc:
        trace(SliceRows(), XS)  # slicing the batch dim
    assert "slicing a tensor" in str(exc.value) and "x[:, a:b]" in str(exc.value)


class ValueBranch(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


def test_value_dependent_control_flow_is_a_clear_error():
    with pytest.raises(UnsupportedOpError) as exc:
        trace(ValueBranch(), torch.randn(1, 4))
    msg = str(exc.value)
    assert "torch.fx could not trace" in msg and "torch.export failed too" in msg
    assert "\n" not in msg


def test_wrong_input_shape_through_export_path():
    with pytest.raises(GraphError, match=r"does not fit ShapeBranch"):
        trace(ShapeBranch(), torch.randn(2, 7))
