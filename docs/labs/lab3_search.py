"""Lab 3 — search over passes (AutoML): Optuna picks bit widths and a pruning ratio.

Run:  python docs/labs/lab3_search.py [--fast] [--sampler tpe|nsga2]

What you learn
--------------
1. A flow of passes has knobs (activation bits, weight bits, how much to
   prune) and the best setting depends on what you trade: accuracy against
   model size. Trying every combination quickly becomes too expensive, so we
   let a search strategy choose which settings to evaluate.
2. Optuna: a *study* asks an *objective* function for values, a *sampler*
   proposes the next trial's parameters from the previous results. Here:

   - ``TPESampler(seed=...)`` (Tree-structured Parzen Estimator: models
     where good and bad trials lie and samples where good ones are likely),
     or ``NSGAIISampler(seed=...)`` (a genetic algorithm built for several
     objectives);
   - in-memory storage (the default): nothing is written to disk. Pass
     ``storage="sqlite:///lab3.db"`` to ``optuna.create_study`` to make a
     study resumable;
   - two objectives, ``directions=["maximize", "minimize"]``: integer test
     accuracy (``sim.golden``, what the hardware would compute) and model
     size in bits.
3. With two objectives there is no single best trial but a *Pareto front*:
   the trials no other trial beats on both objectives at once
   (``study.best_trials``).

Determinism: a seeded sampler plus a deterministic objective (seeded
fine-tuning, deterministic passes) gives the same trials on every run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import optuna

import models
from mapping.passes import calibration_inputs, prepare, prune_channels
from models.finetune import finetune
from sim import golden

MODEL = "mlp-digits"
SEED = 0
ACC_BITS = 32
RATIO_STEP = 0.1


class PrunedModels:
    """Pruned + fine-tuned copies of the model, computed once per pruning ratio."""

    def __init__(self, entry, epochs: int):
        self.entry, self.epochs = entry, epochs
        self.base = entry.load()
        self.cache: dict[float, object] = {}

    def get(self, ratio: float):
        ratio = round(ratio, 2)
        if ratio not in self.cache:
            if ratio == 0.0:
                self.cache[ratio] = self.base
            else:
                # Remove floor(ratio * n) output channels of fc1 and fc2 (smallest L2 norm),
                # then fine-tune the smaller model (seeded: same result every run).
                pruned = prune_channels(self.base, self.entry.example_input(), ratio)
                self.cache[ratio] = finetune(pruned, self.entry.dataset(), epochs=self.epochs,
                                             lr=1e-3, seed=SEED).model
        return self.cache[ratio]


def size_bits(graph) -> int:
    """Parameter storage: weights at ``w_bits``, biases at ``acc_bits``."""
    total = 0
    for n in graph.nodes():
        if n.op in ("linear", "conv2d"):
            total += n.params["qweight"].size * n.quant.w_bits + n.params["qbias"].size * ACC_BITS
    return total


def make_objective(pruned: PrunedModels):
    entry = pruned.entry
    ds = entry.dataset()
    calib = calibration_inputs(entry)

    seen: dict[tuple, tuple] = {}  # a repeated setting is not evaluated twice

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        a_bits = trial.suggest_int("a_bits", 2, 8)
        w_bits = trial.suggest_int("w_bits", 2, 8)
        ratio = trial.suggest_float("prune_ratio", 0.0, 0.8, step=RATIO_STEP)
        key = (a_bits, w_bits, round(ratio, 2))
        if key in seen:
            values, attrs = seen[key]
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            return values
        model = pruned.get(ratio)
        g = prepare(model, entry.example_input(), calib, bits=a_bits, w_bits=w_bits,
                    acc_bits=ACC_BITS)
        acc = float(np.mean(golden.predict(g, ds.x_test) == ds.y_test))
        widths = [int(n.out_shape[-1]) for n in g.nodes() if n.op == "linear"]
        attrs = {"widths": widths, "macs": g.total_macs}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        seen[key] = ((acc, float(size_bits(g))), attrs)
        return seen[key][0]

    return objective


def main(fast: bool = False, sampler: str = "tpe") -> dict:
    """Run the study; print and return every trial and the Pareto front.

    fast: 20 trials, 3 fine-tuning epochs per pruning ratio. Full: 80 trials, 10 epochs.
    """
    t0 = time.perf_counter()
    n_trials, epochs = (20, 3) if fast else (80, 10)
    if sampler == "tpe":
        smp = optuna.samplers.TPESampler(seed=SEED)
    elif sampler == "nsga2":
        smp = optuna.samplers.NSGAIISampler(seed=SEED)
    else:
        raise ValueError(f"sampler must be 'tpe' or 'nsga2', got {sampler!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    entry = models.get(MODEL)
    pruned = PrunedModels(entry, epochs)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=smp,
                                study_name=f"lab3-{MODEL}")  # storage=None: in memory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(make_objective(pruned), n_trials=n_trials)

    trials = [{"number": t.number, **t.params, "accuracy": t.values[0],
               "size_bits": int(t.values[1]), **t.user_attrs} for t in study.trials]
    # study.best_trials is the Pareto front; samplers may propose the same setting
    # twice, so keep one trial (the first) per distinct (accuracy, size) point.
    on_front = {b.number for b in study.best_trials}
    front, seen = [], set()
    for t in sorted(trials, key=lambda t: (t["size_bits"], t["number"])):
        if t["number"] in on_front and (t["accuracy"], t["size_bits"]) not in seen:
            seen.add((t["accuracy"], t["size_bits"]))
            front.append(t)
    print(f"== {MODEL}: {n_trials} trials, sampler {type(smp).__name__}(seed={SEED})")
    print(f"{'trial':>5} {'a_bits':>6} {'w_bits':>6} {'prune':>5} {'widths':>12} "
          f"{'MACs':>6} {'size kbit':>9} {'accuracy':>8}")
    for t in trials:
        mark = " *" if t["number"] in on_front else ""
        print(f"{t['number']:5d} {t['a_bits']:6d} {t['w_bits']:6d} {t['prune_ratio']:5.1f} "
              f"{str(t['widths']):>12} {t['macs']:6d} {t['size_bits'] / 1000:9.1f} "
              f"{t['accuracy']:8.4f}{mark}")
    print("\nPareto front (* above, one trial per point): no other trial is both more "
          "accurate and smaller")
    for t in front:
        print(f"  {t['size_bits'] / 1000:7.1f} kbit  accuracy {t['accuracy']:.4f}  "
              f"(a{t['a_bits']} w{t['w_bits']}, prune {t['prune_ratio']:.1f})")
    out = {"trials": trials, "pareto": front, "n_trials": n_trials,
           "sampler": type(smp).__name__, "seconds": round(time.perf_counter() - t0, 2)}
    print(f"\nlab 3 done in {out['seconds']} s")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="20 trials, short fine-tuning")
    parser.add_argument("--sampler", choices=("tpe", "nsga2"), default="tpe")
    args = parser.parse_args()
    main(fast=args.fast, sampler=args.sampler)
