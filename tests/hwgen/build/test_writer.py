"""hwgen.build.writer: one writer, staged beside the destination and renamed into place. A
failure part-way leaves no half-written build (nothing, or the previous complete build); a
folder that is not a build is never replaced; a kernels build records its objective."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.build import emit as emit_mod
from hwgen.build import flow, report
from hwgen.build.manifest import BuildError, Manifest
from hwgen.build.writer import BuildDir
from hwgen.compiler.program import ComputeLayer, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping.arch import ArchSpec, preset
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping

TINY = preset("tiny-4x4")
ARCH = ArchSpec(rows=2, cols=2, act_words=256, w_words=64, acc_words=64, ext_word_bits=16)


def small_accelerator():
    rng = np.random.default_rng(0)
    lm = LayerMapping("fc1", LoopNest.gemm(4, 3, 5), ARCH.dataflow, 2, 3, 5)
    layer = ComputeLayer(lm, rng.integers(-128, 128, (5, 3)), rng.integers(-50, 50, 3),
                         np.full(3, 1 << 14), np.full(3, 9))
    return Accelerator(ARCH, compile_program(ARCH, [layer]))


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def fail(*_a, **_k):
    raise RuntimeError("disk full (simulated)")


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    """emit fails after the Verilog and RTLIL were written: no build directory appears."""
    monkeypatch.setattr(emit_mod, "_hex_lines", fail)
    dest = tmp_path / "design"
    with pytest.raises(RuntimeError, match="simulated"):
        emit_mod.emit(small_accelerator(), dest)
    assert not dest.exists() and leftovers(tmp_path) == []


def test_failure_midway_keeps_the_previous_build(mlp_graph, build_copy, monkeypatch):
    """A recompile that fails after the design, schedule and graph were staged (writing the
    report) leaves the previous complete build in place, still valid."""
    before = {p.name: p.read_bytes() for p in build_copy.iterdir()}
    monkeypatch.setattr(report, "render", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        flow.compile_model(mlp_graph, TINY, build_copy, model="other", settings={"bits": 4})
    assert {p.name: p.read_bytes() for p in build_copy.iterdir()} == before
    assert Manifest.load(build_copy).model == "mlp-digits"
    assert leftovers(build_copy.parent) == []


def test_recompile_replaces_the_build(mlp_graph, build_copy):
    (build_copy / "notes.txt").write_text("stale")  # not part of the new build
    cm = flow.compile_model(mlp_graph, TINY, build_copy, model="again", settings={"bits": 7})
    man = Manifest.load(build_copy)
    assert man.model == "again" and man.settings == {"bits": 7} and man == cm.manifest
    assert not (build_copy / "notes.txt").exists() and leftovers(build_copy.parent) == []


def test_a_folder_that_is_not_a_build_is_not_replaced(mlp_graph, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.tex").write_text("keep me")
    with pytest.raises(flow.FlowError, match="not empty and not a build directory"):
        flow.compile_model(mlp_graph, TINY, dest, model="mlp-digits")
    with pytest.raises(BuildError, match="not empty and not a build directory"):
        with BuildDir(dest):  # emit's writer
            pytest.fail("staged into a folder that is not a build")
    assert [p.name for p in dest.iterdir()] == ["thesis.tex"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="is not a directory"):
        with BuildDir(tmp_path / "file"):
            pytest.fail("staged over a file")
    assert leftovers(tmp_path) == []


def test_emit_into_an_empty_folder(tmp_path):
    man = emit_mod.emit(small_accelerator(), tmp_path)
    assert man.kind == "design" and Manifest.load(tmp_path) == man
    assert not [n for n in leftovers(tmp_path.parent) if n.startswith(f".{tmp_path.name}.")]


def test_builddir_needs_finish(tmp_path):
    with pytest.raises(RuntimeError, match="finish"):
        with BuildDir(tmp_path / "b") as b:
            (b.path / "x").write_text("x")
    assert not (tmp_path / "b").exists() and leftovers(tmp_path) == []


def test_kernels_build_records_the_objective(tmp_path):
    """A graph compiled as kernels with objective energy says energy (it said latency)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.Softmax(-1)).eval()
    from mapping.passes.pipeline import prepare

    g = prepare(model, torch.randn(1, 8), torch.randn(32, 8))
    out = tmp_path / "k"
    cm = flow.compile_model(g, TINY, out, model="linear-softmax", objective="energy")
    man = Manifest.load(out)
    assert man.kind == "kernels" and man.objective == "energy" == cm.manifest.objective
    assert json.loads((out / "manifest.json").read_text())["objective"] == "energy"
    assert "mapper objective `energy`" in (out / "report.md").read_text()
    (k,) = man.kernels
    assert Manifest.load(out / k.dir).kind == "design"
    assert f"{k.dir}/hwgen_accel.v" in man.files and f"{k.dir}/manifest.json" in man.files
    assert {"graph.json", "graph.npz", "schedule.json", "report.md"} <= set(man.files)
    from sim.accelerator import load_build

    with pytest.raises(BuildError, match="kernel builds"):
        load_build(out)
