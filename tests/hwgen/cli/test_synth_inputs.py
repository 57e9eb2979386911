"""``hwgen synth BUILD_DIR`` reads an hwgen build only through its manifest contract (format,
version, hashes); a hand-written design description (docs/boards.md) still works. No tools run."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace

import pytest

from hwgen.cli import CliError
from hwgen.cli.synth_cmd import _inputs, run_cycles_of


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from hwgen.cli import main

    out = tmp_path_factory.mktemp("synthin") / "jsc"
    assert main(["compile", "jsc-mlp", "--arch", "tiny-4x4", "-o", str(out)]) == 0
    return out


def args(build_dir, top=None):
    return Namespace(build_dir=str(build_dir), verilog=None, top=top)


def test_build_reads_rtlil_top_and_manifest(build):
    files, top, man = _inputs(args(build))
    assert files == [build / "hwgen_accel.il"] and top == "hwgen_accel"
    assert man.model == "jsc-mlp"
    (cycles, kind, _), = run_cycles_of(man)
    assert kind == "estimated" and cycles > man.predicted_cycles_total


def test_tampered_or_old_build_is_refused(build, tmp_path):
    bad = shutil.copytree(build, tmp_path / "bad")
    (bad / "hwgen_accel.il").write_text("# edited\n")
    with pytest.raises(CliError, match="hwgen_accel.il does not match the SHA-256"):
        _inputs(args(bad))
    man = json.loads((build / "manifest.json").read_text())
    old = shutil.copytree(build, tmp_path / "old")
    (old / "manifest.json").write_text(json.dumps({**man, "format_version": 1}))
    with pytest.raises(CliError, match="built by an older hwgen .*recompile"):
        _inputs(args(old))


def test_hand_written_design_description(tmp_path):
    (tmp_path / "top.v").write_text("module top(); endmodule\n")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"verilog": "top.v", "top_module": "top", "predicted_cycles_total": 10}))
    files, top, man = _inputs(args(tmp_path))
    assert files == [tmp_path / "top.v"] and top == "top" and man["predicted_cycles_total"] == 10
    (tmp_path / "manifest.json").write_text(json.dumps({"verilog": "top.v"}))
    with pytest.raises(CliError, match="lacks key"):
        _inputs(args(tmp_path))
    assert _inputs(args(tmp_path, top="top"))[1] == "top"
