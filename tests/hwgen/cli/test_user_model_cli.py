"""Your own model on the command line: ``hwgen compile/graph/map examples/lenet5.py:Net``,
an ONNX file, ``hwgen sim BUILD --inputs x.npy --labels y.npy``, and a one-line error for
every bad input (README "Your own model", docs/your_model.md).

References: bit-exactness against ``sim.golden`` and measured cycles against
``mapping.timing`` (the manifest's predictions); the accuracy against an argmax of the
golden model's outputs computed here; the calibration against max-abs in closed form."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from hwgen.cli import main
from sim.tools import SimulatorNotFoundError, find_simulator

ROOT = Path(__file__).resolve().parents[3]
LENET = f"{ROOT / 'examples' / 'lenet5.py'}:Net"
SHAPE = "1,1,32,32"
SAMPLES = 3


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1, err
    return lines[0]


def need_verilator():
    try:
        find_simulator("verilator")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("userdata")
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, (SAMPLES, 1, 32, 32)).astype(np.float32)
    np.save(d / "calib.npy", rng.uniform(0.0, 1.0, (16, 1, 32, 32)).astype(np.float32))
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", np.array([3, 1, 4]))
    return d


@pytest.fixture(scope="module")
def lenet(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lenet") / "build"
    assert main(["compile", LENET, "--input-shape", SHAPE, "--calib", str(data / "calib.npy"),
                 "-o", str(out)]) == 0
    return out


def test_compile_records_the_source(lenet, data, capsys):
    man = json.loads((lenet / "manifest.json").read_text())
    assert man["model"] == "lenet5.Net"
    src = man["settings"]["source"]
    assert src["spec"].endswith("examples/lenet5.py:Net") and src["input_shape"] == [1, 1, 32, 32]
    assert src["calib"] == str((data / "calib.npy").resolve()) and src["weights"] is None
    assert len(src["sha256"]) == 2
    assert man["input"]["shape"] == [1, 1, 32, 32]
    # max-abs calibration on calib.npy: input scale = max|x| / 127
    calib = np.load(data / "calib.npy")
    from sim.accelerator import load_build

    g = load_build(lenet).graph
    assert g.node(g.inputs[0]).quant.scale == pytest.approx(float(calib.max()) / 127)


def test_sim_inputs_and_labels_bit_exact_and_cycle_true(lenet, data, capsys):
    need_verilator()
    assert main(["sim", str(lenet), "--inputs", str(data / "x.npy"), "--labels",
                 str(data / "y.npy"), "--engine", "fast"]) == 0
    out = capsys.readouterr().out
    assert f"{SAMPLES}/{SAMPLES} samples bit-exact vs sim.golden" in out
    assert f"{SAMPLES} samples (x.npy)" in out
    man = json.loads((lenet / "manifest.json").read_text())
    for layer in man["layers"]:
        c = layer["predicted_cycles"]
        assert f"{layer['name']:<12} {c:>10,} vs {c:>10,}  +0.00%" in out
    # accuracy: argmax of sim.golden's outputs on the same quantised samples, against y.npy
    from sim import golden
    from sim.accelerator import load_build

    b = load_build(lenet)
    x = np.load(data / "x.npy")
    pred = golden.run(b.graph, golden.quantize_input(b.graph, x)).reshape(SAMPLES, -1).argmax(-1)
    want = float(np.mean(pred == np.load(data / "y.npy")))
    acc = re.search(r"accuracy: hardware ([\d.]+)%, golden ([\d.]+)%", out)
    assert float(acc.group(1)) == pytest.approx(100 * want, abs=0.01)
    assert float(acc.group(2)) == pytest.approx(100 * want, abs=0.01)
    assert "float" not in out.split("accuracy:")[1].splitlines()[0]  # a build runs no code


@pytest.mark.parametrize("make, words", [
    (lambda: np.ones((2, 1, 28, 28), np.float32), "the model needs (N, 1, 32, 32)"),
    (lambda: np.ones((2, 1, 32, 32), np.complex64), "give real numbers"),
    (lambda: np.full((2, 1, 32, 32), np.inf, np.float32), "NaN or infinite"),
])
def test_sim_bad_inputs(lenet, tmp_path, capsys, make, words):
    np.save(tmp_path / "x.npy", make())
    assert main(["sim", str(lenet), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert words in err_line(capsys)


def test_sim_bad_labels(lenet, data, tmp_path, capsys):
    np.save(tmp_path / "y.npy", np.array([1, 2]))
    assert main(["sim", str(lenet), "--inputs", str(data / "x.npy"), "--labels",
                 str(tmp_path / "y.npy")]) == 2
    assert "2 labels for 3 samples" in err_line(capsys)
    np.save(tmp_path / "y.npy", np.array([1, 2, 10]))
    assert main(["sim", str(lenet), "--inputs", str(data / "x.npy"), "--labels",
                 str(tmp_path / "y.npy")]) == 2
    assert "labels must be 0..9" in err_line(capsys)
    assert main(["sim", str(lenet), "--labels", str(tmp_path / "y.npy")]) == 2
    assert "--labels needs --inputs" in err_line(capsys)


class Marker:
    path = ""

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "executed"))


def test_data_files_never_execute_code(lenet, tmp_path, capsys):
    marker = tmp_path / "pwned"
    Marker.path = str(marker)
    np.save(tmp_path / "evil.npy", np.array([Marker()], dtype=object), allow_pickle=True)
    assert main(["sim", str(lenet), "--inputs", str(tmp_path / "evil.npy")]) == 2
    assert "allow_pickle=False" in err_line(capsys)
    assert main(["compile", LENET, "--input-shape", SHAPE, "--calib",
                 str(tmp_path / "evil.npy"), "-o", str(tmp_path / "b")]) == 2
    assert "pickle" in err_line(capsys)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"conv1.weight": Marker()}, f, protocol=2)
    assert main(["compile", LENET, "--input-shape", SHAPE, "--weights",
                 str(tmp_path / "evil.pt"), "-o", str(tmp_path / "b")]) == 2
    assert "weights_only=True" in err_line(capsys)
    assert not marker.exists() and not (tmp_path / "b").exists()


def test_compile_bad_model_inputs(tmp_path, capsys):
    import torch

    lenet_file = LENET.rpartition(":")[0]
    (tmp_path / "m.py").write_text("import torch\nNET = 3\nclass Plain:\n    pass\n")
    np.save(tmp_path / "nan.npy", np.full((4, 1, 32, 32), np.nan, np.float32))
    np.save(tmp_path / "wide.npy", np.ones((4, 3, 32, 32), np.float32))
    torch.save({"fc9.weight": torch.zeros(2)}, tmp_path / "w.pt")
    cases = [
        ([lenet_file], "lenet5.py:NAME"),
        ([f"{tmp_path}/m.py:NET"], "is a int, not a torch.nn.Module"),
        ([f"{tmp_path}/m.py:Plain"], "not a torch.nn.Module subclass"),
        ([LENET, "--input-shape", "1,3,32,32"], "(1, 3, 32, 32) does not fit lenet5.Net"),
        ([LENET, "--input-shape", "1,x"], "--input-shape '1,x' is invalid"),
        ([LENET, "--input-shape", SHAPE, "--calib", str(tmp_path / "nan.npy")],
         "NaN or infinite"),
        ([LENET, "--input-shape", SHAPE, "--calib", str(tmp_path / "wide.npy")],
         "the model needs (N, 1, 32, 32)"),
        ([LENET, "--input-shape", SHAPE, "--weights", str(tmp_path / "w.pt")],
         "unexpected keys fc9.weight"),
        (["mlp-digits", "--calib", str(tmp_path / "nan.npy")], "not to the zoo model"),
        (["no-such-model"], "file.py:NAME"),
    ]
    for argv, words in cases:
        assert main(["compile", *argv, "-o", str(tmp_path / "b")]) == 2, argv
        assert words in err_line(capsys), argv
    assert not (tmp_path / "b").exists()


def test_graph_and_map_take_the_same_specifier(capsys):
    assert main(["graph", LENET, "--input-shape", SHAPE]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lenet5.Net: ") and "1x6x28x28" in out
    assert main(["graph", LENET, "--input-shape", SHAPE, "--quantize"]) == 0
    cap = capsys.readouterr()
    assert "a8 w8" in cap.out and "accuracy of the quantised model on real data is unknown" in cap.err
    assert main(["map", LENET, "--input-shape", SHAPE, "--arch", "edge-8x8"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "fc3" in out and "(estimated" in out
    assert main(["graph", LENET]) == 2
    assert "pass --input-shape" in err_line(capsys)


BREVITAS_FILE = """
import brevitas.nn as qnn
from brevitas.quant import Int32Bias
from torch import nn


