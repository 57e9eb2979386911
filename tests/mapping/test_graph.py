"""mapping.graph: fx tracing of the zoo and of small modules, the graph API, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import models
from mapping.graph import DataflowGraph, GraphError, Node, UnsupportedOpError, trace
from mapping.loopnest import LoopNest


def shapes_by_torch(module: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """Output shape of every leaf module, by forward hooks (independent of fx)."""
    out = {}
    hooks = [m.register_forward_hook(
        lambda _m, _i, o, name=name: out.__setitem__(name.replace(".", "_"), tuple(o.shape)))
        for name, m in module.named_modules() if not list(m.children())]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return out


@pytest.mark.parametrize("name", models.names())
def test_every_zoo_model_traces(name):
    entry = models.get(name)
    model = entry.build(0).eval()
    x = entry.example_input()
    g = trace(model, x)
    assert g.inputs and g.outputs
    with torch.no_grad():
        y = model(x)
    assert g.node(g.outputs[0]).out_shape == tuple(y.shape)
    ref = shapes_by_torch(model, x)
    for node in g.nodes():
        if node.name in ref:
            assert node.out_shape == ref[node.name], node.name
    n_params = sum(p.numel() for p in model.parameters())
    bn_buffers = sum(m.running_mean.numel() * 2 for m in model.modules()
                     if isinstance(m, nn.BatchNorm2d))
    assert sum(n.param_count for n in g.nodes()) == n_params + bn_buffers


def test_resnet18_macs_closed_form():
    g = trace(models.get("resnet18").build(0).eval(), torch.zeros(1, 3, 224, 224))
    # published ResNet-18 figure: 1.814 GMACs (conv + fc, no BN/add)
    assert g.total_macs == pytest.approx(1.814e9, rel=2e-3)
    convs = [n for n in g.nodes() if n.op == "conv2d"]
    assert len(convs) == 20 and sum(n.op == "batchnorm2d" for n in g.nodes()) == 20
    pool = [n for n in g.nodes() if n.op == "avgpool2d"][0]
    assert pool.attrs["kernel"] == (7, 7) and pool.out_shape == (1, 512, 1, 1)


def test_tiny_transformer_ops():
    g = trace(models.get("tiny-transformer").build(0).eval(), torch.zeros(1, 16, 32))
    ops = [n.op for n in g.nodes()]
    for op in ("matmul", "mul", "softmax", "layernorm", "gelu", "transpose", "reshape", "add"):
        assert op in ops
    mm = g.node("matmul")
    assert mm.in_shapes == [(1, 2, 16, 16), (1, 2, 16, 16)]
    assert g.node("mul").attrs["scalar"] == pytest.approx(0.25)
    assert g.node("softmax").attrs["dim"] == 3
    assert g.node("transpose").attrs["perm"] == (0, 2, 1, 3)


class Misc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d((2, 1))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = self.drop(self.conv(x))
        y = F.relu(y + y)
        y = self.pool(y).permute(0, 2, 3, 1)
        y = y.reshape(y.size(0), -1)
        return self.fc(y) / 2.0


def test_small_module_api():
    x = torch.randn(1, 2, 8, 6)
    g = trace(Misc(), x)
    names = [n.name for n in g.nodes()]
    assert "drop" not in names  # dropout elided
    assert names[0] == "x" and names[-1] == "output"
    assert g.inputs == ["x"] and g.outputs == ["output"]
    conv = g.node("conv")
    assert conv.op == "conv2d" and "bias" not in conv.params
    assert conv.attrs == {"kernel": 3, "stride": 2, "padding": 1, "dilation": 1}
    add = g.node("add")
    assert add.inputs == ["conv", "conv"]
    assert g.nx.edges["conv", "add"]["args"] == [0, 1] and g.nx.edges["conv", "add"]["arg"] == 0
    pool = g.node("pool")
    assert pool.op == "avgpool2d" and pool.attrs["kernel"] == (2, 3) and pool.out_shape == (1, 4, 2, 1)
    assert g.node("permute").attrs["perm"] == (0, 2, 3, 1)
    view = g.node("reshape")
    assert view.op == "reshape" and view.inputs == ["permute"] and view.out_shape == (1, 8)
    div = g.node("truediv")
    assert div.op == "mul" and div.attrs["scalar"] == 0.5
    assert g.consumers("conv") == ["add"]
    assert g.node("fc").macs == 8 * 3 and conv.macs == 4 * 4 * 3 * 2 * 9  # K * P * Q * C * R * S
    assert g.compute_nodes() == []  # no nests before lowering
    for node in g.nodes():
        for src in node.inputs:
            assert g.nx.has_edge(src, node.name)


def test_topological_order_is_deterministic():
    g1 = trace(models.get("resnet-block").build(0).eval(), torch.zeros(1, 16, 16, 16))
    g2 = trace(models.get("resnet-block").build(0).eval(), torch.zeros(1, 16, 16, 16))
    order = [n.name for n in g1.nodes()]
    assert order == [n.name for n in g2.nodes()]
    pos = {n: i for i, n in enumerate(order)}
    for u, v in g1.nx.edges:
        assert pos[u] < pos[v]


def test_copy_is_deep():
    g = trace(models.get("mlp-digits").build(0).eval(), torch.zeros(1, 64))
    h = g.copy()
    h.node("fc1").params["weight"][0, 0] = 99.0
    h.node("fc1").attrs["fused_relu"] = True
    h.bypass("relu1")
    assert g.node("fc1").params["weight"][0, 0] != 99.0
    assert "fused_relu" not in g.node("fc1").attrs and "relu1" in g


def test_trace_does_not_touch_module():
    m = models.get("resnet-block").build(0)  # train mode
    before = m.bn1.running_mean.clone()
    trace(m, torch.randn(4, 16, 16, 16))
    assert torch.equal(before, m.bn1.running_mean) and m.training


def test_summary_table():
    g = trace(models.get("cnn-digits").build(0).eval(), torch.zeros(1, 1, 8, 8))
    text = g.summary()
    lines = text.splitlines()
    assert lines[0].split() == ["name", "op", "inputs", "output", "params", "MACs", "quant"]
    conv2 = next(line for line in lines if line.startswith("conv2 "))
    assert "1x16x8x8" in conv2 and "1,168" in conv2 and "73,728" in conv2
    assert lines[-1].startswith("9 nodes, 3,818 parameters, 80,896 MACs")


def test_compute_nodes_by_nest():
    g = DataflowGraph([Node("x", "input", out_shape=(1, 4)),
                       Node("y", "output", inputs=["x"], out_shape=(1, 4))])
    g.node("y").nest = LoopNest.gemm(1, 4, 4)
    assert [n.name for n in g.compute_nodes()] == ["y"]


# ------------------------------------------------------------------ errors
class Sig(nn.Module):  # torch.exp: no node of the flow computes it
    def forward(self, x):
        return torch.exp(x)


class TanhMod(nn.Module):  # nn.Softplus: not an op of the flow
    def __init__(self):
        super().__init__()
        self.act = nn.Softplus()

    def forward(self, x):
        return self.act(x)


def test_unsupported_function_message():
    with pytest.raises(UnsupportedOpError) as exc:
        trace(Sig(), torch.zeros(1, 4))
    msg = str(exc.value)
    assert "'exp'" in msg and "exp" in msg.split("unsupported")[1]
    assert "supported:" in msg and "nn.Linear" in msg and "matmul" in msg


def test_unsupported_module_message():
    with pytest.raises(UnsupportedOpError, match=r"node 'act'.*Softplus.*supported: .*nn.Conv2d"):
        trace(TanhMod(), torch.zeros(1, 4))


@pytest.mark.parametrize("kwargs,needle", [
    ({"padding": 1, "padding_mode": "reflect"}, "padding_mode='reflect'"),
])
def test_unsupported_conv_variants(kwargs, needle):
    m = nn.Sequential(nn.Conv2d(4, 4, 3, **kwargs))
    with pytest.raises(UnsupportedOpError) as exc:
        trace(m, torch.zeros(1, 4, 8, 8))
    assert needle in str(exc.value) and "node '_0'" in str(exc.value)


def test_wrong_input_shape_linear():
    entry = models.get("mlp-digits")
    with pytest.raises(GraphError) as exc:
        trace(entry.build(0).eval(), torch.zeros(1, 10))
    msg = str(exc.value)
    assert "(1, 10)" in msg and "(batch, ..., 64)" in msg and "MlpDigits" in msg


def test_wrong_input_shape_conv():
    with pytest.raises(GraphError, match=r"\(1, 3, 8, 8\).*\(batch, 1, H, W\)"):
        trace(models.get("cnn-digits").build(0).eval(), torch.zeros(1, 3, 8, 8))


def test_wrong_input_count_and_type():
    with pytest.raises(GraphError, match="takes 1 input"):
        trace(Sig(), (torch.zeros(1), torch.zeros(1)))
    with pytest.raises(GraphError, match="torch.nn.Module"):
        trace(lambda x: x, torch.zeros(1))


def test_graph_lookup_errors():
    g = trace(nn.Sequential(nn.ReLU()), torch.zeros(1, 3))
    with pytest.raises(GraphError, match="no node named 'nope'"):
        g.node("nope")
    with pytest.raises(GraphError, match="unknown op"):
        DataflowGraph([Node("a", "sigmoid")])
    with pytest.raises(GraphError, match="does not exist"):
        DataflowGraph([Node("a", "relu", inputs=["b"])])


def test_hwgen_graph_cli_prints_table(capsys):
    from hwgen.cli import main

    assert main(["graph", "mlp-digits"]) == 0
    out = capsys.readouterr().out
    assert "fc1     linear  x       1x64    4,160   4,096" in out
    assert main(["graph", "mlp-digits", "--quantize", "--bits", "4"]) == 0
    out = capsys.readouterr().out
    assert "linear+relu" in out and "a4 w4" in out and "gemm M=1 N=64 K=64" in out
    assert main(["graph", "mlp-digits", "--quantize", "--bits", "1"]) == 2
    assert "bits = 1 is not supported" in capsys.readouterr().err
