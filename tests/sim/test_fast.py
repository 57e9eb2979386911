"""sim.fast: the compiled Verilator testbench runs whole models bit-exact (vs sim.golden) and
cycle-exact (vs mapping.timing on the schedule), gives the cocotb engine's outputs and
counters on the same samples, and names the sample and the cycle when the design hangs."""

from __future__ import annotations

import numpy as np
import pytest
from test_accelerator import check_run, compile_zoo, need

import models
from mapping.arch import preset
from sim import fast
from sim.accelerator import load_build, quantize_inputs, simulate
from sim.runner import SimulationError

STALL = {"weight_store": "external", "ext_latency": 5, "ext_bandwidth": 0.5}

# every zoo model that compiles to one program, on both presets, both dataflows, ROM and
# external weights (the external ones with a latency/bandwidth that stalls the DMA)
DESIGNS = [
    ("mlp-digits", "tiny-4x4", {"dataflow": "ws"}),
    ("mlp-digits", "edge-8x8", {"dataflow": "os"}),
    ("cnn-digits", "tiny-4x4", {"dataflow": "os"}),
    ("cnn-digits", "edge-8x8", {"dataflow": "ws"}),
    ("jsc-mlp", "tiny-4x4", {"dataflow": "os", **STALL}),
    ("jsc-mlp", "edge-8x8", {"dataflow": "ws"}),
    ("resnet-block", "edge-8x8", {"dataflow": "ws", **STALL}),
    ("resnet-block", "tiny-4x4", {"dataflow": "os", "act_words": 12288,
                                  "weight_store": "external"}),
]


def _inputs(name: str, build, n: int, seed: int = 3) -> np.ndarray:
    e = models.get(name)
    ds = e.dataset()
    if ds is not None:
        rng = np.random.default_rng(seed)
        x = ds.x_test[np.sort(rng.choice(len(ds.x_test), n, replace=False))]
    else:
        x = np.concatenate([e.example_input(seed + i).numpy() for i in range(n)])
    return quantize_inputs(build, x)


def _build(name, arch_name, changes, tmp_path_factory):
    out = tmp_path_factory.mktemp("fast") / name
    compile_zoo(name, preset(arch_name).replace(**changes), out)
    return load_build(out)


@pytest.mark.parametrize("name,arch_name,changes", DESIGNS,
                         ids=[f"{n}-{a}-{c['dataflow']}-{c.get('weight_store', 'rom')}"
                              for n, a, c in DESIGNS])
def test_zoo_designs_bit_and_cycle_exact(name, arch_name, changes, tmp_path_factory):
    need("verilator")
    build = _build(name, arch_name, changes, tmp_path_factory)
    x_int = _inputs(name, build, 6)
    res = simulate(build, x_int, engine="fast", x_check=True)  # no output on power-up state
    assert res.engine == "fast"
    check_run(build, res, x_int)


def _engines_agree(build, x_int):
    a = simulate(build, x_int, engine="fast")
    b = simulate(build, x_int, engine="cocotb")
    assert (a.engine, b.engine) == ("fast", "cocotb")
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.layer_cycles, b.layer_cycles)
    assert a.run_cycles == b.run_cycles and a.total_cycles == b.total_cycles
    check_run(build, a, x_int)


@pytest.mark.parametrize("index", [0, 6], ids=["mlp-tiny-ws-rom", "resnet-edge-ws-stall"])
def test_engines_agree(index, tmp_path_factory):
    """Identical outputs, run_cycles, per-layer counters and free-running counter."""
    need("verilator")
    name, arch_name, changes = DESIGNS[index]
    build = _build(name, arch_name, changes, tmp_path_factory)
    _engines_agree(build, _inputs(name, build, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name,arch_name,changes", [d for i, d in enumerate(DESIGNS)
                                                    if i not in (0, 6)])
def test_engines_agree_everywhere(name, arch_name, changes, tmp_path_factory):
    need("verilator")
    build = _build(name, arch_name, changes, tmp_path_factory)
    _engines_agree(build, _inputs(name, build, 4))


@pytest.fixture(scope="module")
def mlp_tiny(tmp_path_factory):
    return _build(*DESIGNS[0], tmp_path_factory)


def test_a_hang_names_the_sample_and_the_cycle(mlp_tiny, tmp_path):
    need("verilator")
    harness = fast.build_harness(mlp_tiny.verilog)
    x = np.zeros((2, 64), np.int64)
    with pytest.raises(SimulationError) as info:
        fast.run_harness(harness, x, output_count=10, layers=3, out_bits=8, max_cycles=500,
                         run_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "sample 0: the accelerator did not finish within 500 cycles (cycle " in msg


def test_fast_engine_writes_fst_waves(mlp_tiny, tmp_path):
    need("verilator")
    res = simulate(mlp_tiny, _inputs("mlp-digits", mlp_tiny, 1), engine="fast", waves=True,
                   run_dir=tmp_path)
    assert res.waves and res.waves.endswith(".fst")
    data = open(res.waves, "rb").read()
    assert len(data) > 1000 and res.bit_exact


def test_engine_choice_errors(mlp_tiny):
    with pytest.raises(ValueError, match="fast engine runs on Verilator only"):
        simulate(mlp_tiny, np.zeros((1, 64), np.int64), simulator="icarus", engine="fast")
    with pytest.raises(ValueError, match="unknown engine 'turbo'"):
        simulate(mlp_tiny, np.zeros((1, 64), np.int64), engine="turbo")


def test_results_file_parsing_is_checked():
    text = "100 40 50 : 1 -2\n101 41 50 : 3 4\ntotal_cycles 300\nloop_seconds 0.5\n"
    r = fast.parse_results(text, samples=2, layers=2, outputs=2)
    assert r["run_cycles"] == [100, 101] and r["total_cycles"] == 300
    np.testing.assert_array_equal(r["outputs"], [[1, -2], [3, 4]])
    np.testing.assert_array_equal(r["layer_cycles"], [[40, 50], [41, 50]])
    with pytest.raises(SimulationError, match="1 of 2 samples"):
        fast.parse_results(text.split("\n", 1)[1], samples=2, layers=2, outputs=2)


def test_external_words_wider_than_64_bits(tmp_path_factory):
    """ext_word_bits may be up to 1024: the harness serves words of any width."""
    need("verilator")
    build = _build("jsc-mlp", "tiny-4x4", {"weight_store": "external", "ext_word_bits": 128,
                                           "ext_latency": 3}, tmp_path_factory)
    x_int = _inputs("jsc-mlp", build, 3)
    res = simulate(build, x_int, engine="fast")
    check_run(build, res, x_int)
