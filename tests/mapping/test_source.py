"""``mapping.source``: your own model from ``file.py:NAME``, ``.pt2`` and ``.onnx``, its
options (--input-shape, --weights, --calib) and one-line errors for every bad input.

References are independent of the loader: the same module built directly with torch (same
seed), numpy for an ONNX MLP, closed-form max-abs calibration for the input scale. Data
files must never execute code: pickles with a side effect are refused and the side
effect is checked not to happen."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mapping.graph import GraphError, trace
from mapping.passes import prepare_entry
from mapping.source import (
    ModelSource,
    SourceError,
    SourceSpec,
    is_source_spec,
    load_source,
    parse_input_shape,
)

ROOT = Path(__file__).resolve().parents[2]
LENET = ROOT / "examples" / "lenet5.py"

MODELS = textwrap.dedent("""
    import torch
    from torch import nn
    from helper_layers import Tiny          # a neighbour module of the user's file

    class NeedsArgs(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = nn.Linear(4, width)

    class NotAModule:
        pass

    instance = Tiny()
    NUMBER = 3

    def factory():
        return Tiny()

    def factory_with_example():
        return Tiny(), torch.ones(1, 4)

    def factory_of_text():
        return "a model"

    def broken():
        raise RuntimeError("cannot build today")
""")
HELPER = textwrap.dedent("""
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch_relu(self.fc1(x)))

    def torch_relu(x):
        return x.clamp(min=0)
""")


class Marker:
    """Unpickling this writes a file: proof that a data file executed code."""

    path = ""

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "executed"))


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


@pytest.fixture()
def user_dir(tmp_path):
    (tmp_path / "mymodels.py").write_text(MODELS)
    (tmp_path / "helper_layers.py").write_text(HELPER)
    return tmp_path


def reference_tiny(seed: int = 0):
    """Tiny's layers built directly, the way load_source promises: torch.manual_seed(seed)
    first, then the constructor's layers in order."""
    torch.manual_seed(seed)
    w1 = nn.Linear(4, 8)
    w2 = nn.Linear(8, 3)
    return w1, w2


def test_specifiers_are_told_from_zoo_names():
    assert is_source_spec("a/b.py:Net") and is_source_spec("m.pt2") and is_source_spec("m.onnx")
    assert is_source_spec("file.py")  # then an error asks for NAME
    assert not is_source_spec("mlp-digits") and not is_source_spec("resnet18")


def test_input_shape_parsing():
    assert parse_input_shape("1,3,32,32") == (1, 3, 32, 32)
    assert parse_input_shape("1x16") == (1, 16)
    assert parse_input_shape(None) is None
    for bad in ("1,a,3", "32", "1,0,4", ""):
        with pytest.raises(SourceError) as e:
            parse_input_shape(bad)
        assert "positive integers, batch first" in one_line(e)
    with pytest.raises(SourceError) as e:
        parse_input_shape("4,1,32,32")
    assert "batch (first) dimension must be 1" in one_line(e)


def test_class_instance_and_factories_build_the_same_model(user_dir):
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    fc1, fc2 = reference_tiny(seed=0)
    want = fc2(fc1(x).clamp(min=0)).detach()
    for name in ("factory", "factory_with_example"):
        src = load_source(f"{user_dir}/mymodels.py:{name}", input_shape="1,4")
        assert src.input_shape == (1, 4) and src.input_kind == "normal"
        assert src.dataset() is None and "accuracy" in src.calibration_warning
        with torch.no_grad():
            torch.testing.assert_close(src.load()(x), want)
        assert not src.load().training
    # the factory's example input fixes the shape and is example_input(0)
    src = load_source(f"{user_dir}/mymodels.py:factory_with_example")
    assert src.input_shape == (1, 4)
    torch.testing.assert_close(src.example_input(), torch.ones(1, 4))
    assert src.example_input(1).shape == (1, 4)
    # an instance is used as it is (whatever the seed)
    inst = load_source(f"{user_dir}/mymodels.py:instance", input_shape="1,4", seed=5)
    assert isinstance(inst.load(), nn.Module)
    # the lenet example: a class instantiated with no arguments
    src = load_source(f"{LENET}:Net", input_shape="1,1,32,32")
    assert src.name == "lenet5.Net" and type(src.load()).__name__ == "Net"
    g = trace(src.load(), src.example_input())
    assert g.node("conv1").out_shape == (1, 6, 28, 28)


def test_file_without_name_lists_the_models(user_dir):
    with pytest.raises(SourceError) as e:
        load_source(str(LENET))
    msg = one_line(e)
    assert "lenet5.py:NAME" in msg and "Net" in msg
    with pytest.raises(SourceError) as e:
        load_source(f"{user_dir}/mymodels.py:Nope", input_shape="1,4")
    assert "no name 'Nope'" in one_line(e) and "NeedsArgs" in str(e.value)


