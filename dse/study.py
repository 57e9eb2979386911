"""Search strategies and the resumable study loop.

Strategies: ``grid`` (exhaustive, grid order), ``random``, ``tpe`` (Optuna
multi-objective TPE) and ``nsga2`` (Optuna NSGA-II). One Optuna study per run
holds every evaluated point: it is the source of truth (``points.csv`` is
regenerated from it).

The loop works in *batches* of ``batch`` points with a fixed index range
(``b * batch ... ``). For batch ``b`` a fresh sampler seeded with
``seed * 1_000_003 + b`` asks ``batch`` points from an in-memory mirror of the
study (the finished trials of batches ``< b``); the batch is evaluated (in this
process or on Dask), then every point is told to the mirror in index order and the
batch's new trials are written to the RDB study in one transaction
(:func:`dse.storage.add_trials_batch`). So serial and
parallel runs, and interrupted and uninterrupted runs, ask the same points.

Resume rule: trials are written only when finished (COMPLETE, or FAIL when the
point cannot run), each with its index ``dse.index``, a batch at a time; a killed
run therefore leaves no RUNNING trial of its own. On restart, batches whose indices are all
stored are replayed into the mirror without evaluation; the first incomplete
batch is asked again with the same seed (so the same points), its stored
indices are reused (checked to have the same parameters) and only the missing
indices are evaluated — each exactly once. Sampler caches the mirror keeps in its
study system attributes are copied to the stored study right after a batch is
asked (before any of its trials is stored), tagged with the batch, and on restart
restored only for finished batches. A RUNNING trial found in the study
(written by another tool) is marked FAIL and its index is evaluated again once.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import TrialState

from dse.space import Space
from dse.storage import add_trials_batch, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

STRATEGIES = ("grid", "random", "tpe", "nsga2")
INDEX_ATTR = "dse.index"
METRICS_ATTR = "metrics"
CACHE = "dse.cache:"


class StudyError(ValueError):
    """A bad study setting or a stored study that does not match this run."""


@dataclass(frozen=True)
class Objective:
    """A metric and its direction (``maximize`` | ``minimize``)."""

    metric: str
    direction: str


def make_sampler(strategy: str, seed: int, population: int, search_space=None):
    """A fresh sampler for one batch. ``search_space`` (an Optuna ``IntersectionSearchSpace``
    kept by the caller across batches) replaces the sampler's own, so the intersection of
    the finished trials' distributions is updated incrementally instead of recomputed."""
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)

    def constraints(t):
        return (float(t.user_attrs.get("violation", 0.0)),)

    with warnings.catch_warnings():  # constraints_func is the documented way in optuna 5.0
        warnings.simplefilter("ignore")
        if strategy == "tpe":
            sampler = _BatchTPE(seed=seed, multivariate=True, constraints_func=constraints)
        elif strategy == "nsga2":
            sampler = _BatchNSGAII(seed=seed, population_size=population,
                                   constraints_func=constraints)
        else:
            raise StudyError(f"unknown strategy {strategy!r}; strategies: "
                             f"{', '.join(STRATEGIES)}")
    if search_space is not None:
        sampler._search_space = search_space  # Optuna 5: the sampler's IntersectionSearchSpace
    return sampler


def shared_search_space(strategy: str) -> IntersectionSearchSpace | None:
    """The incremental intersection search space a run keeps across its batch samplers
    (TPE counts pruned trials in, NSGA-II does not: as the samplers themselves)."""
    if strategy in ("tpe", "nsga2"):
        return IntersectionSearchSpace(include_pruned=strategy == "tpe")
    return None


class _SearchSpaceOncePerBatch:
    """A sampler serves one batch (:meth:`StudyRunner._ask`): no trial finishes while it
    asks, so the relative search space (Optuna intersects the distributions of every
    finished trial, O(trials) per ask) is the same for the whole batch: computed once.
    The points asked are the same as without the cache."""

    def infer_relative_search_space(self, study, trial):
        cached = getattr(self, "_dse_space", None)
        if cached is None:
            cached = self._dse_space = super().infer_relative_search_space(study, trial)
        return dict(cached)


