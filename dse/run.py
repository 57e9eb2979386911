"""``run_dse``: one design-space exploration from a model and a board to a run directory.

Steps: accuracy of every model-wide bit width (cached in the run directory), the
resumable study (:mod:`dse.study`) evaluated serially or on Dask, the Pareto
frontier of the fitting points, verification of the top ``verify`` frontier
points at levels 1 and 2 (:mod:`dse.verify`, in parallel on the same
executor), then ``points.csv``, ``pareto.csv``, ``verified.json``, ``report.md``
and the plots (:mod:`dse.report`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dse.execute import DaskExecutor, EvalConfig, SerialExecutor, build_evaluator
from dse.pareto import collapse, pareto_mask
from dse.space import Space, default_space
from dse.storage import sqlite_url
from dse.study import Objective, StudyRunner, study_name


@dataclass
class DseResult:
    """What a run produced (files are in ``run_dir``)."""

    run_dir: Path
    study: str
    points: list[dict]  # every stored point: index, state, params and level-0 metrics
    frontier: list[dict]
    verified: list[dict]
    objectives: list[Objective]
    resource_source: str
    seconds: dict[str, float] = field(default_factory=dict)
    evaluated: int = 0
    groups: list[tuple[dict, list[dict]]] = field(default_factory=list)  # equal objectives
    pnr: str = "off"  # "on", "off" or why place-and-route is not available


def objectives_for(resources_available: bool, has_accuracy: bool) -> list[Objective]:
    """Throughput up; LUTs and DSPs down (or PEs and on-chip bits without a resource
    model); accuracy up when the model has a data set."""
    if resources_available:
        objs = [Objective("throughput", "maximize"), Objective("lut", "minimize"),
                Objective("dsp", "minimize")]
    else:
        objs = [Objective("throughput", "maximize"), Objective("pes", "minimize"),
                Objective("onchip_bits", "minimize")]
    if has_accuracy:
        objs.append(Objective("accuracy", "maximize"))
    return objs


def with_board_clock(space: Space, board: str) -> Space:
    """The space with ``clock_mhz`` fixed to the board's clock unless the space sets it."""
    import boards

    if "clock_mhz" in space.names or "clock_mhz" in space.base:
        return space
    b = boards.get(board)
    clock = getattr(b, "clock_mhz", None) or 100.0
    return replace(space, base={**space.base, "clock_mhz": float(clock)})


def flatten(index: int, params: dict, metrics: dict, state: str) -> dict:
    return {"index": index, "state": state, **params, **metrics}


def bit_widths(space: Space) -> list[tuple]:
    """Quant keys of the model-wide bit widths (per-layer combinations are computed lazily)."""
    if any(n.startswith("bits.") for n in space.names):
        return []
    if "bits" in space.names:
        return [(int(b), ()) for b in sorted(space.params[space.names.index("bits")].choices)]
    return [space.quant_key(space.point(0))]


def choose_verify(groups: list[tuple[dict, list[dict]]], k: int,
                  resource_key: str) -> list[dict]:
    """Top ``k`` frontier groups (points with equal objectives, :func:`dse.pareto.collapse`)
    by throughput per resource, among those within one percentage point of the frontier's
    best accuracy; one representative per group."""
    if not groups or k <= 0:
        return []
    reps = [g[0] for g in groups]
    best = max((f.get("accuracy") or 0.0) for f in reps)
    good = [f for f in reps if (f.get("accuracy") or 0.0) >= best - 0.01] or reps
    good.sort(key=lambda f: (-f["throughput"] / max(1.0, float(f.get(resource_key) or 1)),
                             f["index"]))
    return good[:k]


def group_frontier(frontier: list[dict], objs: list[Objective]) -> list[tuple[dict, list]]:
    """Frontier points grouped by objective vector; the representative has the fewest
    on-chip memory bits (then the lowest index). Members get ``group`` (representative's
    index) and ``group_size``."""
    groups = collapse(frontier, [o.metric for o in objs],
                      prefer=lambda r: (r.get("onchip_bits") or 0, r["index"]))
    for rep, members in groups:
        for m in members:
            m["group"], m["group_size"] = rep["index"], len(members)
    return groups


