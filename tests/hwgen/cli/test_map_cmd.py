"""``hwgen map``: table, JSON schedule and user errors."""

from __future__ import annotations

import json

from hwgen.cli import main
from mapping import timing
from mapping.arch import ArchSpec, preset
from mapping.schedule import Schedule


def test_table_lists_every_compute_layer_with_totals(capsys):
    assert main(["map", "mlp-digits", "--arch", "tiny-4x4"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["layer", "GEMM"]
    body = [ln for ln in lines if ln.startswith("fc")]
    assert [ln.split()[0] for ln in body] == ["fc1", "fc2", "fc3"]
    assert body[0].split()[1] == "1x64x64"  # M x N x K of the first linear layer
    total = next(ln for ln in lines if ln.startswith("total")).split()
    assert int(total[1].replace(",", "")) == sum(int(ln.split()[4].replace(",", ""))
                                                  for ln in body)
    assert "estimated" in out
    assert " us at " not in out  # no time at the unverified clock target


def test_json_is_a_schedule_whose_cycles_follow_the_timing_contract(capsys):
    assert main(["map", "cnn-digits", "--arch", "edge-8x8", "--objective", "energy",
                 "--json"]) == 0
    s = Schedule.from_json(capsys.readouterr().out)
    arch = preset("edge-8x8")
    assert s.arch_name == "edge-8x8" and len(s.layers) == 3
    for lm, c in zip(s.layers, s.costs, strict=True):
        assert c.cycles == timing.layer_cycles(lm, arch).cycles


def test_arch_from_toml_file(tmp_path, capsys):
    path = tmp_path / "a.toml"
    ArchSpec(name="file-arch", rows=4, cols=2, dataflow="os").save(path)
    assert main(["map", "jsc-mlp", "--arch", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["arch"] == "file-arch"
    assert {x["mapping"]["dataflow"] for x in d["layers"]} == {"os"}


def test_user_errors(tmp_path, capsys):
    assert main(["map", "no-such-model", "--arch", "tiny-4x4"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert main(["map", "mlp-digits", "--arch", "huge-99x99"]) == 2
    assert "unknown architecture preset 'huge-99x99'" in capsys.readouterr().err
    small = tmp_path / "small.toml"
    ArchSpec(act_words=100).save(small)
    assert main(["map", "mlp-digits", "--arch", str(small)]) == 2
    err = capsys.readouterr().err
    assert "layer fc1: the activation scratchpad (act_words=100) cannot hold one output row" \
        in err and "raise act_words to at least 156" in err
    assert main(["map", "mlp-digits", "--arch", "tiny-4x4", "--bits", "1"]) == 2
    assert "--bits 1 is invalid" in capsys.readouterr().err


def test_map_needs_no_calibration_and_agrees_with_the_quantised_graph(capsys, monkeypatch):
    """``hwgen map`` traces and lowers without calibrating (widths from --bits); its
    schedule equals the mapper's on the fully prepared (quantised) graph at those widths."""
    import models
    from mapping.mapper import map_graph
    from mapping.passes import pipeline, prepare_entry

    def no_calibration(*a, **k):
        raise AssertionError("hwgen map calibrated the quantiser")

    for name, bits in (("resnet-block", 8), ("cnn-digits", 6), ("tiny-transformer", 8)):
        want = map_graph(prepare_entry(models.get(name), bits=bits), preset("edge-8x8"))
        with monkeypatch.context() as m:
            m.setattr(pipeline, "calibration_inputs", no_calibration)
            assert main(["map", name, "--arch", "edge-8x8", "--bits", str(bits),
                         "--json"]) == 0
        got = Schedule.from_json(capsys.readouterr().out)
        assert got.layers == want.layers and [c.cycles for c in got.costs] == [
            c.cycles for c in want.costs]