class _BatchNSGAII(_SearchSpaceOncePerBatch, optuna.samplers.NSGAIISampler):
    """NSGA-II for one batch of one generation. Optuna scans every finished trial per
    ask for the trial's generation and again for its parent population (O(trials) per
    ask, O(trials^2) per study: minutes at 10,000 trials). No trial finishes while a
    batch is asked, so both answers are the same for the whole batch: computed once.
    The points asked are the same as the stock sampler's (tested)."""

    def get_trial_generation(self, study, trial):
        key = self._get_generation_key()
        known = trial.system_attrs.get(key)
        if known is not None:
            return known
        generation = getattr(self, "_dse_generation", None)
        if generation is None:  # computes and stores it on the trial
            generation = self._dse_generation = super().get_trial_generation(study, trial)
            return generation
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_parent_population(self, study, generation):
        cache = self.__dict__.setdefault("_dse_parents", {})
        if generation in cache:
            return cache[generation]
        # the first call may select the parents (returned in selection order) and store
        # their ids; Optuna's later calls read the ids back in trial order: cache that
        first = super().get_parent_population(study, generation)
        cache[generation] = super().get_parent_population(study, generation)
        return first


class _BatchTPE(_SearchSpaceOncePerBatch, optuna.samplers.TPESampler):
    pass


def distributions(space: Space) -> dict[str, CategoricalDistribution]:
    return {p.name: CategoricalDistribution(list(p.choices)) for p in space.params}


