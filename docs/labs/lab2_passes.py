"""Lab 2 — optimisation as passes: write your own, then fold, quantise and prune.

Run:  python docs/labs/lab2_passes.py [--fast]

What you learn
--------------
1. A *pass* is a plain function ``DataflowGraph -> DataflowGraph``. You chain
   passes to build a flow (``prepare`` is ``lower(quantize(fuse(fold(trace(m)))))``).
2. Why passes must not mutate their input: a flow keeps several versions of
   the same graph alive at once — the float graph, its 8-bit and its 4-bit
   quantisations, a pruned variant — and compares them. If a pass edited its
   input in place, quantising to 4 bits would silently change the "float"
   graph you compare against, and the order of your experiments would change
   their results. Every pass therefore starts with ``g = g.copy()`` (a deep
   copy: nodes, numpy params, quant specs) and returns the copy.
3. The library passes and what each buys:

   - ``fold_batchnorm``: ``conv -> BN`` becomes one conv with rescaled
     weights and a new bias, the same function with one op less;
   - ``quantize`` (inside ``prepare``): float -> ``b``-bit integers; smaller
     weights, cheaper multipliers, some accuracy lost;
   - ``prune_to_macs`` + ``finetune``: remove whole output channels (rows of
     a weight matrix, filters of a conv) until the model has at most a given
     fraction of its MACs, then retrain briefly to recover accuracy.
     Structured pruning shrinks the layer shapes, so the hardware really does
     less work; zeroing single weights ("unstructured") would not, on an
     array without a sparse datapath.

Model size here = the bits needed to store the parameters: each weight at
its weight width (32 for float) and each bias at the accumulator width
(32 bits: the bias is added to the accumulator in accumulator units).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import models
from mapping.graph import DataflowGraph, trace
from mapping.passes import (
    calibration_inputs,
    fold_batchnorm,
    fuse_activations,
    prepare,
    prune_to_macs,
    run_float_graph,
)
from models.finetune import finetune
from sim import golden

FLOAT_BITS = 32
SEED = 0


# --------------------------------------------------------------------------------------------
# Part A: your own passes
# --------------------------------------------------------------------------------------------
def fuse_relu(g: DataflowGraph) -> DataflowGraph:
    """Fuse every ReLU into the linear/conv2d that feeds it (a new graph).

    A ReLU can be fused when its producer is a linear/conv2d read by nothing
    else: the producer gets ``attrs["fused_relu"] = True`` (the hardware's
    requantisation clamps at 0 for free) and the ReLU node disappears; its
    consumers read the producer instead (``bypass``).
    """
    g = g.copy()                     # never touch the caller's graph
    for node in g.nodes():           # nodes() is a snapshot list: safe to edit g meanwhile
        if node.op != "relu":
            continue
        src = g.node(node.inputs[0])
        if src.op in ("linear", "conv2d") and g.consumers(src.name) == [node.name]:
            src.attrs["fused_relu"] = True
            g.bypass(node.name)
    return g


def annotate_weight_bits(g: DataflowGraph) -> DataflowGraph:
    """A new graph where every linear/conv2d carries ``attrs["weight_bits"]``.

    Weights count at ``quant.w_bits`` once quantised (else 32-bit float);
    biases at the accumulator width (``quant.acc_bits``, else 32).
    """
    g = g.copy()
    for node in g.nodes():
        if node.op not in ("linear", "conv2d"):
            continue
        w_bits = node.quant.w_bits if node.quant is not None else FLOAT_BITS
        b_bits = node.quant.acc_bits if node.quant is not None else FLOAT_BITS
        bias = node.params.get("bias")
        node.attrs["weight_bits"] = (node.params["weight"].size * w_bits
                                     + (bias.size * b_bits if bias is not None else 0))
    return g


def model_size_bits(g: DataflowGraph) -> int:
    """Total parameter storage of a graph (runs :func:`annotate_weight_bits`)."""
    return sum(n.attrs.get("weight_bits", 0) for n in annotate_weight_bits(g).nodes())


def structure(g: DataflowGraph) -> list[tuple]:
    """(name, op, inputs, fused_relu) per node: enough to compare two graphs' structure."""
    return [(n.name, n.op, tuple(n.inputs), bool(n.attrs.get("fused_relu"))) for n in g.nodes()]