def run_dse(model: str, board: str, run_dir: str | Path, *, space: Space | None = None,
            strategy: str = "nsga2", trials: int = 10_000, batch: int = 100, seed: int = 0,
            jobs: int = 1, scheduler: str | None = None, storage: str | None = None,
            verify: int = 0, verify_samples: int = 8, simulator: str = "verilator",
            pnr: bool = False, progress: Callable[[str, int, int], None] | None = None) -> DseResult:
    """Run (or resume) a DSE of ``model`` on ``board`` into ``run_dir`` (module docstring);
    ``model`` is a zoo name or a source spec (:func:`dse.model.model_entry`).

    ``jobs`` > 1 or ``scheduler`` use Dask (a LocalCluster of ``jobs`` workers, or the
    scheduler at ``tcp://host:port``); ``storage`` is an Optuna RDB URL
    (default ``sqlite:///<run_dir>/study.db``).
    """
    import boards
    from dse import report
    from dse.model import model_entry, model_label

    boards.get(board)  # raises UnknownBoardError listing the boards
    entry = model_entry(model)  # raises UnknownModelError listing the models
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    space = with_board_clock(space or default_space(), board)
    cfg = EvalConfig(model, board, space.to_dict(), str(run.resolve()))
    t0 = time.perf_counter()
    secs: dict[str, float] = {}
    ev = build_evaluator(cfg)  # this process: accuracies for every bit width, then the study
    quant_keys = bit_widths(space)
    for q in quant_keys:
        ev.acc_of(q)
    secs["accuracy"] = time.perf_counter() - t0
    ds = entry.dataset()
    objs = objectives_for(ev.resources.available, ds is not None and ds.y_test is not None)
    name = study_name(model_label(model), board, space, strategy, seed, batch, objs)
    runner = StudyRunner(space, objs, storage or sqlite_url(run / "study.db"), name,
                         strategy=strategy, n_trials=trials, batch=batch, seed=seed)
    executor = (DaskExecutor(cfg, jobs, scheduler) if (jobs > 1 or scheduler)
                else SerialExecutor(cfg))
    try:
        t1 = time.perf_counter()
        runner.run(executor, (lambda d, n: progress("level 0", d, n)) if progress else None)
        secs["level0"] = time.perf_counter() - t1
        points = [flatten(*r) for r in runner.points()]
        ok = [p for p in points if p["state"] == "COMPLETE" and p.get("fits")]
        frontier: list[dict] = []
        if ok:
            vals = [[p[o.metric] for o in objs] for p in ok]
            mask = pareto_mask(vals, [o.direction for o in objs])
            frontier = [p for p, m in zip(ok, mask, strict=True) if m]
        groups = group_frontier(frontier, objs)
        res_key = "lut" if ev.resources.available else "pes"
        chosen = choose_verify(groups, verify, res_key)
        t2 = time.perf_counter()
        verified = verify_points(executor, model, board, space, chosen, run, verify_samples,
                                 simulator, progress, pnr)
        secs["verify"] = time.perf_counter() - t2
    finally:
        executor.close()
    secs["total"] = time.perf_counter() - t0
    from dse.verify import pnr_supported

    ok_pnr, why = pnr_supported(board)
    result = DseResult(run, name, points, frontier, verified, objs, ev.resources.source, secs,
                       runner.evaluated, groups, ("on" if ok_pnr else why) if pnr else "off")
    report.write_all(result, space, model if model == entry.name else
                     f"{entry.name} ({json.loads(model)['spec']})", board, ev)
    return result


STAGE_NAMES = {"l1": "synthesis", "l2": "simulation", "pnr": "place-and-route"}


