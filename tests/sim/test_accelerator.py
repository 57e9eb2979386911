"""sim.accelerator: whole models on the generated Verilog (cocotb), every output compared with
sim.golden, per-layer hardware counters compared with mapping.timing; build-dir checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import models
from hwgen.build.flow import compile_model, to_stream
from mapping import timing
from mapping.arch import preset
from mapping.passes import prepare_entry
from mapping.schedule import Schedule
from sim import golden
from sim.accelerator import BuildError, load_build, quantize_inputs, simulate
from sim.tools import SimulatorNotFoundError, find_simulator


def need(simulator: str) -> None:
    try:
        find_simulator(simulator)
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))


def compile_zoo(name, arch, out):
    return compile_model(prepare_entry(models.get(name)), arch, out, model=name)


@pytest.fixture(scope="module")
def mlp_tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("acc") / "mlp-digits"
    compile_zoo("mlp-digits", preset("tiny-4x4"), out)
    return out


def expected_layer_cycles(build) -> list[int]:
    """Independent of the manifest: mapping.timing on the schedule the build wrote."""
    s = Schedule.from_json((build.path / "schedule.json").read_text())
    by = {lm.layer: lm for lm in s.layers}
    out = []
    for layer in build.manifest["layers"]:
        lm = by.get(layer["name"])
        out.append(timing.layer_cycles(lm, build.arch).cycles if lm else layer["predicted_cycles"])
    return out


def check_run(build, res, x_int):
    ref = to_stream(golden.run(build.graph, x_int), build.manifest["output"]["layout"])
    np.testing.assert_array_equal(res.outputs, ref)
    assert res.bit_exact and res.mismatches == []
    want = expected_layer_cycles(build)
    assert (res.layer_cycles == np.array(want)[None, :]).all()
    assert len(set(res.run_cycles)) == 1
    prog = build.manifest["program"]
    assert res.run_cycles[0] == timing.run_cycles(prog["input_count"], sum(want),
                                                  prog["output_count"])


def test_verilator_20_digits_bit_and_cycle_exact(mlp_tiny):
    need("verilator")
    build = load_build(mlp_tiny)
    ds = models.get("mlp-digits").dataset()
    x_int = quantize_inputs(build, ds.x_test[:20])
    seen = []
    res = simulate(build, x_int, progress=lambda d, t: seen.append((d, t)))
    check_run(build, res, x_int)
    assert res.total_cycles >= 20 * res.run_cycles[0] and res.cycles_per_second > 0
    # labels: the hardware's argmax is the golden model's
    np.testing.assert_array_equal(res.outputs.argmax(-1), res.golden.argmax(-1))


def test_icarus_3_digits(mlp_tiny):
    need("icarus")
    build = load_build(mlp_tiny)
    ds = models.get("mlp-digits").dataset()
    x_int = quantize_inputs(build, ds.x_test[100:103])
    res = simulate(build, x_int, simulator="icarus")
    check_run(build, res, x_int)


def test_per_axis_convolutions_bit_and_cycle_exact(tmp_path):
    """Non-square kernels with per-axis stride / padding / dilation through the whole flow
    (trace, quantise, lower, map, compile, Verilog) bit-exact vs golden, cycles vs timing."""
    need("verilator")
    import torch
    from torch import nn

    from mapping.passes import prepare

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 4, (3, 1), stride=(2, 1), padding=(1, 0)), nn.ReLU(),
        nn.Conv2d(4, 3, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2)), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    calib = torch.randn(16, 2, 7, 9, generator=torch.Generator().manual_seed(3))
    g = prepare(model, calib[:1], calib.numpy())
    geo = [(n.nest.R, n.nest.S, n.nest.stride_h, n.nest.stride_w, n.nest.pad_h, n.nest.pad_w,
            n.nest.dil_h, n.nest.dil_w) for n in g.compute_nodes()[:2]]
    assert geo == [(3, 1, 2, 1, 1, 0, 1, 1), (1, 3, 1, 2, 0, 1, 1, 2)]
    compile_model(g, preset("tiny-4x4"), tmp_path / "b", model="per-axis")
    build = load_build(tmp_path / "b")
    x_int = quantize_inputs(build, calib.numpy()[:4])
    check_run(build, simulate(build, x_int), x_int)


# ------------------------------------------------------------------ build directory errors
def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_load_build_errors(mlp_tiny, tmp_path):
    with pytest.raises(BuildError) as e:
        load_build(tmp_path / "nope")
    assert "does not exist" in _one_line(e)
    with pytest.raises(BuildError) as e:
        load_build(tmp_path)
    assert "not a build directory" in _one_line(e)
    bad = tmp_path / "old"
    shutil.copytree(mlp_tiny, bad)
    man = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**man, "hwgen_version": "0.0.1"}))
    with pytest.raises(BuildError) as e:
        load_build(bad)
    assert "hwgen 0.0.1" in _one_line(e) and "recompile" in _one_line(e)
    (bad / "manifest.json").write_text(json.dumps({**man, "format_version": 999}))
    with pytest.raises(BuildError, match="build format 999"):
        load_build(bad)
    (bad / "manifest.json").write_text(json.dumps(man))
    (bad / "hwgen_accel.v").write_text("// edited\n")
    with pytest.raises(BuildError, match="does not match the SHA-256"):
        load_build(bad)
    (bad / "hwgen_accel.v").unlink()
    with pytest.raises(BuildError, match="hwgen_accel.v is missing"):
        load_build(bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(BuildError, match="not valid JSON"):
        load_build(bad)


def test_simulate_rejects_wrong_input(mlp_tiny):
    build = load_build(mlp_tiny)
    with pytest.raises(ValueError, match="non-empty batch"):
        simulate(build, np.zeros((0, 64), np.int64))


# ------------------------------------------------------------------ slow: whole data sets
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_digits_full_test_split_edge(name, tmp_path):
    """All 360 digits test samples bit-exact in Verilator; hardware accuracy == golden."""
    need("verilator")
    compile_zoo(name, preset("edge-8x8"), tmp_path / name)
    build = load_build(tmp_path / name)
    ds = models.get(name).dataset()
    x_int = quantize_inputs(build, ds.x_test)
    res = simulate(build, x_int)
    check_run(build, res, x_int)
    assert res.samples == 360
    hw = np.mean(res.outputs.argmax(-1) == ds.y_test)
    gold = np.mean(golden.run(build.graph, x_int).argmax(-1) == ds.y_test)
    assert hw == gold and hw > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name,arch", [
    ("jsc-mlp", preset("edge-8x8")),
    ("resnet-block", preset("edge-8x8").replace(weight_store="external", ext_latency=5,
                                                  ext_bandwidth=0.5)),
    ("resnet-block", preset("tiny-4x4").replace(act_words=12288, weight_store="external")),
])
def test_random_inputs_32(name, arch, tmp_path):
    """32 inputs bit-exact; resnet-block with its weights off chip (external memory model)."""
    need("verilator")
    compile_zoo(name, arch, tmp_path / "b")
    build = load_build(tmp_path / "b")
    e = models.get(name)
    if e.dataset() is not None:
        rng = np.random.default_rng(5)
        x = e.dataset().x_test[np.sort(rng.choice(len(e.dataset().x_test), 32, replace=False))]
    else:
        x = np.concatenate([e.example_input(100 + i).numpy() for i in range(32)])
    x_int = quantize_inputs(build, x)
    res = simulate(build, x_int)
    check_run(build, res, x_int)
