"""mapping.onnx_import: ONNX models built with onnx.helper, imported into torch and run against
the independent ONNX reference evaluator (onnx.reference.ReferenceEvaluator)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from mapping.graph import GraphError, UnsupportedOpError, trace
from mapping.onnx_import import load_onnx
from mapping.source import import_file

RNG = np.random.default_rng(0)


def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def build(nodes, inits, in_shape, out_shape=None, opset=17, path=None, name="x", out="y"):
    """A one-input one-output model; ``in_shape`` entries may be str (symbolic)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if out_shape is None:  # the checker wants a shape on the output: take the inferred one
        out_type = onnx.shape_inference.infer_shapes(model).graph.output[0].type
        model.graph.output[0].type.CopyFrom(out_type)
        if not out_type.tensor_type.HasField("shape"):
            model.graph.output[0].type.tensor_type.shape.SetInParent()
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def check(tmp_path, model, x_shape=None, atol=1e-5, traces=False):
    """Import ``model`` and compare its output with the ONNX reference on a random input."""
    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    module, shape = load_onnx(p)
    x = rand(*(x_shape or shape), scale=1.0)
    ref = ReferenceEvaluator(model).run(None, {model.graph.input[0].name: x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=atol)
    if traces:
        g = trace(module, torch.zeros(shape))
        assert g.node(g.outputs[0]).out_shape == ref.shape
    return module, shape


def node(op, ins, outs, name=None, **attrs):
    return helper.make_node(op, ins, outs, name=name or f"{op.lower()}_{outs[0]}", **attrs)


# ----------------------------------------------------------------------------- models
def test_conv_net_bn_relu_pools_gemm(tmp_path):
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn"], epsilon=1e-3),
        node("Relu", ["bn"], ["r1"]),
        node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", "w2"], ["c2"], strides=[2, 2], dilations=[1, 1]),
        node("Relu", ["c2"], ["r2"]),
        node("GlobalAveragePool", ["r2"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    inits = [init("w1", rand(4, 1, 3, 3)), init("b1", rand(4)), init("s", rand(4) + 1),
             init("bb", rand(4)), init("m", rand(4)), init("v", np.abs(rand(4)) + 0.5),
             init("w2", rand(8, 4, 3, 3)), init("wf", rand(3, 8)), init("bf", rand(3))]
    module, shape = check(tmp_path, build(nodes, inits, [1, 1, 12, 12]), traces=True)
    assert shape == (1, 1, 12, 12)
    kinds = {type(m) for m in module.modules()}
    assert {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
            nn.Linear} <= kinds
    assert not module.training


def test_symbolic_batch_is_one_and_other_batches_run(tmp_path):
    nodes = [node("Flatten", ["x"], ["f"]), node("Gemm", ["f", "w"], ["y"], transB=1)]
    model = build(nodes, [init("w", rand(5, 12))], ["N", 3, 4])
    module, shape = check(tmp_path, model, traces=True)
    assert shape == (1, 3, 4)
    check(tmp_path, model, x_shape=(4, 3, 4))


def test_conv1d_model(tmp_path):
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[5], pads=[2, 2], strides=[2]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "w2"], ["c2"], dilations=[2], pads=[1, 1]),
        node("MaxPool", ["c2"], ["p1"], kernel_shape=[2], strides=[2]),
        node("AveragePool", ["p1"], ["p2"], kernel_shape=[3], strides=[1], pads=[1, 1],
             count_include_pad=1),
        node("BatchNormalization", ["p2", "s", "bb", "m", "v"], ["bn"]),
        node("GlobalAveragePool", ["bn"], ["g"]),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", "wf", "bf"], ["y"], alpha=0.5, beta=2.0),
    ]
    inits = [init("w1", rand(4, 2, 5)), init("b1", rand(4)), init("w2", rand(6, 4, 3)),
             init("s", rand(6) + 1), init("bb", rand(6)), init("m", rand(6)),
             init("v", np.abs(rand(6)) + 0.5), init("wf", rand(6, 3)), init("bf", rand(1, 3))]
    module, _ = check(tmp_path, build(nodes, inits, [2, 2, 32]))
    kinds = {type(m) for m in module.modules()}
    assert {nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d} <= kinds


