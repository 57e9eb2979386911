"""Lab 4a — network architecture search: which MLP hidden widths for the digits?

Run:  python docs/labs/lab4a_nas.py [--fast]

What you learn
--------------
1. Architecture search = search over *model shapes* rather than over passes
   applied to one trained model (lab 3). Every candidate must be trained, so
   each evaluation is expensive; we keep training short (a few epochs) and
   fully seeded so that candidates are compared fairly and reproducibly:
   the same seed gives the same initial weights and the same mini-batch order.
2. The cost side comes from the framework, not from a formula you maintain:
   each candidate is traced into a ``DataflowGraph`` and its MACs read from
   the graph (``g.total_macs``), the number the mapper and the hardware see.
3. Accuracy vs MACs is again a two-objective problem: we report the Pareto
   front (no other candidate is both more accurate and cheaper), and the
   integer (int8, ``sim.golden``) accuracy of the front, which is what an
   accelerator built from it would achieve.

The search space: ``64 -> h1 [-> h2] -> 10`` with ReLUs between, widths from
``WIDTHS``. The full run enumerates it exhaustively; swap the loop for an
Optuna study (lab 3) when the space grows too large for that.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import models
from mapping.graph import trace
from mapping.passes import calibration_inputs, prepare
from models.nets import MLP
from models.train import TrainConfig, train_model
from sim import golden

SEED = 0
WIDTHS = (8, 16, 32, 64, 128)
FAST_CANDIDATES = ((16,), (16, 8), (32, 16), (64, 32))


def candidates(fast: bool) -> list[tuple[int, ...]]:
    """Hidden-layer widths to try: 4 fixed ones (fast) or every 1- and 2-layer combination."""
    if fast:
        return list(FAST_CANDIDATES)
    one = [(w,) for w in WIDTHS]
    two = [(a, b) for a, b in itertools.product(WIDTHS, WIDTHS) if b <= a]
    return one + two


def build(hidden: tuple[int, ...], seed: int = SEED) -> MLP:
    """A fresh ``64 -> hidden... -> 10`` MLP, initialised from ``seed`` (global RNG untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP((64, *hidden, 10))


def evaluate_candidate(hidden: tuple[int, ...], epochs: int, dataset, entry) -> dict:
    """Train one candidate (seeded Adam) and measure it."""
    config = TrainConfig(epochs=epochs, lr=3e-3, batch_size=32, weight_decay=1e-4)
    t0 = time.perf_counter()
    model = train_model(build(hidden), dataset, config, seed=SEED)
    x = entry.example_input()
    g = trace(model, x)
    acc = models.evaluate(model, dataset, "test")
    gq = prepare(model, x, calibration_inputs(entry), bits=8)
    acc8 = float(np.mean(golden.predict(gq, dataset.x_test) == dataset.y_test))
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return {"hidden": list(hidden), "macs": g.total_macs,
            "params": sum(n.param_count for n in g.nodes()),
            "accuracy": acc, "int8_accuracy": acc8, "weights": weights,
            "train_seconds": round(time.perf_counter() - t0, 2)}


def pareto(rows: list[dict]) -> list[dict]:
    """Candidates no other candidate beats on both accuracy (higher) and MACs (lower)."""
    def beats(o, r):
        return (o["accuracy"] >= r["accuracy"] and o["macs"] <= r["macs"]
                and (o["accuracy"] > r["accuracy"] or o["macs"] < r["macs"]))
    return sorted((r for r in rows if not any(beats(o, r) for o in rows if o is not r)),
                  key=lambda r: r["macs"])


def main(fast: bool = False) -> dict:
    """Train and measure every candidate; print and return the table and the Pareto front.

    fast: 4 candidates x 8 epochs. Full: 20 candidates x 20 epochs.
    """
    t0 = time.perf_counter()
    epochs = 8 if fast else 20
    entry = models.get("mlp-digits")  # for its data set, example input and calibration data
    ds = entry.dataset()
    rows = [evaluate_candidate(h, epochs, ds, entry) for h in candidates(fast)]
    front = pareto(rows)
    print(f"== MLP width search on digits: {len(rows)} candidates, {epochs} epochs, seed {SEED}")
    print(f"{'hidden':>10} {'MACs':>6} {'params':>6} {'float acc':>9} {'int8 acc':>8}")
    for r in sorted(rows, key=lambda r: r["macs"]):
        mark = " *" if any(r is f for f in front) else ""
        print(f"{str(tuple(r['hidden'])):>10} {r['macs']:6d} {r['params']:6d} "
              f"{r['accuracy']:9.4f} {r['int8_accuracy']:8.4f}{mark}")
    print("* Pareto front: no other candidate is both more accurate and cheaper")
    ref = models.get("mlp-digits").metadata() or {}
    print(f"(the zoo's mlp-digits, 64-32 trained 60 epochs: {ref.get('test_accuracy', 0):.4f})")
    out = {"rows": rows, "pareto": front, "epochs": epochs,
           "seconds": round(time.perf_counter() - t0, 2)}
    print(f"\nlab 4a done in {out['seconds']} s")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="4 candidates, 8 epochs")
    main(fast=parser.parse_args().fast)