def _outcome(future, stage: str) -> dict[str, Any]:
    """A verification task's result; a task the cluster could not finish (its worker died
    more often than Dask's ``allowed-failures``, or it was cancelled) becomes that stage's
    error on the point: recorded, never lost, not retried again."""
    if not hasattr(future, "result"):
        return future
    try:
        return future.result()
    except Exception as exc:  # KilledWorker, CancelledError, a worker-side crash
        return {"error": f"{stage}: {type(exc).__name__}: {exc}"}


def verify_points(executor, model: str, board: str, space: Space, chosen: list[dict],
                  run: Path, samples: int, simulator: str, progress,
                  pnr: bool = False) -> list[dict]:
    """Levels 1 and 2 (and place-and-route with ``pnr``) of ``chosen``; cached in
    verified.json.

    Every point is built first (seconds each); then its synthesis and its simulation are
    separate tasks (place-and-route after its synthesis), dispatched longest first with at
    most ``jobs`` in flight, so two workers run one point's Yosys beside another's.
    """
    from dse import verify as V

    cache_file = run / "verified.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if pnr and not V.pnr_supported(board)[0]:
        pnr = False  # the report says "synthesis only"

    def stale(e: dict) -> bool:
        return pnr and "pnr" not in e and "place-and-route" not in e.get("error", "")

    todo = [p for p in chosen if str(p["index"]) not in cache or stale(cache[str(p["index"])])]
    todo.sort(key=lambda p: -float(p.get("lut") or p.get("pes") or 0))
    sub = executor.submit_call
    builds = [sub(V.build_task, model, space.to_dict(), {k: p[k] for k in space.names},
                  str(run / "builds" / f"p{p['index']}")) for p in todo]
    builds = [_outcome(f, "build") for f in builds]
    # then our own longest-first queue with at most `jobs` tasks in flight: every synthesis
    # (largest predicted design first), then the simulations, then place-and-route. (Dask's
    # priorities do not hold here: workers take queued root tasks two at a time.)
    queue = [("l1", n, V.synth_task, (b, board)) for n, b in enumerate(builds)]
    queue += [("l2", n, V.sim_task, (b, model, samples, simulator)) for n, b in enumerate(builds)]
    parts: list[dict] = [{} for _ in todo]
    inflight: dict = {}
    seq = itertools.count()
    finished = 0
    while queue or inflight:
        while queue and len(inflight) < max(1, executor.jobs):
            kind, n, fn, args = queue.pop(0)
            inflight[next(seq)] = (kind, n, executor.submit_call(fn, *args))
        done = executor.wait_any([f for _, _, f in inflight.values()])
        for key in [k for k, (_, _, f) in inflight.items() if any(f is d for d in done)]:
            kind, n, f = inflight.pop(key)
            parts[n][kind] = _outcome(f, STAGE_NAMES[kind])
            if kind == "l1" and pnr:
                queue.append(("pnr", n, V.pnr_task, (builds[n], parts[n]["l1"], board)))
            if all(k in parts[n] for k in ("l1", "l2", *(("pnr",) if pnr else ()))):
                cache[str(todo[n]["index"])] = V.merge(builds[n], parts[n]["l1"],
                                                       parts[n]["l2"], parts[n].get("pnr"))
                cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True))
                finished += 1
                if progress:
                    progress("verify", finished, len(todo))
    out = []
    for p in chosen:
        v: dict[str, Any] = dict(p)
        r = cache[str(p["index"])]
        v["verify_error"] = r.get("error", "")
        v["build_seconds"] = r.get("build_seconds")
        for lvl in ("l1", "l2"):
            for k, val in r.get(lvl, {}).items():
                v[f"{k}_{lvl}"] = val
        for k, val in r.get("pnr", {}).items():
            v[f"{k}_pnr"] = val
        if v.get("cycles_l2"):
            v["throughput_l2"] = p["throughput"] * p["cycles"] / v["cycles_l2"]
            if v.get("fmax_mhz_pnr"):
                v["throughput_pnr"] = v["fmax_mhz_pnr"] * 1e6 / v["cycles_l2"]
        out.append(v)
    return out