def test_mlp_clip_sigmoid_matmul_add(tmp_path):
    nodes = [
        node("MatMul", ["x", "w1"], ["mm"]), node("Add", ["b1", "mm"], ["h1"]),
        node("Clip", ["h1", "zero", "six"], ["a1"]),
        node("Gemm", ["a1", "w2", "b2"], ["h2"], transB=1),
        node("Clip", ["h2", "m1", "p1"], ["a2"]),
        node("Gemm", ["a2", "w3"], ["h3"], transB=1),
        node("Clip", ["h3", "zero"], ["a3"]),
        node("MatMul", ["a3", "w4"], ["h4"]),
        node("Sigmoid", ["h4"], ["s"]),
        node("Tanh", ["s"], ["y"]),
    ]
    inits = [init("w1", rand(6, 10)), init("b1", rand(10)), init("zero", np.float32(0)),
             init("six", np.float32(6)), init("w2", rand(8, 10, scale=3)), init("b2", rand(8)),
             init("m1", np.float32(-1)), init("p1", np.float32(1)), init("w3", rand(7, 8)),
             init("w4", rand(7, 4))]
    module, _ = check(tmp_path, build(nodes, inits, [3, 6]), traces=False)
    kinds = [type(m) for m in module.modules()]
    assert nn.ReLU6 in kinds and nn.Hardtanh in kinds and nn.ReLU in kinds
    assert kinds.count(nn.Linear) == 4  # MatMul + Add became one Linear with a bias
    g = trace(nn.Sequential(*[m for m in module.children()][:1]), torch.zeros(3, 6))
    assert [n.op for n in g.nodes()] == ["input", "linear", "output"]


def test_residual_add_and_scalar_mul_div_trace(tmp_path):
    nodes = [
        node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        node("Add", ["c2", "c1"], ["s"]),
        node("Mul", ["s", "k"], ["m"]),
        node("Div", ["m", "k"], ["d"]),
        node("AveragePool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Flatten", ["p"], ["y"]),
    ]
    inits = [init("w1", rand(3, 2, 3, 3)), init("w2", rand(3, 3, 3, 3)), init("k", np.float32(3))]
    module, shape = check(tmp_path, build(nodes, inits, [1, 2, 6, 6]), traces=True)
    ops = [n.op for n in trace(module, torch.zeros(shape)).nodes()]
    assert [o for o in ops if o in ("conv2d", "relu", "add", "avgpool2d", "flatten")] == [
        "conv2d", "relu", "conv2d", "add", "avgpool2d", "flatten"]


def test_clip_opset10_attributes(tmp_path):
    nodes = [node("Clip", ["x"], ["y"], min=0.0, max=6.0)]
    module, _ = check(tmp_path, build(nodes, [], [2, 5], opset=10))
    assert any(isinstance(m, nn.ReLU6) for m in module.modules())


