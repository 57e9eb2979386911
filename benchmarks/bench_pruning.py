"""Pruning vs accuracy and hardware size on the digits models (all figures measured).

For mlp-digits and cnn-digits: structured channel pruning (L2 ranking, the same
fraction removed from every prunable layer, plus the smallest fraction that
reaches <= 50% of the MACs), and unstructured global magnitude pruning for
contrast (weights zeroed, shapes and MACs unchanged). Each pruned model is
fine-tuned (Adam, seeded) and then quantised to int8 (calibrated on the training
split) and run by ``sim.golden``. Writes ``benchmarks/results/pruning.md``.

    python benchmarks/bench_pruning.py [--epochs 10] [--lr 1e-3] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_section  # noqa: E402

import models  # noqa: E402
from mapping.graph import trace  # noqa: E402
from mapping.passes import prepare  # noqa: E402
from mapping.passes.prune import (  # noqa: E402
    plan_channels,
    prune_channels,
    prune_magnitude,
    weight_sparsity,
)
from mapping.passes.prune_budget import prune_to_macs  # noqa: E402
from models.finetune import accuracy, finetune  # noqa: E402
from sim import golden  # noqa: E402

MODELS = ("mlp-digits", "cnn-digits")
CHANNEL_FRACTIONS = (0.0, 0.25, 0.5, 0.75)
SPARSITIES = (0.5, 0.8)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes(plan_keep: dict) -> str:
    return ", ".join(f"{k} {len(v)}" for k, v in plan_keep.items()) or "-"


def measure(name: str, epochs: int, lr: float, seed: int) -> list[str]:
    entry = models.get(name)
    ds, model, x0 = entry.dataset(), entry.load(), entry.example_input()
    shape = entry.input_shape[1:]
    x_test = np.array(ds.x_test, np.float32).reshape((-1,) + shape)
    x_cal = np.array(ds.x_train, np.float32).reshape((-1,) + shape)
    y = np.asarray(ds.y_test)
    macs0, params0 = trace(model, x0).total_macs, _params(model)
    base = accuracy(model, ds.x_test, ds.y_test)
    cases = []
    for f in CHANNEL_FRACTIONS:
        plan = plan_channels(model, x0, f)
        cases.append((f"channels {f:.2f}", prune_channels(model, x0, f), None, plan.keep))
    pruned, plan = prune_to_macs(model, x0, 0.5)
    frac = max(1 - len(v) / plan.out_sizes[k] for k, v in plan.keep.items())
    cases.append((f"channels <=50% MACs ({frac:.2f})", pruned, None, plan.keep))
    for s in SPARSITIES:
        pruned, masks = prune_magnitude(model, s)
        cases.append((f"magnitude {s:.2f} (sparsity {weight_sparsity(pruned):.3f})", pruned,
                      masks, {}))
    rows = []
    for label, pruned, masks, keep in cases:
        t0 = time.perf_counter()
        res = finetune(pruned, ds, epochs=epochs, lr=lr, seed=seed, masks=masks)
        g = prepare(res.model, x0, x_cal, bits=8)
        acc8 = float((golden.predict(g, x_test) == y).mean())
        dt = time.perf_counter() - t0
        macs = trace(pruned, x0).total_macs
        nz = _params(pruned) - sum(int((~m).sum()) for m in (masks or {}).values())
        rows.append(
            f"| {name} | {label} | {_shapes(keep)} | {macs / macs0:.3f} ({macs:,}) | "
            f"{_params(pruned):,} ({_params(pruned) / params0:.2f}); {nz:,} unpruned | "
            f"{100 * base:.2f} | "
            f"{100 * res.acc_before:.2f} | {100 * res.acc_after:.2f} | {100 * acc8:.2f} | "
            f"{dt:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = ["| model | pruning | kept channels | MAC fraction (MACs) | params | float acc, "
            "original % | float acc, pruned % | float acc, fine-tuned % | int8 acc "
            "(sim.golden) % | fine-tune + int8 time (s) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in MODELS:
        rows += measure(name, args.epochs, args.lr, args.seed)
    body = (
        "All figures *measured* on the 360-sample scikit-learn digits test split. "
        "`channels f`: structured pruning (`mapping.passes.prune.prune_channels`) removes "
        "`floor(f * n)` output channels/neurons with the smallest L2 weight norm from every "
        "prunable layer (all but the classifier) and the matching inputs of the next layer, "
        "so the traced graph really shrinks; `<=50% MACs`: the smallest uniform fraction "
        "(step 1/256) reaching half the MACs (`prune_to_macs`). `magnitude s`: unstructured "
        "global magnitude pruning, weights zeroed and kept zero through fine-tuning by masks; "
        "shapes and MACs are unchanged (no sparse datapath). MAC fraction = MACs of the "
        "traced `DataflowGraph` over the original's. Fine-tuning: "
        f"Adam, lr {args.lr:g}, batch 32, {args.epochs} epochs, seed {args.seed}, on the "
        "1437-sample training split (`models.finetune.finetune`). int8: the "
        "fine-tuned model through `prepare` (fold, fuse, per-channel int8 weights, "
        "per-tensor int8 activations calibrated on the training split, 32-bit accumulators) "
        "run by `sim.golden`.\n\n" + "\n".join(rows))
    cmd = "python benchmarks/bench_pruning.py"
    if argv or sys.argv[1:]:
        cmd += " " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_section("pruning", "Pruning: MACs vs accuracy (digits)", cmd, body)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
