"""Run-directory report and plots on degenerate runs, built directly (no DSE): an empty or
all-infeasible frontier (no point fits the board) and a space that fixes or omits a
dimension the report names (``dataflow``, ``bits``: the base value or the ArchSpec
default is reported)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from dse import plots, report
from dse.run import DseResult
from dse.space import Param, Space
from dse.study import Objective
from mapping.arch import ArchSpec

LAYERS = ("conv1", "fc")
OBJS = [Objective("throughput", "maximize"), Objective("lut", "minimize")]


def fake_ev(budget: dict | None = None):
    """What ``report.write_all`` reads of a level-0 evaluator."""
    return SimpleNamespace(
        layers=SimpleNamespace(compute=[SimpleNamespace(name=n) for n in LAYERS], eltwise=[]),
        resources=SimpleNamespace(available=True, source="test"),
        budget=budget if budget is not None else {"lut": 1000, "dsp": 10}, _acc={})


def point(index: int, params: dict, *, fits: bool = True, mapped: bool = True) -> dict:
    """A stored point as ``dse.run.flatten`` makes it."""
    p = {"index": index, "state": "COMPLETE" if mapped else "FAIL", **params}
    if not mapped:  # stored as a failed trial (dse.study)
        return {**p, "feasible": False, "reason": "conv1: activation scratchpad too small"}
    cycles = 1000 + 100 * index
    p.update(cycles=cycles, throughput=25e6 / cycles, lut=800 + index if fits else 5000 + index,
             dsp=4, bram=2, fits=fits, violation=0.0 if fits else 4.0, pes=16,
             onchip_bits=1 << 16)
    for n in LAYERS:
        p[f"cycles.{n}"], p[f"util.{n}"] = cycles // 2, 0.5
    return p


def result(tmp_path: Path, points: list[dict], frontier: list[dict]) -> DseResult:
    groups = [(f, [f]) for f in frontier]
    return DseResult(tmp_path, "study", points, frontier, [], OBJS, "test",
                     {"total": 1.0}, len(points), groups)


def figure_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# ------------------------------------------------------------- no point fits the board
def test_tradeoff_without_points_says_so(tmp_path):
    """Nothing mappable: no data at all (matplotlib cannot log-scale an empty axis)."""
    fig = plots.tradeoff([], "lut", "LUTs", [], tmp_path / "t.png", budget=1000.0)
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert plots.NO_POINT in figure_texts(fig)


def test_tradeoff_all_infeasible_says_no_point_fits(tmp_path):
    rows = [point(i, {"rows": 8, "cols": 8}, fits=False) for i in range(3)]
    fig = plots.tradeoff(rows, "lut", "LUTs", [], tmp_path / "t.png", budget=1000.0)
    assert plots.NO_FIT in figure_texts(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"  # the points are plotted
    grey = [c for c in ax.collections if str(c.get_label()).startswith("evaluated")]
    assert sorted(map(tuple, grey[0].get_offsets().tolist())) == sorted(
        (float(r["lut"]), float(r["throughput"])) for r in rows)


@pytest.mark.parametrize("mapped", [True, False], ids=["infeasible", "unmappable"])
def test_report_with_empty_frontier(tmp_path, mapped):
    """``hwgen dse resnet-block --trials 20``: every point too big (or unmappable)."""
    space = Space((Param("rows", (8, 16)), Param("dataflow", ("ws", "os"))))
    pts = [point(i, space.point(i), fits=False, mapped=mapped) for i in range(space.size)]
    report.write_all(result(tmp_path, pts, []), space, "resnet-block", "ulx3s-85f", fake_ev())
    text = (tmp_path / "report.md").read_text()
    assert "No point fits the board" in text
    assert f"{len(pts)} points stored, {len(pts) if mapped else 0} mappable" in text
    for name in ("points.csv", "pareto.csv", "throughput_vs_lut.png", "throughput_vs_dsp.png"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "layer_utilisation.png").exists()  # no design chosen


# ------------------------------------------------- a dimension the space fixes or omits
@pytest.mark.parametrize("base, dataflow, bits", [
    ({}, ArchSpec.dataflow, ArchSpec.in_bits),              # omitted: the ArchSpec default
    ({"dataflow": "os", "in_bits": 4, "w_bits": 4}, "os", 4),  # fixed by the space's base
])
def test_report_space_without_dataflow_choice(tmp_path, monkeypatch, base, dataflow, bits):
    space = Space((Param("rows", (2, 4)), Param("cols", (2, 4))), base)
    assert "dataflow" not in space.names and "bits" not in space.names
    pts = [point(i, space.point(i)) for i in range(space.size)]
    titles = []
    real = plots.layer_utilisation

    def spy(p, layers, path, title):
        titles.append(title)
        return real(p, layers, path, title)

    monkeypatch.setattr(plots, "layer_utilisation", spy)
    report.write_all(result(tmp_path, pts, pts[:1]), space, "cnn-digits", "ulx3s-85f",
                     fake_ev())
    p0 = pts[0]
    assert titles == [f"fastest frontier design #0: {p0['rows']}x{p0['cols']} {dataflow}, "
                      f"{bits}-bit"]
    assert (tmp_path / "layer_utilisation.png").is_file()
    assert "## Chosen design: #0" in (tmp_path / "report.md").read_text()
