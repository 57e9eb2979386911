"""The study loop: resume after SIGKILL (a real subprocess), Dask vs serial, grid coverage."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dse.run import run_dse
from dse.space import Space
from tests.dse.conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]


def stored_indices(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT value_json FROM trial_user_attributes "
                           "WHERE key = 'dse.index'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    return [json.loads(v) for (v,) in rows]


def trial_states(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [s for (s,) in con.execute("SELECT state FROM trials")]
    finally:
        con.close()


def params_by_index(run) -> dict:
    return {p["index"]: {n: p[n] for n in Space.from_dict(SMALL).names} for p in run.points}


def cli(run_dir, space_file, trials, batch, strategy="random"):
    return [sys.executable, "-m", "hwgen", "dse", "cnn-digits", "--board", "ulx3s-85f",
            "--strategy", strategy, "--trials", str(trials), "--batch", str(batch),
            "--seed", "5", "--space", str(space_file), "--verify-frontier", "0",
            "-o", str(run_dir)]


def test_sigkill_resume_no_lost_or_duplicate_trials(tmp_path, small_toml):
    trials, batch = 160, 10
    run = tmp_path / "run"
    db = run / "study.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cli(run, small_toml, trials, batch, "nsga2"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and len(stored_indices(db)) >= 35:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = stored_indices(db)
    assert 35 <= len(killed_at) < trials
    done = subprocess.run(cli(run, small_toml, trials, batch, "nsga2"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    idx = stored_indices(db)
    assert sorted(idx) == list(range(trials))  # nothing lost, nothing twice
    assert set(trial_states(db)) <= {"COMPLETE", "FAIL"}  # no RUNNING left behind
    assert len(trial_states(db)) == trials
    # the resumed study asked exactly what an uninterrupted run asks
    ref = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "ref", space=Space.from_dict(SMALL),
                  strategy="nsga2", trials=trials, batch=batch, seed=5)
    resumed = run_dse("cnn-digits", "ulx3s-85f", run, space=Space.from_dict(SMALL),
                      strategy="nsga2", trials=trials, batch=batch, seed=5)
    assert resumed.evaluated == 0
    assert params_by_index(resumed) == params_by_index(ref)


def frontier_params(res) -> list[tuple]:
    names = Space.from_dict(SMALL).names
    return sorted(tuple(p[n] for n in names) for p in res.frontier)


def test_dask_matches_serial(tmp_path):
    kw = {"space": Space.from_dict(SMALL), "strategy": "nsga2", "trials": 60, "batch": 20,
          "seed": 11}
    serial = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "serial", jobs=1, **kw)
    dask = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "dask", jobs=2, **kw)
    assert len(serial.points) == len(dask.points) == 60
    assert params_by_index(serial) == params_by_index(dask)
    assert frontier_params(serial) == frontier_params(dask) and serial.frontier


def test_grid_covers_space_once(tmp_path):
    sp = Space.from_dict(SMALL)
    res = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "g", space=sp, strategy="grid",
                  trials=10**6, batch=16)
    assert [p["index"] for p in res.points] == list(range(sp.size))
    assert [{n: p[n] for n in sp.names} for p in res.points] == [sp.point(i)
                                                                  for i in range(sp.size)]
    # a second call evaluates nothing
    again = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "g", space=sp, strategy="grid",
                    trials=10**6, batch=16)
    assert again.evaluated == 0 and len(again.points) == sp.size


def _drive(sampler_for, batches: int, batch: int) -> list[dict]:
    """Ask/tell ``batches`` batches the way StudyRunner does (a fresh sampler per batch,
    all asks before any tell) on a closed-form 2-objective problem; FAIL every 7th."""
    import optuna

    from dse.study import distributions

    dists = distributions(Space.from_dict(SMALL))
    study = optuna.create_study(directions=["minimize", "maximize"])
    asked = []
    for b in range(batches):
        study.sampler = sampler_for(b)
        trials = [study.ask(dists) for _ in range(batch)]
        for t in trials:
            p = t.params
            asked.append(dict(p))
            t.set_user_attr("violation", float(p["rows"] * p["cols"] > 32))
            if (p["rows"] + 3 * p["cols"] + len(asked)) % 7 == 0:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(t, [p["rows"] * p["cols"] + p["act_banks"],
                               p["cols"] - 0.1 * p["rows"] + (p["dataflow"] == "os")])
    return asked


@pytest.mark.parametrize("strategy", ["nsga2", "tpe"])
def test_batch_samplers_ask_what_stock_optuna_asks(strategy):
    """The per-batch caches (generation, parents, shared incremental search space) must
    not change a single point: compare with Optuna's own samplers, same seeds."""
    import warnings

    import optuna

    from dse.study import make_sampler, shared_search_space

    def stock(b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cons = lambda t: (float(t.user_attrs.get("violation", 0.0)),)  # noqa: E731
            if strategy == "nsga2":
                return optuna.samplers.NSGAIISampler(seed=100 + b, population_size=12,
                                                     constraints_func=cons)
            return optuna.samplers.TPESampler(seed=100 + b, multivariate=True,
                                              constraints_func=cons)

    shared = shared_search_space(strategy)
    ours = _drive(lambda b: make_sampler(strategy, 100 + b, 12, shared), 6, 12)
    assert ours == _drive(stock, 6, 12)
    assert len({tuple(sorted(p.items())) for p in ours}) > 20  # it really searched
