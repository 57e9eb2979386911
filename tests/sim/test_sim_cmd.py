"""``hwgen sim``: the command line on a build directory, and its one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest

from hwgen.cli import main
from sim.tools import SimulatorNotFoundError, find_simulator


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The same mlp-digits/tiny-4x4 build as tests/sim/test_accelerator.py (Verilator cache hit)."""
    out = tmp_path_factory.mktemp("simcmd") / "mlp"
    assert main(["compile", "mlp-digits", "--arch", "tiny-4x4", "-o", str(out)]) == 0
    return out


def test_sim_prints_accuracy_and_cycles(build, capsys):
    try:
        find_simulator("verilator")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))
    assert main(["sim", str(build), "--samples", "8"]) == 0
    out = capsys.readouterr().out
    assert "8/8 samples bit-exact vs sim.golden" in out
    assert "accuracy: hardware" in out and "golden" in out and "float" in out
    man = json.loads((build / "manifest.json").read_text())
    for layer in man["layers"]:
        c = layer["predicted_cycles"]
        assert f"{layer['name']:<12} {c:>10,} vs {c:>10,}  +0.00%" in out
    assert "cycles/s" in out


def test_missing_build_dir(capsys, tmp_path):
    assert main(["sim", str(tmp_path / "nothing")]) == 2
    err = err_line(capsys)
    assert "does not exist" in err and "hwgen compile" in err


def test_build_from_another_version(build, capsys, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(build, old)
    man = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**man, "hwgen_version": "0.0.1"}))
    assert main(["sim", str(old)]) == 2
    err = err_line(capsys)
    assert "built by hwgen 0.0.1" in err and "recompile" in err


def test_simulator_not_installed(build, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog/vvp on PATH
    assert main(["sim", str(build), "--simulator", "icarus", "--samples", "1"]) == 2
    err = err_line(capsys)
    assert "icarus" in err and "apt-get install iverilog" in err


def test_bad_sample_count(build, capsys):
    assert main(["sim", str(build), "--samples", "0"]) == 2
    assert "--samples 0" in err_line(capsys)
    assert main(["sim", str(build), "--samples", "100000"]) == 2
    assert "only 360" in err_line(capsys)


def test_icarus_waves(build, capsys):
    try:
        find_simulator("icarus")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))
    assert main(["sim", str(build), "--simulator", "icarus", "--samples", "1", "--waves"]) == 0
    out = capsys.readouterr().out
    assert "1/1 samples bit-exact" in out and ", icarus, 1 samples" in out
    path = out.split("waves: ")[1].split()[0]
    from pathlib import Path

    assert Path(path).is_file() and Path(path).stat().st_size > 0 and path.endswith(".fst")


def test_old_format_build(build, capsys, tmp_path):
    """A format-1 build (graph.pkl) says: built by an older hwgen, recompile."""
    old = tmp_path / "old"
    shutil.copytree(build, old)
    (old / "graph.pkl").write_bytes(b"\x80\x04N.")
    man = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**man, "format_version": 1}))
    assert main(["sim", str(old)]) == 2
    err = err_line(capsys)
    assert "built by an older hwgen" in err and "graph.pkl" in err
    assert "recompile it with `hwgen compile`" in err


def test_tampered_graph(build, capsys, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(build, bad)
    doc = json.loads((bad / "graph.json").read_text())
    doc["nodes"].reverse()
    (bad / "graph.json").write_text(json.dumps(doc))
    assert main(["sim", str(bad), "--samples", "1"]) == 2
    err = err_line(capsys)
    assert f"{bad / 'graph.json'} does not match the SHA-256" in err and "recompile" in err