def make():
    return nn.Sequential(qnn.QuantIdentity(bit_width=4, return_quant_tensor=True),
                         qnn.QuantLinear(16, 8, bias=True, weight_bit_width=3,
                                         bias_quant=Int32Bias),
                         qnn.QuantReLU(bit_width=4, return_quant_tensor=True))
"""


def test_brevitas_model_says_its_qat_scales_are_imported(tmp_path, capsys):
    """A Brevitas file model: the CLI says on stderr that its QAT scales are used (two
    activation quantisers and one weight quantiser in the file above)."""
    pytest.importorskip("brevitas")
    f = tmp_path / "qat.py"
    f.write_text(BREVITAS_FILE)
    assert main(["graph", f"{f}:make", "--input-shape", "1,16", "--quantize"]) == 0
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert notes == ["note: QAT scales imported from Brevitas: 2 activation quantiser(s), "
                     "1 quantised weight(s)"], err
    assert main(["map", f"{f}:make", "--input-shape", "1,16", "--arch", "edge-8x8"]) == 0
    assert "note: QAT scales imported from Brevitas" in capsys.readouterr().err
    assert main(["graph", LENET, "--input-shape", SHAPE, "--quantize"]) == 0
    assert "note: " not in capsys.readouterr().err  # a plain torch model has none


def test_help_names_the_specifiers(capsys):
    for cmd in ("graph", "map", "compile", "dse"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "file.py:NAME" in text and "--input-shape" in text and "--calib" in text, cmd
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    text = capsys.readouterr().out
    assert "--inputs" in text and "--labels" in text


def test_dse_workers_reload_the_model_from_its_key(tmp_path):
    """``hwgen dse`` passes a string key; a fresh process (dse.model.model_entry) turns it
    back into the same model: same layers, same weights."""
    import torch

    from dse.model import model_entry, model_label, model_layers
    from hwgen.cli.model_arg import model_key, resolve_model

    src = resolve_model(LENET, SHAPE, warn=False)
    key = model_key(src)
    assert model_key(resolve_model("mlp-digits")) == "mlp-digits"
    again = model_entry(key)
    assert again.input_shape == (1, 1, 32, 32) and again is not src
    for k, v in src.load().state_dict().items():
        torch.testing.assert_close(again.load().state_dict()[k], v)
    layers = model_layers(key)
    assert layers.compute_names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert re.fullmatch(r"lenet5\.Net-[0-9a-f]{8}", model_label(key))


class TinyCnn:
    """A small CNN exported to ONNX from torch (the legacy TorchScript exporter: the dynamo
    one needs onnxscript)."""

    @staticmethod
    def build():
        import torch
        from torch import nn

        torch.manual_seed(1)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 3 * 3, 5)).eval()

    @staticmethod
    def export(path: Path):
        import warnings

        import torch

        net = TinyCnn.build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False,
                              input_names=["x"], output_names=["y"])
        return net


def test_onnx_compile_and_sim(tmp_path, capsys):
    pytest.importorskip("mapping.onnx_import", reason="mapping.onnx_import (ONNX front end) "
                        "is not in this checkout yet")
    import torch

    from mapping.source import load_source

    net = TinyCnn.export(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    src = load_source(str(tmp_path / "tiny.onnx"))
    assert src.input_shape == (1, 1, 8, 8)
    with torch.no_grad():  # the imported module computes what torch computes
        torch.testing.assert_close(src.module()(torch.from_numpy(x)), net(torch.from_numpy(x)))
    np.save(tmp_path / "calib.npy", rng.standard_normal((16, 1, 8, 8)).astype(np.float32))
    np.savez(tmp_path / "xy.npz", x=x, y=np.array([0, 1, 2, 3]))
    out = tmp_path / "b"
    assert main(["compile", str(tmp_path / "tiny.onnx"), "--arch", "tiny-4x4", "--calib",
                 str(tmp_path / "calib.npy"), "-o", str(out)]) == 0
    assert "tiny on tiny-4x4" in capsys.readouterr().out
    need_verilator()
    assert main(["sim", str(out), "--inputs", str(tmp_path / "xy.npz")]) == 0
    text = capsys.readouterr().out
    assert "4/4 samples bit-exact" in text and "accuracy: hardware" in text
    assert "OFF BY" not in text


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Your own model", 1)[1].split("\n## ", 1)[0]


def test_readme_commands_parse():
    """The commands of README's "Your own model" section are accepted by the CLI parser
    (their runs are the tests above); README's first two commands stay make demo/test."""
    import shlex

    from hwgen.cli import build_parser

    text = (ROOT / "README.md").read_text()
    first = [ln.split()[:2] for ln in text.split("```", 2)[1].splitlines() if ln.strip()]
    assert first[:2] == [["make", "demo"], ["make", "test"]]
    cmds = [ln.split("#")[0].strip() for ln in readme_section().splitlines()
            if ln.strip().startswith("hwgen ")]
    assert {c.split()[1] for c in cmds} >= {"compile", "sim"}
    assert any(".py:Net" in c for c in cmds) and any(".onnx" in c for c in cmds)
    for c in cmds:
        args = build_parser().parse_args(shlex.split(c)[1:])
        assert args.func is not None


def test_pt2_compile(tmp_path, capsys):
    import torch

    net = TinyCnn.build()
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 8, 8),)), tmp_path / "cnn.pt2")
    code = main(["compile", str(tmp_path / "cnn.pt2"), "--arch", "tiny-4x4", "-o",
                 str(tmp_path / "b")])
    cap = capsys.readouterr()
    if code == 2 and "needs a torch.nn.Module" in cap.err:
        pytest.skip("mapping.graph.trace does not accept an ExportedProgram yet")
    assert code == 0, cap.err
    assert "cnn on tiny-4x4" in cap.out and "warning: no --calib" in cap.err
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["settings"]["source"]["spec"].endswith("cnn.pt2")


def test_map_does_not_warn_about_calibration(capsys):
    """hwgen map does not calibrate (shapes and widths only), so the missing --calib warning
    of the other commands would be wrong there."""
    assert main(["map", LENET, "--input-shape", SHAPE, "--arch", "edge-8x8"]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert main(["graph", LENET, "--input-shape", SHAPE, "--quantize"]) == 0
    assert "warning:" in capsys.readouterr().err  # calibrated on random data: said
