"""``hwgen.api``: compile a module from Python and simulate a batch, as a notebook would.

References: ``sim.golden`` (bit-exactness, and the accuracy as argmax of its outputs),
``mapping.timing`` through the manifest's predictions (cycles), max-abs calibration in
closed form."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hwgen import api
from mapping.source import ModelSource, SourceError
from sim.tools import SimulatorNotFoundError, find_simulator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))


def samples():
    """The samples of tests/hwgen/cli/test_user_model_cli.py (same draws): the same LeNet
    build, so the Verilator harness is a cache hit when both files run."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 1.0, (3, 1, 32, 32)).astype(np.float32)
    calib = rng.uniform(0.0, 1.0, (16, 1, 32, 32)).astype(np.float32)
    return x, calib, np.array([3, 1, 4])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from lenet5 import Net

    torch.manual_seed(0)  # what load_source does before instantiating a class
    x, calib, _ = samples()
    return api.compile(Net(), torch.zeros(1, 1, 32, 32), arch="edge-8x8", calib=calib,
                       out_dir=tmp_path_factory.mktemp("api") / "lenet")


def test_compile_returns_the_build(compiled):
    _, calib, _ = samples()
    assert compiled.manifest.model == "Net" and compiled.arch.name == "edge-8x8"
    assert compiled.manifest.settings["source"]["input_shape"] == [1, 1, 32, 32]
    assert (compiled.out_dir / "manifest.json").is_file()
    assert [lm.layer for lm in compiled.schedule.layers] == ["conv1", "conv2", "fc1", "fc2",
                                                            "fc3"]
    from sim.accelerator import load_build

    g = load_build(compiled.out_dir).graph
    assert g.node(g.inputs[0]).quant.scale == pytest.approx(float(calib.max()) / 127)


def test_simulate_bit_exact_cycle_true_with_accuracy(compiled):
    try:
        find_simulator("verilator")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))
    from sim import golden
    from sim.accelerator import load_build

    x, _, y = samples()
    r = api.simulate(compiled, x, labels=y, engine="fast")
    assert r.bit_exact and r.cycles_as_predicted
    assert r.cycles == [r.predicted_cycles] * 3
    assert set(r.layer_cycles) == {"conv1", "max_pool2d", "conv2", "max_pool2d_1", "fc1",
                                   "fc2", "fc3"}
    g = load_build(compiled.out_dir).graph
    ref = golden.run(g, golden.quantize_input(g, x)).reshape(3, -1)
    np.testing.assert_array_equal(r.outputs, ref)
    assert r.accuracy == r.golden_accuracy == pytest.approx(np.mean(ref.argmax(-1) == y))


def test_simulate_rejects_bad_inputs(compiled):
    x, _, y = samples()
    for bad, words in ((x[:, :, :16], "(N, 1, 32, 32)"), (x.astype(np.complex64), "real"),
                       (np.where(x > 0.5, np.nan, x), "NaN")):
        with pytest.raises(SourceError, match=r"^inputs: .*") as e:
            api.simulate(compiled, bad)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SourceError, match="2 labels for 3 samples"):
        api.simulate(compiled, x, labels=y[:2])


def test_compile_without_calibration_warns(tmp_path):
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.warns(UserWarning, match="accuracy of the quantised model on real data is "
                      "unknown"):
        cm = api.compile(model, torch.zeros(1, 8), arch="tiny-4x4", out_dir=tmp_path / "b")
    assert cm.manifest.input.shape == (1, 8)


def test_load_model_forms(tmp_path):
    _, calib, _ = samples()
    src = api.load_model(f"{ROOT / 'examples' / 'lenet5.py'}:Net", input_shape="1,1,32,32",
                         calib=calib)
    assert isinstance(src, ModelSource) and src.dataset().x_train.shape == (16, 1, 32, 32)
    assert api.load_model("mlp-digits").name == "mlp-digits"
    with pytest.raises(ValueError, match="apply to your own model"):
        api.load_model("mlp-digits", calib=calib)
    with pytest.raises(SourceError, match="a torch.nn.Module is needed, got int"):
        api.load_model(3, torch.zeros(1, 8))
    with pytest.raises(SourceError, match="give an example input"):
        api.load_model(nn.Linear(8, 2))