def part_a(name: str = "mlp-digits") -> dict:
    entry = models.get(name)
    g = trace(entry.load(), entry.example_input())
    before = structure(g)
    mine = fuse_relu(g)
    library = fuse_activations(g)
    unchanged = structure(g) == before
    same = structure(mine) == structure(library)
    print(f"== A. your passes on {name}")
    print(f"fuse_relu: {len(g)} -> {len(mine)} nodes; input graph unchanged: {unchanged}; "
          f"same result as mapping.passes.fuse_activations: {same}")
    print(mine.summary())
    size_float = model_size_bits(g)
    print(f"annotate_weight_bits: float model = {size_float:,} bits "
          f"({size_float / 8192:.1f} KiB)")
    return {"nodes_before": len(g), "nodes_after": len(mine), "input_unchanged": unchanged,
            "matches_library": same, "float_size_bits": size_float,
            "fused": [n.name for n in mine.nodes() if n.attrs.get("fused_relu")]}


# --------------------------------------------------------------------------------------------
# Part B: the library passes
# --------------------------------------------------------------------------------------------
def fold_resnet_block() -> dict:
    """Fold the two batch norms of ``resnet-block``; the function must not change."""
    entry = models.get("resnet-block")
    model, x = entry.load(), entry.example_input(seed=0)
    g = trace(model, x)
    folded = fold_batchnorm(g)
    with torch.no_grad():
        ref = model(x).numpy()
    y = run_float_graph(folded, x)            # float64 executor of the folded graph
    diff = float(np.abs(y - ref).max())
    n_bn = [sum(n.op == "batchnorm2d" for n in h.nodes()) for h in (g, folded)]
    print("\n== B1. fold_batchnorm on resnet-block")
    print(f"batchnorm2d nodes {n_bn[0]} -> {n_bn[1]}, nodes {len(g)} -> {len(folded)}, "
          f"MACs {g.total_macs:,} -> {folded.total_macs:,}; "
          f"max |folded graph - torch model| = {diff:.2e}")
    return {"bn_before": n_bn[0], "bn_after": n_bn[1], "nodes_before": len(g),
            "nodes_after": len(folded), "macs": folded.total_macs, "max_abs_diff": diff,
            "folded_into": sorted(n.name for n in folded.nodes() if "folded_bn" in n.attrs)}


def evaluate_variant(label: str, model, entry, bits: int | None) -> dict:
    """MACs, size and accuracy of ``model`` (float when ``bits`` is None, else golden int)."""
    ds = entry.dataset()
    x = entry.example_input()
    if bits is None:
        g = trace(model, x)
        acc = models.evaluate(model, ds, "test")
    else:
        g = prepare(model, x, calibration_inputs(entry), bits=bits)
        acc = float(np.mean(golden.predict(g, ds.x_test) == ds.y_test))
    row = {"variant": label, "bits": bits, "macs": g.total_macs,
           "size_bits": model_size_bits(g), "accuracy": acc, "graph": g}
    print(f"{label:34s} MACs {row['macs']:7,}  size {row['size_bits'] / 8192:7.2f} KiB  "
          f"accuracy {acc:.4f}")
    return row


def quantise_and_prune(name: str, epochs: int, mac_fraction: float = 0.5) -> list[dict]:
    entry = models.get(name)
    model, x = entry.load(), entry.example_input()
    print(f"\n== B2/B3. {name}: quantise (golden integer accuracy) and prune to "
          f"<= {mac_fraction:.0%} of the MACs + {epochs} epochs of fine-tuning")
    rows = [evaluate_variant("float", model, entry, None),
            evaluate_variant("int8", model, entry, 8),
            evaluate_variant("int4", model, entry, 4)]
    pruned, plan = prune_to_macs(model, x, mac_fraction)
    kept = ", ".join(f"{k} {len(v)}/{plan.out_sizes[k]}" for k, v in plan.keep.items())
    print(f"prune_to_macs kept channels: {kept}")
    rows.append(evaluate_variant("pruned (no fine-tuning)", pruned, entry, None))
    tuned = finetune(pruned, entry.dataset(), epochs=epochs, lr=1e-3, seed=SEED).model
    rows.append(evaluate_variant("pruned + fine-tuned", tuned, entry, None))
    rows.append(evaluate_variant("pruned + fine-tuned, int8", tuned, entry, 8))
    for r in rows:
        r["kept"] = {k: len(v) for k, v in plan.keep.items()} if "pruned" in r["variant"] else {}
    return rows


def main(fast: bool = False) -> dict:
    """Part A on mlp-digits; fold on resnet-block; quantise + prune the digits models.

    fast: mlp-digits only, 3 fine-tuning epochs. Full: both digits models, 10 epochs.
    """
    t0 = time.perf_counter()
    out = {"part_a": part_a("mlp-digits"), "fold": fold_resnet_block(), "variants": {}}
    for name in (("mlp-digits",) if fast else ("mlp-digits", "cnn-digits")):
        out["variants"][name] = quantise_and_prune(name, epochs=3 if fast else 10)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"\nlab 2 done in {out['seconds']} s")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="mlp-digits only, short fine-tuning")
    main(fast=parser.parse_args().fast)