def test_concat_of_two_conv_branches(tmp_path):
    nodes = [
        node("Conv", ["x", "wa"], ["a"], kernel_shape=[1, 1]),
        node("Conv", ["x", "wb"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Concat", ["a", "b"], ["c"], axis=1),
        node("Concat", ["c", "x"], ["y"], axis=-3),
    ]
    check(tmp_path, build(nodes, [init("wa", rand(2, 3, 1, 1)), init("wb", rand(4, 3, 3, 3))],
                          [1, 3, 5, 5]))


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_and_depthwise_conv(tmp_path, groups):
    nodes = [node("Conv", ["x", "w", "b"], ["y"], group=groups, pads=[1, 1, 1, 1],
                  strides=[2, 1])]
    module, _ = check(tmp_path, build(nodes, [init("w", rand(8, 4 // groups, 3, 3)),
                                              init("b", rand(8))], [1, 4, 7, 6]))
    conv = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    assert conv.groups == groups and conv.stride == (2, 1)


@pytest.mark.parametrize("op,attrs,cls", [
    ("LeakyRelu", {"alpha": 0.1}, nn.LeakyReLU),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, nn.Hardsigmoid),
    ("HardSwish", {}, nn.Hardswish),
    ("Elu", {"alpha": 0.7}, nn.ELU),
    ("Gelu", {}, nn.GELU),
    ("Gelu", {"approximate": "tanh"}, nn.GELU),
    ("Softmax", {"axis": 1}, nn.Softmax),
    ("Sigmoid", {}, nn.Sigmoid),
    ("Tanh", {}, nn.Tanh),
])
def test_activations(tmp_path, op, attrs, cls):
    module, _ = check(tmp_path, build([node(op, ["x"], ["y"], **attrs)], [], [2, 9], opset=20))
    assert any(isinstance(m, cls) for m in module.modules())


@pytest.mark.parametrize("form", ["mul_then_half", "half_then_x", "x_half_first"])
def test_erf_gelu_pattern(tmp_path, form):
    pre = [node("Div", ["x", "sqrt2"], ["d"]), node("Erf", ["d"], ["e"]),
           node("Add", ["e", "one"] if form != "half_then_x" else ["one", "e"], ["a"])]
    tail = {
        "mul_then_half": [node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"], ["y"])],
        "half_then_x": [node("Mul", ["a", "half"], ["m"]), node("Mul", ["x", "m"], ["y"])],
        "x_half_first": [node("Mul", ["x", "half"], ["h"]), node("Mul", ["h", "a"], ["y"])],
    }[form]
    inits = [init("sqrt2", np.float32(math.sqrt(2))), init("one", np.float32(1)),
             init("half", np.float32(0.5))]
    module, _ = check(tmp_path, build(pre + tail, inits, [2, 7]))
    assert [type(m) for m in module.children()] == [nn.GELU]


def test_pooling_variants(tmp_path):
    nodes = [
        node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1]),  # count_include_pad=0 is the ONNX default
        node("AveragePool", ["x"], ["b"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1], count_include_pad=1),
        node("MaxPool", ["x"], ["c"], kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1),
        node("AveragePool", ["x"], ["d"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        node("MaxPool", ["x"], ["e"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 2, 2]),  # asymmetric, but the extra end row/column is never read
        node("MaxPool", ["x"], ["f"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
        node("Flatten", ["a"], ["fa"]), node("Flatten", ["b"], ["fb"]),
        node("Flatten", ["c"], ["fc"]), node("Flatten", ["d"], ["fd"]),
        node("Flatten", ["e"], ["fe"]), node("Flatten", ["f"], ["ff"]),
        node("Concat", ["fa", "fb", "fc", "fd", "fe", "ff"], ["y"], axis=1),
    ]
    check(tmp_path, build(nodes, [], [1, 2, 7, 7]))


def test_shape_ops_and_constants(tmp_path):
    nodes = [
        helper.make_node("Constant", [], ["shp"], name="shape_const",
                         value=numpy_helper.from_array(np.array([0, -1, 2], np.int64))),
        node("Reshape", ["x", "shp"], ["r"]),                    # (1, 6, 4) -> (1, 12, 2)
        node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),         # (1, 2, 12)
        node("Unsqueeze", ["t", "ax1"], ["u"]),                  # (1, 1, 2, 12)
        node("Squeeze", ["u", "ax1"], ["s"]),                    # (1, 2, 12)
        node("Identity", ["s"], ["i"]),
        node("Dropout", ["i"], ["dr"]),
        node("Mul", ["dr", "k"], ["m"]),                         # tensor constant (12,)
        node("Sub", ["m", "two"], ["sub"]),                      # scalar
        node("Sub", ["two", "sub"], ["sub2"]),                   # scalar - tensor
        node("Div", ["sub2", "three"], ["div"]),
        node("Add", ["div", "row"], ["add"]),                    # (1, 2, 1) constant
        node("Transpose", ["add"], ["tt"], perm=[0, 2, 1]),      # (1, 12, 2)
        node("MatMul", ["add", "tt"], ["mm"]),                   # activation @ activation
        node("Flatten", ["mm"], ["f"], axis=0),                  # (1, 4)
        node("Transpose", ["f"], ["y"]),                         # default: reversed axes
    ]
    inits = [init("ax1", np.array([1], np.int64)), init("k", rand(12)),
             init("two", np.float32(2)), init("three", np.float32(3)), init("row", rand(1, 2, 1))]
    check(tmp_path, build(nodes, inits, [1, 6, 4]))


def test_squeeze_axes_attribute_opset11(tmp_path):
    nodes = [node("Unsqueeze", ["x"], ["u"], axes=[2]), node("Squeeze", ["u"], ["y"], axes=[2])]
    check(tmp_path, build(nodes, [], [2, 3], opset=11))


def test_constant_subgraph_is_folded(tmp_path):
    # The weight is computed from constants (Transpose of an initializer): folded, not an op.
    nodes = [node("Transpose", ["wt"], ["w"]), node("MatMul", ["x", "w"], ["y"])]
    module, _ = check(tmp_path, build(nodes, [init("wt", rand(4, 5))], [2, 5]), traces=True)
    assert [type(m) for m in module.children()] == [nn.Linear]


class _TorchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.view(x.size(0), -1))


class _Branches(nn.Module):
    """Grouped/depthwise conv, ReLU6, ceil-mode pooling, cat, adaptive pool, GELU, softmax."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU6(),
                               nn.AvgPool2d(3, 2, padding=1, ceil_mode=True,
                                            count_include_pad=False))
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),
                               nn.Hardswish())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 6),
                                  nn.GELU(), nn.Linear(6, 3), nn.Softmax(dim=1))

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


def _jet_tagger():
    """hls4ml-style MLP with BatchNorm1d and smooth activations."""
    return nn.Sequential(nn.Linear(16, 12), nn.BatchNorm1d(12), nn.LeakyReLU(0.2),
                         nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 8), nn.ELU(0.5),
                         nn.Linear(8, 8), nn.Hardsigmoid(), nn.Linear(8, 5), nn.Sigmoid())


def _cnn1d():
    return nn.Sequential(nn.Conv1d(2, 6, 5, stride=2, padding=2), nn.BatchNorm1d(6), nn.ReLU(),
                         nn.MaxPool1d(2), nn.Conv1d(6, 6, 3, dilation=2), nn.ReLU(),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 4))


def _shuffle_unit():
    return import_file(Path(__file__).resolve().parents[2] / "examples" / "shuffle_unit.py"
                       ).ShuffleUnit()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("make,shape,opset", [
    (_shuffle_unit, (1, 2, 6, 6), None), (_shuffle_unit, (1, 2, 6, 6), 11),  # Split, Slice
    (_TorchNet, (1, 1, 8, 8), None), (_Branches, (1, 4, 9, 9), None),
    (_Branches, (1, 4, 9, 9), 13),  # GELU as the Erf pattern, Hardswish as x * HardSigmoid(x)
    (_jet_tagger, (1, 16), None), (_cnn1d, (1, 2, 40), None),
])
def test_torch_onnx_export_roundtrip(tmp_path, make, shape, opset):
    """torch -> ONNX (the TorchScript exporter; the default one needs onnxscript) -> torch."""
    torch.manual_seed(0)
    net = make()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    buf = io.BytesIO()
    try:
        torch.onnx.export(net, (torch.zeros(shape),), buf, dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    except Exception as exc:  # e.g. the exporter needs onnxscript, which is not installed
        pytest.skip(f"torch.onnx.export does not work here: {exc}")
    p = tmp_path / "net.onnx"
    p.write_bytes(buf.getvalue())
    module, got_shape = load_onnx(p)
    assert got_shape == shape
    x = torch.randn(3, *shape[1:])
    with torch.no_grad():
        torch.testing.assert_close(module(x), net(x), rtol=1e-5, atol=1e-5)
    if make is _shuffle_unit:  # chunk, shuffle and x[:, 1:7] come back as channel selects
        ops = [n.op for n in trace(module, torch.zeros(shape)).nodes()]
        assert ops.count("select") == 4 and "transpose" not in ops
    if make is not _TorchNet:
        return
    ops = [n.op for n in trace(module, torch.zeros(shape)).nodes()]
    assert [o for o in ops if o not in ("reshape", "flatten")] == [
        "input", "conv2d", "relu", "maxpool2d", "linear", "output"]  # BN folded by the exporter


# ----------------------------------------------------------------------------- bad input
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_not_an_onnx_file(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_text("this is not a protobuf\n")
    with pytest.raises(GraphError) as e:
        load_onnx(p)
    assert "not a valid ONNX model" in one_line(e)
    with pytest.raises(GraphError) as e:
        load_onnx(tmp_path / "missing.onnx")
    assert "does not exist" in one_line(e)


def test_unsupported_op_names_node_op_and_supported(tmp_path):
    nodes = [helper.make_node("Einsum", ["x", "x"], ["y"], name="my_einsum", equation="ij,ij->ij")]
    build(nodes, [], [2, 3], path=tmp_path / "m.onnx")
    with pytest.raises(UnsupportedOpError) as e:
        load_onnx(tmp_path / "m.onnx")
    msg = one_line(e)
    assert "'my_einsum'" in msg and "(Einsum)" in msg and "Conv" in msg and "Gemm" in msg


def test_loop_is_unsupported(tmp_path):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Loop", ["n", "", "x"], ["y"], name="the_loop", body=body)]
    build(nodes, [init("n", np.array(2, np.int64))], [2, 3], path=tmp_path / "m.onnx")
    with pytest.raises(UnsupportedOpError) as e:
        load_onnx(tmp_path / "m.onnx")
    assert "'the_loop' (Loop): unsupported op" in one_line(e)


def test_two_graph_inputs_or_outputs(tmp_path):
    graph = helper.make_graph(
        [node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph), str(tmp_path / "two_in.onnx"))
    with pytest.raises(GraphError) as e:
        load_onnx(tmp_path / "two_in.onnx")
    assert "2 inputs (a, b); exactly one" in one_line(e)
    graph = helper.make_graph(
        [node("Relu", ["x"], ["y"]), node("Sigmoid", ["x"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in "yz"])
    onnx.save(helper.make_model(graph), str(tmp_path / "two_out.onnx"))
    with pytest.raises(GraphError) as e:
        load_onnx(tmp_path / "two_out.onnx")
    assert "2 outputs (y, z); exactly one" in one_line(e)


@pytest.mark.parametrize("nodes,inits,shape,match", [
    ([node("Conv", ["x", "w"], ["y"], pads=[0, 0, 1, 1])], [init("w", rand(2, 1, 3, 3))],
     [1, 1, 6, 6], "asymmetric padding"),
    ([node("Add", ["x", "c"], ["y"])], [init("c", rand(4, 1, 3))], [1, 3], "does not broadcast"),
    ([node("HardSigmoid", ["x"], ["y"])], [], [1, 3], "only torch's Hardsigmoid"),
    ([node("Conv", ["x", "w"], ["y"])], [init("w", rand(2, 1, 3, 3, 3))], [1, 1, 4, 4, 4],
     "only 1-D and 2-D"),
    ([node("Relu", ["x"], ["y"])], [], [1, "C"], "symbolic dimension"),
])
def test_bad_models_are_one_line_errors(tmp_path, nodes, inits, shape, match):
    build(nodes, inits, shape, path=tmp_path / "m.onnx")
    with pytest.raises(GraphError) as e:
        load_onnx(tmp_path / "m.onnx")
    assert match in one_line(e)


def test_input_shape_override(tmp_path):
    build([node("Relu", ["x"], ["y"])], [], ["N", "C"], path=tmp_path / "m.onnx")
    _, shape = load_onnx(tmp_path / "m.onnx", input_shape=(2, 5))
    assert shape == (2, 5)
    build([node("Relu", ["x"], ["y"])], [], [1, 4], path=tmp_path / "m.onnx")
    with pytest.raises(GraphError) as e:
        load_onnx(tmp_path / "m.onnx", input_shape=(1, 5))
    assert "does not fit" in one_line(e)
