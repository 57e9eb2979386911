"""``hwgen compile``: the command line, its summary and its one-line errors."""

from __future__ import annotations

import json
import re

import pytest

from hwgen.cli import main
from hwgen.cli.compile_cmd import parse_sets, resolve_arch


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_unknown_model_is_one_line(capsys, tmp_path):
    assert main(["compile", "no-such-model", "-o", str(tmp_path / "b")]) == 2
    err = err_line(capsys)
    assert "hwgen compile: error:" in err and "no-such-model" in err and "mlp-digits" in err
    assert not (tmp_path / "b").exists()


def test_bad_arch_bits_and_sets(capsys, tmp_path):
    assert main(["compile", "mlp-digits", "--arch", "huge-99x99", "-o", str(tmp_path)]) == 2
    assert "tiny-4x4" in err_line(capsys)
    assert main(["compile", "mlp-digits", "--bits", "1", "-o", str(tmp_path)]) == 2
    assert "--bits 1" in err_line(capsys)
    assert main(["compile", "mlp-digits", "--set", "act_words", "-o", str(tmp_path)]) == 2
    assert "FIELD=VALUE" in err_line(capsys)
    assert main(["compile", "mlp-digits", "--set", "colz=4", "-o", str(tmp_path)]) == 2
    assert "unknown ArchSpec field" in err_line(capsys)
    assert main(["compile", "mlp-digits", "--set", "rows=0", "-o", str(tmp_path)]) == 2
    assert "ArchSpec.rows" in err_line(capsys)


def test_bits_wider_than_the_array(capsys, tmp_path):
    assert main(["compile", "jsc-mlp", "--arch", "tiny-4x4", "--bits", "12", "-o",
                 str(tmp_path)]) == 2
    assert "in_bits=8" in err_line(capsys)


def test_arch_overrides():
    arch = resolve_arch("tiny-4x4", "os", "external", ["act_words=12288", "ext_bandwidth=0.5"])
    assert (arch.dataflow, arch.weight_store, arch.act_words, arch.ext_bandwidth) == (
        "os", "external", 12288, 0.5)
    assert arch.name == "tiny-4x4+act_words=12288+ext_bandwidth=0.5"
    assert parse_sets(["double_buffer=false", "dataflow=os"]) == {"double_buffer": False,
                                                                  "dataflow": "os"}


def test_compile_jsc_prints_summary(capsys, tmp_path):
    out = tmp_path / "jsc"
    assert main(["compile", "jsc-mlp", "--arch", "tiny-4x4", "--dataflow", "os", "-o",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "jsc-mlp on tiny-4x4 (4x4 os" in text and str(out) in text
    for layer in ("fc1", "fc2", "fc3", "fc4"):
        assert layer in text
    assert "host-executed" not in text
    # start..done = 16 input + the layers + 5 output elements + 4 sequencer cycles
    # (docs/timing.md, "Whole model"), from the per-layer figures printed above it
    layer = [int(ln.split()[-3].replace(",", "")) for ln in text.splitlines()
             if ln.strip().startswith("fc")]
    total = re.search(r"([\d,]+) cycles start..done", text).group(1)
    assert int(total.replace(",", "")) == 16 + sum(layer) + 5 + 4
    man = json.loads((out / "manifest.json").read_text())
    assert man["arch"]["dataflow"] == "os" and man["model"] == "jsc-mlp"
    assert (out / "report.md").read_text().startswith("# jsc-mlp on tiny-4x4")


@pytest.mark.slow
def test_compile_transformer_lists_host_ops(capsys, tmp_path):
    out = tmp_path / "tt"
    assert main(["compile", "tiny-transformer", "--arch", "tiny-4x4", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "host-executed (not on the accelerator)" in text
    for op in ("softmax (softmax)", "norm1 (layernorm)", "gelu (gelu)", "norm2 (layernorm)"):
        assert op in text
    report = (out / "report.md").read_text()
    assert "Host-executed ops" in report and "## Kernels" in report
    man = json.loads((out / "manifest.json").read_text())
    assert man["kind"] == "kernels" and len(man["kernels"]) == 10
    for k in man["kernels"]:
        assert (out / k["dir"] / "hwgen_accel.v").is_file()


def test_output_folder_that_is_not_a_build_is_refused(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["compile", "mlp-digits", "--arch", "tiny-4x4", "-o", str(tmp_path)]) == 2
    err = err_line(capsys)
    assert "not empty and not a build directory" in err and str(tmp_path) in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_phases_on_a_terminal(capsys, tmp_path, monkeypatch):
    """On a terminal, stderr says which phase a compile is in (big models take minutes);
    piped, it stays quiet (errors stay one line, the summary is on stdout)."""
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["compile", "jsc-mlp", "--arch", "tiny-4x4", "-o", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err.splitlines()
    phases = [ln.split("] ", 1)[1] for ln in err if ln.startswith("hwgen compile [")]
    assert phases[:3] == ["tracing and quantising jsc-mlp (8-bit) ...",
                          "mapping 4 compute layers onto tiny-4x4 ...",
                          "compiling one program ..."]
    assert len(phases) == 4 and re.fullmatch(
        r"generating Verilog \(4 layers, [\d,]+ instructions\) \.\.\.", phases[3]), phases
