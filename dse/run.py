"""``run_dse``: one design-space exploration from a model and a board to a run directory.

Steps: accuracy of every model-wide bit width (cached in the run directory), the
resumable study (:mod:`dse.study`) evaluated serially or on Dask, the Pareto
frontier of the fitting points, verification of the top ``verify`` frontier
points at levels 1 and 2 (:mod:`dse.verify`, in parallel on the same
executor), then ``points.csv``, ``pareto.csv``, ``verified.json``, ``report.md``
and the plots (:mod:`dse.report`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dse.execute import DaskExecutor, EvalConfig, SerialExecutor, build_evaluator
from dse.pareto import pareto_mask
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


def choose_verify(frontier: list[dict], k: int, resource_key: str) -> list[dict]:
    """Top ``k`` distinct frontier designs by throughput per resource, among those within
    one percentage point of the frontier's best accuracy."""
    if not frontier or k <= 0:
        return []
    best = max((f.get("accuracy") or 0.0) for f in frontier)
    good = [f for f in frontier if (f.get("accuracy") or 0.0) >= best - 0.01] or frontier
    good.sort(key=lambda f: (-f["throughput"] / max(1.0, float(f.get(resource_key) or 1)),
                             f["index"]))
    out, seen = [], set()
    for f in good:  # one point per distinct level-0 design (others differ in unused fields)
        sig = tuple(f.get(c) for c in ("rows", "cols", "dataflow", "bits", "cycles",
                                       "onchip_bits", "lut", "dsp", "bram", "accuracy"))
        if sig not in seen:
            seen.add(sig)
            out.append(f)
    return out[:k]


def run_dse(model: str, board: str, run_dir: str | Path, *, space: Space | None = None,
            strategy: str = "nsga2", trials: int = 10_000, batch: int = 100, seed: int = 0,
            jobs: int = 1, scheduler: str | None = None, storage: str | None = None,
            verify: int = 0, verify_samples: int = 8, simulator: str = "verilator",
            progress: Callable[[str, int, int], None] | None = None) -> DseResult:
    """Run (or resume) a DSE of zoo ``model`` on ``board`` into ``run_dir`` (module docstring).

    ``jobs`` > 1 or ``scheduler`` use Dask (a LocalCluster of ``jobs`` workers, or the
    scheduler at ``tcp://host:port``); ``storage`` is an Optuna RDB URL
    (default ``sqlite:///<run_dir>/study.db``).
    """
    import boards
    import models
    from dse import report

    boards.get(board)  # raises UnknownBoardError listing the boards
    entry = models.get(model)  # raises UnknownModelError listing the models
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
    objs = objectives_for(ev.resources.available, entry.dataset() is not None)
    name = study_name(model, board, space, strategy, seed, batch, objs)
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
        res_key = "lut" if ev.resources.available else "pes"
        chosen = choose_verify(frontier, verify, res_key)
        t2 = time.perf_counter()
        verified = verify_points(executor, model, board, space, chosen, run, verify_samples,
                                 simulator, progress)
        secs["verify"] = time.perf_counter() - t2
    finally:
        executor.close()
    secs["total"] = time.perf_counter() - t0
    result = DseResult(run, name, points, frontier, verified, objs, ev.resources.source, secs,
                       runner.evaluated)
    report.write_all(result, space, model, board, ev)
    return result


def verify_points(executor, model: str, board: str, space: Space, chosen: list[dict],
                  run: Path, samples: int, simulator: str, progress) -> list[dict]:
    """Levels 1 and 2 of ``chosen`` (in parallel on the executor); cached in verified.json."""
    from dse.verify import verify_point

    cache_file = run / "verified.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    todo = [p for p in chosen if str(p["index"]) not in cache]
    futs = []
    for p in todo:
        point = {n: p[n] for n in space.names}
        futs.append((p, executor.submit_call(verify_point, model, board, space.to_dict(), point,
                                             str(run / "builds" / f"p{p['index']}"), (1, 2),
                                             samples, simulator)))
    for n, (p, f) in enumerate(futs):
        cache[str(p["index"])] = f.result() if hasattr(f, "result") else f
        cache_file.write_text(json.dumps(cache, indent=1, sort_keys=True))
        if progress:
            progress("verify", n + 1, len(futs))
    out = []
    for p in chosen:
        v: dict[str, Any] = dict(p)
        r = cache[str(p["index"])]
        v["verify_error"] = r.get("error", "")
        for k, val in r.get("l1", {}).items():
            v[f"{k}_l1"] = val
        for k, val in r.get("l2", {}).items():
            v[f"{k}_l2"] = val
        if v.get("cycles_l2"):
            v["throughput_l2"] = p["throughput"] * p["cycles"] / v["cycles_l2"]
        out.append(v)
    return out
