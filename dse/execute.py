"""Evaluating batches of points: in this process or on a Dask distributed cluster.

Workers build their evaluator once per process from an :class:`EvalConfig`
(model, board, space, run directory) and keep its layer caches across batches.
A batch is cut into one task per worker (points grouped by array shape, so
each worker's caches see disjoint shapes); results come back
in point order, so a parallel run tells the sampler exactly what a serial run
tells it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from dse.space import Space


@dataclass(frozen=True)
class EvalConfig:
    """Everything a worker needs to rebuild the level-0 evaluator."""

    model: str
    board: str
    space: dict[str, Any]  # Space.to_dict()
    run_dir: str

    def key(self) -> str:
        text = json.dumps([self.model, self.board, self.space, self.run_dir], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_EVALUATORS: dict[str, Any] = {}


def budget_of(board: str) -> dict[str, float]:
    import boards

    dev = boards.catalogue.device_of(board)
    out: dict[str, float] = {"lut": dev.luts, "ff": dev.ffs, "dsp": dev.dsps,
                             "bram": dev.bram_blocks, "bram_bits": dev.bram_total_bits}
    return out


def build_evaluator(cfg: EvalConfig):
    """The level-0 evaluator of ``cfg`` (cached per process)."""
    ev = _EVALUATORS.get(cfg.key())
    if ev is None:
        import boards
        from dse.accuracy import AccuracyTable
        from dse.level0 import Level0Evaluator
        from dse.model import model_layers
        from dse.resources import estimator_for

        family = boards.catalogue.family_of(cfg.board)
        ev = Level0Evaluator(Space.from_dict(cfg.space), model_layers(cfg.model),
                             estimator_for(family), budget_of(cfg.board),
                             AccuracyTable(cfg.model, cfg.run_dir))
        _EVALUATORS[cfg.key()] = ev
    return ev


def evaluate_points(cfg: EvalConfig, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Level-0 metrics of ``points`` (runs in a worker or in this process)."""
    return build_evaluator(cfg).evaluate_many(points)


AFFINITY_FIELDS = ("rows", "cols", "dataflow", "double_buffer", "bits")


def affinity(point: dict[str, Any], n: int) -> int:
    """Worker (0..n-1) for ``point``: a stable hash of the fields that decide its layers'
    candidate grids (so one worker prices each grid)."""
    key = repr([point.get(f) for f in AFFINITY_FIELDS])
    return zlib.crc32(key.encode()) % n


class SerialExecutor:
    """Evaluates in this process."""

    jobs = 1

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg

    def map(self, points: list[dict]) -> list[dict]:
        return evaluate_points(self.cfg, points)

    def submit_call(self, fn, *args, priority: int = 0):
        return fn(*args)

    def wait_any(self, futures: list) -> list:
        return list(futures)  # submit_call already ran them

    def close(self) -> None:
        pass


class DaskExecutor:
    """Evaluates on a Dask distributed cluster: a new ``LocalCluster`` of ``jobs``
    single-threaded worker processes, or the scheduler at ``address``."""

    def __init__(self, cfg: EvalConfig, jobs: int = 2, address: str | None = None):
        from dask.distributed import Client, LocalCluster

        self.cfg = cfg
        self._cluster = None
        if address:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        self.jobs = max(1, len(self.client.scheduler_info().get("workers", {})) or jobs)

    def map(self, points: list[dict]) -> list[dict]:
        """Level 0 of ``points`` in point order. Points go to workers by their array
        shape (:func:`affinity`), so each worker's layer caches see disjoint shapes and no
        layer is priced on two workers (a preference: other workers may steal)."""
        workers = sorted(self.client.scheduler_info().get("workers", {}))
        if len(workers) < 2:
            parts = [list(range(len(points)))]
        else:
            parts = [[] for _ in workers]
            for i, p in enumerate(points):
                parts[affinity(p, len(workers))].append(i)
        futures = []
        for w, idx in enumerate(parts):
            if idx:
                kw = {"workers": [workers[w]], "allow_other_workers": True} if len(parts) > 1 \
                    else {}
                futures.append((idx, self.client.submit(evaluate_points, self.cfg,
                                                        [points[i] for i in idx], pure=False,
                                                        **kw)))
        out: list[dict | None] = [None] * len(points)
        for idx, f in futures:
            for i, r in zip(idx, f.result(), strict=True):
                out[i] = r
        return out  # type: ignore[return-value]

    def submit_call(self, fn, *args, priority: int = 0):
        """``fn(*args)`` as a task; futures among ``args`` become dependencies; higher
        ``priority`` runs first."""
        return self.client.submit(fn, *args, pure=False, priority=priority)

    def wait_any(self, futures: list) -> list:
        """The futures of ``futures`` that are done (waits for at least one)."""
        from dask.distributed import wait

        return list(wait(futures, return_when="FIRST_COMPLETED").done)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
