"""``hwgen synth`` and ``hwgen boards`` end to end (small design, real tools)."""

import json

import pytest
from boards_designs import mac_array_verilog

from hwgen.cli import main


@pytest.fixture(scope="module")
def build(design_dir):
    path, top = mac_array_verilog(design_dir, 2, 2)
    manifest = {"verilog": path.name, "top_module": top, "predicted_cycles_total": 1000}
    (design_dir / "manifest.json").write_text(json.dumps(manifest))
    return design_dir, path, top


def test_boards_table(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in ("ulx3s-85f", "orangecrab-25f", "icebreaker", "hx8k-breakout", "arty-a7-35",
                 "arty-a7-100"):
        assert name in out
    assert "83640 LUT4" in out and "4 x 256K" in out and "synth only" in out
    assert main(["boards", "--devices"]) == 0
    assert "LFE5U-45F" in capsys.readouterr().out


def test_synth_build_dir_with_pnr(build, synth_cache, capsys, tmp_path):
    build_dir, _, _ = build
    out_json = tmp_path / "r.json"
    assert main(["synth", str(build_dir), "--board", "ulx3s-85f", "--pnr",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "dsp       4     156" in out and "measured (synthesis)" in out
    assert "fit: yes" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("Fmax clk:"))
    fmax = float(line.split()[2])
    assert "measured, nextpnr ooc" in line
    tp = next(ln for ln in out.splitlines() if ln.startswith("throughput"))
    assert "estimated cycles, measured Fmax" in tp
    assert f"{fmax * 1e6 / 1000:,.1f}"[:4] in tp
    data = json.loads(out_json.read_text())
    assert data["fit"]["fits"] and data["synth"]["dsp"] == 4 and "clk" in data["pnr"]["fmax_mhz"]


def test_synth_verilog_xilinx_and_no_fit(build, synth_cache, capsys):
    _, path, top = build
    assert main(["synth", "--verilog", str(path), "--top", top, "--board", "arty-a7-35"]) == 0
    out = capsys.readouterr().out
    assert "Xilinx: synthesis only" in out



def test_synth_does_not_fit_exit_1(build, synth_cache, capsys, monkeypatch):
    from dataclasses import replace

    from boards.catalogue import BOARDS

    _, path, top = build
    small = replace(BOARDS["icebreaker"], device=replace(BOARDS["icebreaker"].device, dsps=2))
    monkeypatch.setitem(BOARDS, "icebreaker", small)
    assert main(["synth", "--verilog", str(path), "--top", top, "--board", "icebreaker"]) == 1
    assert "fit: NO, does not fit iCE40UP5K: dsp 4 > 2" in capsys.readouterr().out


@pytest.mark.parametrize("argv,match", [
    (["synth", "--board", "icebreaker"], "BUILD_DIR"),
    (["synth", "--verilog", "x.v", "--board", "icebreaker"], "--top"),
    (["synth", "nowhere", "--board", "icebreaker"], "manifest.json does not exist"),
    (["synth", "--verilog", "x.v", "--top", "x", "--board", "zedboard"], "unknown board"),
    (["synth", "--verilog", "x.v", "--top", "x", "--board", "arty-a7-100", "--pnr"],
     "synthesis-only"),
    (["synth", "--verilog", "missing.v", "--top", "x", "--board", "icebreaker"],
     "does not exist"),
])
def test_cli_errors(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_throughput_cycles_from_manifest():
    from hwgen.cli.synth_cmd import run_cycles_of

    # docs/timing.md "Whole model": input stream + layers + output stream + 4 sequencer cycles
    man = {"predicted_cycles_total": 2468, "program": {"input_count": 64, "output_count": 10}}
    assert run_cycles_of(man) == [(64 + 2468 + 10 + 4, "estimated",
                                   "mapping.timing.run_cycles, start..done incl. streams")]
    assert run_cycles_of({"predicted_cycles_total": 1000}) == [
        (1000, "estimated", "layer cycles only")]
    both = run_cycles_of({**man, "measured_cycles_total": 2550})
    assert [k for _, k, _ in both] == ["measured", "estimated"] and both[0][0] == 2550
    assert run_cycles_of({}) == []


def test_synth_no_fit_skips_pnr(build, synth_cache, capsys, monkeypatch):
    from dataclasses import replace

    from boards import pnr
    from boards.catalogue import BOARDS

    _, path, top = build
    small = replace(BOARDS["icebreaker"], device=replace(BOARDS["icebreaker"].device, dsps=2))
    monkeypatch.setitem(BOARDS, "icebreaker", small)
    monkeypatch.setattr(pnr, "estimate_fmax", lambda *a, **k: pytest.fail("placed a no-fit"))
    assert main(["synth", "--verilog", str(path), "--top", top, "--board", "icebreaker",
                 "--pnr"]) == 1
    out = capsys.readouterr().out
    assert "fit: NO" in out and "Fmax: not placed: the design does not fit iCE40UP5K" in out
