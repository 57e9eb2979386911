"""The DSE on a real Dask cluster: a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1 (started here, bounded in time, cleaned up). One worker is SIGKILLed mid-run: the
run completes with no lost and no duplicate trials. Then the driver is SIGKILLed mid-run and
the same command resumes against the same scheduler: the study holds exactly the points an
uninterrupted serial run asks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from test_study import SMALL, cli, params_by_index, stored_indices, trial_states

from dse.run import run_dse
from dse.space import Space

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")
TRIALS, BATCH = 80, 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def cluster(tmp_path: Path):
    """(address, [worker processes]) of a scheduler and two single-threaded workers."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "cluster.log", "w")
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env, stdout=log, stderr=log)]
    try:
        _wait_for(lambda: _connects(port), 60, "the scheduler")
        workers = [subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1",
                                     "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                    env=env, stdout=log, stderr=log) for _ in range(2)]
        procs += workers
        from dask.distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=30)
        log.close()


def _connects(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_dse_on_a_real_cluster_survives_a_worker_and_a_driver_kill(tmp_path, small_toml):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with cluster(tmp_path) as (address, workers):
        # 1. a worker dies mid-run: the run completes, every trial once
        run1 = tmp_path / "run1"
        cmd = [*cli(run1, small_toml, TRIALS, BATCH, "nsga2"), "--scheduler", address]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: (run1 / "study.db").exists()
                  and len(stored_indices(run1 / "study.db")) >= 20 or proc.poll() is not None,
                  300, "20 stored trials")
        assert proc.poll() is None, "the run finished before a worker could be killed"
        workers[0].send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        idx = stored_indices(run1 / "study.db")
        assert sorted(idx) == list(range(TRIALS))
        assert set(trial_states(run1 / "study.db")) <= {"COMPLETE", "FAIL"}

        # 2. the driver dies mid-run; the same command resumes on the same scheduler
        run2 = tmp_path / "run2"
        cmd = [*cli(run2, small_toml, TRIALS, BATCH, "nsga2"), "--scheduler", address]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        db = run2 / "study.db"
        _wait_for(lambda: db.exists() and len(stored_indices(db)) >= 30
                  or proc.poll() is not None, 300, "30 stored trials")
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 30 <= len(stored_indices(db)) < TRIALS
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(stored_indices(db)) == list(range(TRIALS))
        assert set(trial_states(db)) <= {"COMPLETE", "FAIL"}
    # both cluster runs asked exactly what an uninterrupted serial run asks
    ref = run_dse("cnn-digits", "ulx3s-85f", tmp_path / "ref", space=Space.from_dict(SMALL),
                  strategy="nsga2", trials=TRIALS, batch=BATCH, seed=5, jobs=1)
    for run in (run1, run2):
        again = run_dse("cnn-digits", "ulx3s-85f", run, space=Space.from_dict(SMALL),
                        strategy="nsga2", trials=TRIALS, batch=BATCH, seed=5, jobs=1)
        assert again.evaluated == 0
        assert params_by_index(again) == params_by_index(ref)