@pytest.mark.parametrize("name, words", [
    ("NUMBER", "is a int, not a torch.nn.Module"),
    ("NotAModule", "not a torch.nn.Module subclass"),
    ("factory_of_text", "returned a str; a factory must return an nn.Module"),
    ("NeedsArgs", "def make(): return NeedsArgs(...)"),
    ("broken", "raised RuntimeError: cannot build today"),
])
def test_name_that_is_not_a_module(user_dir, name, words):
    with pytest.raises(SourceError) as e:
        load_source(f"{user_dir}/mymodels.py:{name}", input_shape="1,4")
    assert words in one_line(e)


def test_bad_files(tmp_path):
    (tmp_path / "bad.py").write_text("import torch\ndef (:\n")
    with pytest.raises(SourceError) as e:
        load_source(f"{tmp_path}/bad.py:Net")
    assert "importing it failed: SyntaxError" in one_line(e)
    with pytest.raises(SourceError) as e:
        load_source(f"{tmp_path}/missing.py:Net")
    assert "no such file" in one_line(e)
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(SourceError) as e:
        load_source(str(tmp_path / "junk.pt2"))
    assert "not a torch.export program" in one_line(e)
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net")
    assert "--input-shape" in one_line(e)


def test_wrong_input_shape():
    with pytest.raises(GraphError) as e:  # SourceError is a GraphError
        load_source(f"{LENET}:Net", input_shape="1,3,32,32")
    msg = one_line(e)
    assert "(1, 3, 32, 32) does not fit lenet5.Net" in msg and "3 channels" in msg


def test_weights_load_strictly(tmp_path):
    sys.path.insert(0, str(LENET.parent))
    from lenet5 import Net

    torch.manual_seed(42)
    trained = Net()
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    src = load_source(f"{LENET}:Net", input_shape="1,1,32,32", weights=tmp_path / "w.pt")
    for k, v in trained.state_dict().items():
        torch.testing.assert_close(src.load().state_dict()[k], v)
    # a training checkpoint {"state_dict": ...} is accepted too
    torch.save({"epoch": 3, "state_dict": trained.state_dict()}, tmp_path / "ckpt.pt")
    load_source(f"{LENET}:Net", input_shape="1,1,32,32", weights=tmp_path / "ckpt.pt")
    # wrong keys: one line naming the missing and unexpected ones
    sd = dict(trained.state_dict())
    sd["fc9.bias"] = sd.pop("fc3.bias")
    sd["fc1.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", input_shape="1,1,32,32", weights=tmp_path / "bad.pt")
    msg = one_line(e)
    assert "missing keys fc3.bias" in msg and "unexpected keys fc9.bias" in msg
    assert "fc1.weight (3, 3) vs (120, 400)" in msg
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", input_shape="1,1,32,32", weights=tmp_path / "list.pt")
    assert "not a state dict" in one_line(e)


def test_pickled_weights_never_execute(tmp_path):
    marker = tmp_path / "pwned"
    Marker.path = str(marker)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"fc1.weight": Marker()}, f, protocol=2)
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", input_shape="1,1,32,32", weights=tmp_path / "evil.pt")
    assert "weights_only=True" in one_line(e)
    assert not marker.exists()


