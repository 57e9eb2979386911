"""Could the activation scratchpad drop its per-lane copies? Bank conflicts of the array's reads.

Today every bank of the activation scratchpad is built once per array row (``rows`` random
read lanes, ``hwgen.rtl.memory``), so its block RAM is ``rows`` x its capacity (#17 item 2).
Without copies, the ``rows`` addresses read in one cycle must fall in distinct banks. This
script counts, for the mapper's schedule of each model, the array's activation read cycles
(the tile walk of docs/timing.md: WS, one pixel's ``rows`` consecutive im2col reduction
indices per cycle; OS, ``rows`` consecutive pixels at one reduction index), and how many of
them read two lanes from one bank under interleaved banks (element at NHWC address ``a`` in
bank ``a mod B``) for ``B = rows`` and ``B = 2 * rows``. Padding lanes read nothing.

    python benchmarks/act_banking.py            # writes benchmarks/results/act_banking.md

The design built from this (``act_gather = "runs"``: one copy, one run of consecutive
addresses per cycle, a block crossing a kernel row streams once per row; docs/timing.md)
is priced in a second table: each zoo model's predicted cycles mapped for it against the
same preset with "lanes" (estimated, ``mapping.timing``; both exact in RTL).

The counts are exact for the walk as the contract describes it (one read per issue cycle of
each pass; repeated passes over other output-channel blocks read the same addresses and are
counted each time); cycles are the read cycles, not the layer's cycles.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from mapping import timing  # noqa: E402
from mapping.arch import preset  # noqa: E402
from mapping.loopnest import LoopNest  # noqa: E402

RUNS_CASES = [("mlp-digits", "edge-8x8"), ("cnn-digits", "edge-8x8"), ("jsc-mlp", "tiny-4x4"),
              ("resnet-block", "edge-8x8"), ("resnet18", "edge-8x8"), ("resnet18", "mid-16x16")]
CASES = [  # (zoo model, preset, dataflow)
    ("cnn-digits", "edge-8x8", "ws"), ("cnn-digits", "edge-8x8", "os"),
    ("resnet-block", "edge-8x8", "ws"), ("resnet-block", "edge-8x8", "os"),
    ("resnet18", "mid-16x16", "ws"), ("resnet18", "mid-16x16", "os"),
]


def addresses(nest: LoopNest, m: np.ndarray, k: np.ndarray) -> np.ndarray:
    """NHWC element address of im2col element ``(m, k)`` (broadcast), -1 for padding."""
    if nest.kind == "gemm":
        return m * nest.gemm_k + k
    n, pq = np.divmod(m, nest.P * nest.Q)
    p, q = np.divmod(pq, nest.Q)
    rs, c = np.divmod(k, nest.C)
    r, s = np.divmod(rs, nest.S)
    h = p * nest.stride_h + r * nest.dil_h - nest.pad_h
    w = q * nest.stride_w + s * nest.dil_w - nest.pad_w
    ok = (h >= 0) & (h < nest.H) & (w >= 0) & (w < nest.W)
    return np.where(ok, ((n * nest.H + h) * nest.W + w) * nest.C + c, -1)


def conflicts(addr: np.ndarray, banks: int) -> np.ndarray:
    """Per cycle (rows of ``addr``: the lanes, -1 = no read): True if two reads share a bank."""
    b = np.where(addr >= 0, addr % banks, -1 - np.arange(addr.shape[1])[None, :])
    b = np.sort(b, axis=1)
    return np.any((b[:, 1:] == b[:, :-1]) & (b[:, 1:] >= 0), axis=1)


def layer_counts(lm, arch, bank_options) -> tuple[int, list[int]]:
    """``(read cycles, conflicting cycles per bank option)`` of one mapped layer."""
    nest, R = lm.nest, arch.rows  # noqa: N806
    total, bad = 0, [0] * len(bank_options)
    seen: dict[tuple, tuple[int, list[int]]] = {}
    for t in timing.iter_tiles(lm):
        m0, k0 = t.mi * lm.tile_m, t.ki * lm.tile_k
        nblocks = math.ceil(t.n / arch.cols)
        key = (m0, t.m, k0, t.k)
        if key not in seen:
            if lm.dataflow == "ws":  # a cycle: one m, R consecutive k of a k-block
                kb = np.arange(0, t.k, R)
                lanes = k0 + kb[:, None] + np.arange(R)[None, :]
                valid = lanes < k0 + t.k
                m = np.arange(m0, m0 + t.m)
                a = addresses(nest, m[:, None, None], lanes[None, :, :])
                a = np.where(valid[None, :, :], a, -1).reshape(-1, R)
            else:  # a cycle: one k, R consecutive m of an m-block
                mb = np.arange(0, t.m, R)
                lanes = m0 + mb[:, None] + np.arange(R)[None, :]
                valid = lanes < m0 + t.m
                k = np.arange(k0, k0 + t.k)
                a = addresses(nest, lanes[:, None, :], k[None, :, None])
                a = np.where(valid[:, None, :], a, -1).reshape(-1, R)
            seen[key] = (a.shape[0], [int(conflicts(a, b).sum()) for b in bank_options])
        cyc, c = seen[key]
        total += cyc * nblocks
        bad = [x + y * nblocks for x, y in zip(bad, c, strict=True)]
    return total, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import models
    from mapping.mapper import map_graph
    from mapping.passes import shapes_for_mapping

    t0 = time.perf_counter()
    rows = []
    for model, name, dataflow in CASES:
        arch = preset(name).replace(dataflow=dataflow, act_words=1 << 24)
        g = shapes_for_mapping(models.get(model))
        sched = map_graph(g, arch)
        opts = (arch.rows, 2 * arch.rows)
        tot, bad = 0, [0, 0]
        worst = []
        for lm in sched.layers:
            c, b = layer_counts(lm, arch, opts)
            tot += c
            bad = [x + y for x, y in zip(bad, b, strict=True)]
            worst.append((b[0] / c if c else 0.0, lm.layer))
        w = max(worst)
        rows.append(f"| {model} | {name} {dataflow} | {len(sched.layers)} | {tot:,} | "
                    f"{bad[0] / tot:.1%} | {bad[1] / tot:.1%} | {w[1]} ({w[0]:.0%}) |")
        print(rows[-1], flush=True)
    runs_rows = []
    for model, name in RUNS_CASES:
        g = shapes_for_mapping(models.get(model))
        lanes = preset(name).replace(act_words=1 << 24)
        a = map_graph(g, lanes).total_cycles
        b = map_graph(g, lanes.replace(act_gather="runs")).total_cycles
        runs_rows.append(f"| {model} | {name} | {a:,} | {b:,} | {b / a - 1:+.1%} |")
        print(runs_rows[-1], flush=True)
    body = "\n".join([
        "| model | array | layers | array read cycles | cycles with a bank conflict, "
        "B = rows | B = 2 x rows | worst layer (B = rows) |",
        "|---|---|---:|---:|---:|---:|---|", *rows, "",
        "Bank of NHWC element address a: a mod B. A conflict cycle reads two lanes from one "
        "bank (it would need a stall or a copy). Counted from the mapper's schedules (act_words "
        "raised so every layer maps), exact for the contract's walk. Wall time "
        f"{time.perf_counter() - t0:.0f} s (measured).", "",
        "The design built: `act_gather = \"runs\"` (one scratchpad copy; a block of "
        "reduction lanes crossing a kernel row streams once per row). Compute-layer cycles "
        "of each model mapped for each gather (estimated, `mapping.timing`; act_words raised "
        "so every layer maps on chip):", "",
        "| model | preset (ws) | cycles, lanes (rows copies) | cycles, runs (one copy) | "
        "difference |",
        "|---|---|---:|---:|---:|", *runs_rows])
    if not args.no_write:
        from _common import write_section

        write_section("act_banking", "Activation scratchpad banking: conflicts without copies",
                      "python benchmarks/act_banking.py", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
