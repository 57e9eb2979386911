"""Run-directory outputs: files exist, the trade-off plots contain the frontier points,
points.csv equals the study, pareto.csv equals a brute-force Pareto filter of points.csv."""

import csv

import numpy as np
import pytest

from dse import plots
from dse.run import run_dse
from dse.space import Space
from tests.dse.conftest import SMALL


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    run = tmp_path_factory.mktemp("plots")
    return run_dse("cnn-digits", "ulx3s-85f", run, space=Space.from_dict(SMALL),
                   strategy="random", trials=40, batch=20, seed=3)


def read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_files_exist(result):
    names = ["points.csv", "pareto.csv", "report.md", "accuracy_vs_bits.png",
             "layer_utilisation.png"]
    x = [o.metric for o in result.objectives][1]
    names.append(f"throughput_vs_{x}.png")
    for n in names:
        assert (result.run_dir / n).stat().st_size > 0, n
    assert len(read(result.run_dir / "points.csv")) == 40


def test_pareto_csv_is_brute_force_front(result):
    rows = [r for r in read(result.run_dir / "points.csv")
            if r["state"] == "COMPLETE" and r["fits_l0"] == "True"]
    objs = result.objectives
    key = {o.metric: (f"{o.metric}_l0" if f"{o.metric}_l0" in rows[0] else "accuracy_golden")
           for o in objs}
    sign = {o.metric: (1 if o.direction == "minimize" else -1) for o in objs}
    vec = [[sign[o.metric] * float(r[key[o.metric]]) for o in objs] for r in rows]
    front = set()
    for i, a in enumerate(vec):
        if not any(all(b[j] <= a[j] for j in range(len(a))) and b != a for b in vec):
            front.add(rows[i]["index"])
    assert {r["index"] for r in read(result.run_dir / "pareto.csv")} == front


def test_tradeoff_plot_contains_frontier(result, tmp_path):
    x = [o.metric for o in result.objectives][1]
    fig = plots.tradeoff(result.points, x, x, result.frontier, tmp_path / "t.png")
    red = [c for c in fig.axes[0].collections if "Pareto frontier" in str(c.get_label())]
    assert len(red) == 1
    got = {tuple(p) for p in np.asarray(red[0].get_offsets()).tolist()}
    want = {(float(p[x]), float(p["throughput"])) for p in result.frontier}
    assert got == want and want
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_report_names_fidelity(result):
    text = (result.run_dir / "report.md").read_text()
    assert "estimated" in text and "measured" in text
    assert (f"## Pareto frontier ({len(result.frontier)} points, {len(result.groups)} "
            "distinct objective vectors)") in text


def test_frontier_groups_are_distinct_objective_vectors(result):
    """pareto.csv: every member carries its group; a group = all frontier points with one
    objective vector (brute force over the CSV), the representative is a member, and the
    report's frontier table has exactly one row per group."""
    rows = read(result.run_dir / "pareto.csv")
    objs = [o.metric for o in result.objectives]
    key = {m: (f"{m}_l0" if f"{m}_l0" in rows[0] else "accuracy_golden") for m in objs}
    by_vec = {}
    for r in rows:
        by_vec.setdefault(tuple(r[key[m]] for m in objs), set()).add(r["index"])
    by_group = {}
    for r in rows:
        by_group.setdefault(r["group"], set()).add(r["index"])
        assert int(r["group_size"]) == sum(1 for x in rows if x["group"] == r["group"])
    assert sorted(map(sorted, by_group.values())) == sorted(map(sorted, by_vec.values()))
    for g, members in by_group.items():
        assert g in members
    text = (result.run_dir / "report.md").read_text()
    table = text.split("## Pareto frontier")[1].split("##")[0]
    body = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| #")]
    assert len(body) == min(len(by_group), 40)
    assert {ln.split(" | ")[0][2:] for ln in body} <= set(by_group)