def study_name(model: str, board: str, space: Space, strategy: str, seed: int, batch: int,
               objectives: list[Objective]) -> str:
    """``dse-<model>-<board>-<hash of space, strategy, seed, batch, objectives>``."""
    text = json.dumps([space.to_dict(), strategy, seed, batch,
                       [(o.metric, o.direction) for o in objectives]], sort_keys=True)
    return f"dse-{model}-{board}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class StudyRunner:
    """Runs (or resumes) one study: ``n_trials`` points in batches (see module docstring)."""

    def __init__(self, space: Space, objectives: list[Objective], storage_url: str, name: str,
                 strategy: str = "nsga2", n_trials: int = 1000, batch: int = 100, seed: int = 0):
        if strategy not in STRATEGIES:
            raise StudyError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
        if not isinstance(n_trials, int) or n_trials < 1:
            raise StudyError(f"trials must be a positive integer, got {n_trials!r}")
        if not isinstance(batch, int) or batch < 2:
            raise StudyError(f"batch must be an integer >= 2, got {batch!r}")
        if strategy == "grid":
            n_trials = min(n_trials, space.size)
        self.space, self.objectives = space, list(objectives)
        self.strategy, self.n_trials, self.batch, self.seed = strategy, n_trials, batch, seed
        self.directions = [o.direction for o in self.objectives]
        self.dists = distributions(space)
        self.storage = open_storage(storage_url)
        self.name = name
        self.study = optuna.create_study(storage=self.storage, study_name=name,
                                         directions=self.directions, load_if_exists=True)
        self.evaluated = 0  # points evaluated by this process (not replayed)
        self._finished: dict[int, optuna.trial.FrozenTrial] | None = None
        self._space_of_mirror: IntersectionSearchSpace | None = None

    # ------------------------------------------------------------ stored trials
    def stored(self) -> dict[int, optuna.trial.FrozenTrial]:
        """Finished trials by index; RUNNING ones (not ours) are failed first."""
        out: dict[int, optuna.trial.FrozenTrial] = {}
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                continue
            i = t.user_attrs.get(INDEX_ATTR)
            if i is None or t.state not in (TrialState.COMPLETE, TrialState.FAIL):
                continue
            if i in out:
                raise StudyError(f"study {self.name} holds index {i} twice")
            out[i] = t
        return out

    def values_of(self, m: dict[str, Any]) -> list[float] | None:
        if not m.get("feasible"):
            return None
        vals = []
        for o in self.objectives:
            v = m.get(o.metric)
            if v is None:
                return None
            vals.append(float(v))
        return vals

    # ------------------------------------------------------------ the loop
    def _ask(self, mirror: optuna.Study, b: int, idx: range) -> tuple[list, list[dict]]:
        if self.strategy == "grid":
            return [None] * len(idx), [self.space.point(i) for i in idx]
        mirror.sampler = make_sampler(self.strategy, self.seed * 1_000_003 + b, self.batch,
                                      self._space_of_mirror)
        trials = [mirror.ask(self.dists) for _ in idx]
        return trials, [dict(t.params) for t in trials]

    def _frozen(self, i: int, point: dict, m: dict, trial) -> optuna.trial.FrozenTrial:
        vals = self.values_of(m)
        sys_attrs = dict(trial.system_attrs) if trial is not None else {}
        if vals is not None:
            sys_attrs["constraints"] = (float(m.get("violation", 0.0)),)
        return optuna.trial.create_trial(
            state=TrialState.COMPLETE if vals is not None else TrialState.FAIL,
            params=point, distributions=self.dists, values=vals,
            user_attrs={INDEX_ATTR: i, METRICS_ATTR: json.dumps(m, sort_keys=True)},
            system_attrs=sys_attrs)

    def run(self, executor, progress: Callable[[int, int], None] | None = None) -> int:
        """Evaluate the missing points; returns how many were evaluated by this call."""
        done = self.stored()
        mirror = optuna.create_study(directions=self.directions)
        self._space_of_mirror = shared_search_space(self.strategy)  # incremental, per mirror
        n_batches = math.ceil(self.n_trials / self.batch)
        first_open = next((b for b in range(n_batches)
                           if not all(i in done for i in self._indices(b))), n_batches)
        # sampler caches in the mirror's study system attributes (NSGA-II's parent population
        # per generation) are stored as "dse.cache:<key>" = [batch that made it, value]; only
        # those of finished batches are restored, so an interrupted batch recomputes its own
        # exactly as the first attempt did (the computation draws from the batch's rng)
        saved: dict[str, Any] = {}
        for k, (b, v) in self._stored_caches().items():
            if b < first_open:
                mirror._storage.set_study_system_attr(mirror._study_id, k, v)
                saved[k] = v
        finished = sum(1 for i in done if i < self.n_trials)
        if progress:
            progress(finished, self.n_trials)
        for b in range(n_batches):
            idx = self._indices(b)
            if all(i in done for i in idx):
                mirror.add_trials([self._mirror_copy(done[i]) for i in idx])
                continue
            trials, points = self._ask(mirror, b, idx)
            for k, v in mirror._storage.get_study_system_attrs(mirror._study_id).items():
                if saved.get(k) != v:  # stored before any trial of this batch
                    self.storage.set_study_system_attr(self.study._study_id, CACHE + k, [b, v])
                    saved[k] = v
            for i, p in zip(idx, points, strict=True):
                if i in done and dict(done[i].params) != p:
                    raise StudyError(
                        f"stored trial {i} of {self.name} has parameters {dict(done[i].params)} "
                        f"but the resumed sampler asks {p}: the study was made by another "
                        "version or settings; use a new run directory")
            todo = [k for k, i in enumerate(idx) if i not in done]
            results = executor.map([points[k] for k in todo]) if todo else []
            by_k = dict(zip(todo, results, strict=True))
            new: list[optuna.trial.FrozenTrial] = []
            for k, i in enumerate(idx):
                if i in done:
                    m = json.loads(done[i].user_attrs[METRICS_ATTR])
                else:
                    m = by_k[k]
                told = self._tell(mirror, trials[k], m) if trials[k] is not None else None
                if i not in done:  # told keeps the sampler's attributes (e.g. generation)
                    new.append(self._frozen(i, points[k], m, told))
            add_trials_batch(self.study, new)  # the batch's new trials: one transaction
            for t in new:
                done[t.user_attrs[INDEX_ATTR]] = t
            self.evaluated += len(new)
            finished += len(new)
            if progress:
                progress(finished, self.n_trials)
        self._finished = done  # what the study now holds (saves re-reading it for points())
        return self.evaluated

    def _indices(self, b: int) -> range:
        return range(b * self.batch, min((b + 1) * self.batch, self.n_trials))

    def _stored_caches(self) -> dict[str, tuple[int, Any]]:
        attrs = self.storage.get_study_system_attrs(self.study._study_id)
        return {k[len(CACHE):]: tuple(v) for k, v in attrs.items() if k.startswith(CACHE)}

    def _tell(self, mirror: optuna.Study, trial, m: dict) -> optuna.trial.FrozenTrial:
        vals = self.values_of(m)
        trial.set_user_attr("violation", float(m.get("violation", 0.0)))
        if vals is None:
            return mirror.tell(trial, state=TrialState.FAIL)
        return mirror.tell(trial, vals)

    def _mirror_copy(self, t: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
        attrs = {"violation": json.loads(t.user_attrs[METRICS_ATTR]).get("violation", 0.0)}
        return optuna.trial.create_trial(state=t.state, params=t.params,
                                         distributions=t.distributions, values=t.values,
                                         user_attrs=attrs, system_attrs=t.system_attrs)

    # ------------------------------------------------------------ results
    def points(self) -> list[tuple[int, dict, dict, str]]:
        """(index, params, metrics, state) of every stored trial, by index."""
        trials = self._finished if self._finished is not None else self.stored()
        out = [(i, dict(t.params), json.loads(t.user_attrs[METRICS_ATTR]), t.state.name)
               for i, t in trials.items()]
        return sorted(out, key=lambda r: r[0])