def test_calibration_samples(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 2.0, (20, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    src = load_source(f"{LENET}:Net", input_shape="1,1,32,32", calib=tmp_path / "x.npy")
    assert src.calibration_warning is None and src.input_kind == "data"
    np.testing.assert_array_equal(src.dataset().x_train, x)
    # prepare_entry calibrates on them: input scale = max|x| / 127 (max-abs, 8 bits)
    g = prepare_entry(src, bits=8)
    assert g.node(g.inputs[0]).quant.scale == pytest.approx(float(np.abs(x).max()) / 127)
    # the input shape may come from the calibration data alone
    assert load_source(f"{LENET}:Net", calib=tmp_path / "x.npy").input_shape == (1, 1, 32, 32)
    # .npz with labels
    y = rng.integers(0, 10, 20)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    ds = load_source(f"{LENET}:Net", calib=tmp_path / "xy.npz").dataset()
    np.testing.assert_array_equal(ds.y_test, y)


@pytest.mark.parametrize("make, words", [
    (lambda: np.full((4, 1, 32, 32), np.nan, np.float32), "are NaN or infinite"),
    (lambda: np.ones((4, 3, 32, 32), np.float32), "the model needs (N, 1, 32, 32)"),
    (lambda: np.ones((1, 32, 32), np.float32), "add the batch dimension"),
    (lambda: np.ones((4, 1, 32, 32), np.complex64), "give real numbers"),
    (lambda: np.array([["a"] * 32] * 32).reshape(1, 1, 32, 32), "give real numbers"),
    (lambda: np.ones((0, 1, 32, 32), np.float32), "holds no samples"),
])
def test_bad_calibration_files(tmp_path, make, words):
    np.save(tmp_path / "c.npy", make())
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", input_shape="1,1,32,32", calib=tmp_path / "c.npy")
    assert words in one_line(e)


def test_bad_calibration_containers(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((2, 4)), b=np.ones((2, 4)))
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", calib=tmp_path / "two.npz")
    assert "name the samples 'x'" in one_line(e)
    np.savez(tmp_path / "lab.npz", x=np.ones((2, 1, 32, 32)), y=np.array([1, 2, 3]))
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", calib=tmp_path / "lab.npz")
    assert "3 labels for 2 samples" in one_line(e)
    (tmp_path / "c.csv").write_text("1,2\n")
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", calib=tmp_path / "c.csv")
    assert "give a .npy or .npz" in one_line(e)


def test_pickled_npy_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    Marker.path = str(marker)
    np.save(tmp_path / "evil.npy", np.array([Marker()], dtype=object), allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(SourceError) as e:
        load_source(f"{LENET}:Net", input_shape="1,1,32,32", calib=tmp_path / "evil.npy")
    assert "pickle" in one_line(e) and "allow_pickle=False" in str(e.value)
    assert not marker.exists()


def test_from_module_and_spec_round_trip(tmp_path):
    sys.path.insert(0, str(LENET.parent))
    from lenet5 import Net

    x = np.random.default_rng(1).standard_normal((6, 1, 32, 32)).astype(np.float32)
    src = ModelSource.from_module(Net(), torch.zeros(1, 1, 32, 32), calib=x)
    assert src.input_shape == (1, 1, 32, 32) and src.dataset().x_train.shape == (6, 1, 32, 32)
    with pytest.raises(SourceError) as e:
        ModelSource.from_module(Net(), torch.zeros(1, 1, 32, 32), calib=x[:, :, :8])
    assert "(N, 1, 32, 32)" in one_line(e)
    loaded = load_source(f"{LENET}:Net", input_shape="1,1,32,32")
    again = load_source(SourceSpec.from_json(loaded.spec.to_json()))
    assert again.input_shape == loaded.input_shape and Path(again.spec.spec.split(":")[0]) == LENET
    rec = loaded.record()
    assert rec["input_shape"] == [1, 1, 32, 32] and str(LENET) in rec["sha256"]


def test_pt2_program(tmp_path):
    sys.path.insert(0, str(LENET.parent))
    from lenet5 import Net

    torch.manual_seed(0)
    net = Net().eval()
    ep = torch.export.export(net, (torch.randn(1, 1, 32, 32),))
    torch.export.save(ep, tmp_path / "lenet.pt2")
    src = load_source(str(tmp_path / "lenet.pt2"))
    assert src.input_shape == (1, 1, 32, 32) and src.name == "lenet"
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(src.module()(x[:1]), net(x[:1]))
    with pytest.raises(SourceError) as e:
        load_source(str(tmp_path / "lenet.pt2"), weights=tmp_path / "w.pt")
    assert "carries its own weights" in one_line(e)
    try:
        g = trace(src.load(), src.example_input())
    except GraphError as exc:
        if "ExportedProgram" in str(exc) and "needs a torch.nn.Module" in str(exc):
            pytest.skip("mapping.graph.trace does not accept an ExportedProgram yet")
        raise
    assert [n.op for n in g.nodes() if n.op in ("conv2d", "linear")] == [
        "conv2d", "conv2d", "linear", "linear", "linear"]


def write_tiny_onnx(path: Path) -> dict[str, np.ndarray]:
    """Gemm-Relu-Gemm MLP built with onnx.helper (torch.onnx.export needs onnxscript)."""
    from onnx import TensorProto, checker, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    p = {"w1": rng.standard_normal((16, 8)).astype(np.float32) * 0.3,
         "b1": rng.standard_normal(16).astype(np.float32) * 0.1,
         "w2": rng.standard_normal((4, 16)).astype(np.float32) * 0.3,
         "b2": rng.standard_normal(4).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(a, n) for n, a in p.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    checker.check_model(model)
    save(model, str(path))
    return p


def test_onnx_file(tmp_path):
    pytest.importorskip("mapping.onnx_import", reason="mapping.onnx_import (ONNX front end) "
                        "is not in this checkout yet")
    p = write_tiny_onnx(tmp_path / "tiny.onnx")
    src = load_source(str(tmp_path / "tiny.onnx"))
    assert src.input_shape == (1, 8) and src.name == "tiny"
    x = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    want = np.maximum(x @ p["w1"].T + p["b1"], 0) @ p["w2"].T + p["b2"]
    with torch.no_grad():
        got = src.module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    g = prepare_entry(src, bits=8)
    assert [n.op for n in g.compute_nodes()] == ["linear", "linear"]
