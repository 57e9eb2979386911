"""``hwgen map``: map every compute layer of a model (zoo name, file.py:NAME, .pt2, .onnx)
onto an architecture."""

from __future__ import annotations

import argparse

from hwgen.cli import CliError
from hwgen.cli.model_arg import add_model_arguments, model_from_args, prepare_graph

OBJECTIVES = ("latency", "energy", "edp")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "map",
        help="loop-tiling mapper: per-layer tiles, loop order, cycles and energy",
        description="Trace a model, quantise and lower it, then find the best tiling and "
        "loop order of each compute layer on the architecture. All figures are estimates "
        "of the analytic cost model (mapping.cost), not measurements.",
    )
    add_model_arguments(p)
    p.add_argument("--arch", required=True,
                   help="architecture: a preset name (tiny-4x4, edge-8x8, mid-16x16) or a "
                   "TOML file")
    p.add_argument("--objective", default="latency", choices=OBJECTIVES,
                   help="what the mapper minimises (default: latency)")
    p.add_argument("--bits", type=int, default=8, help="activation and weight bits (default 8)")
    p.add_argument("--json", action="store_true", help="print the Schedule as JSON")
    p.set_defaults(func=run)


def prepare_model(name: str, bits: int):
    """The zoo model ``name`` traced, folded, fused, quantised to ``bits`` and lowered."""
    import numpy as np

    import models
    from mapping.passes import prepare

    try:
        entry = models.get(name)
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    model = entry.load()
    calib = np.concatenate([entry.example_input(seed).numpy() for seed in range(8)])
    return prepare(model, entry.example_input(), calib, bits=bits)


def format_table(schedule, arch) -> str:
    """Per-layer table and totals of a Schedule (estimated figures)."""
    head = ("layer", "GEMM MxNxK", "tile m x n x k", "order", "cycles", "util", "DMA words",
            "energy nJ")
    rows = [head]
    for lm, c in zip(schedule.layers, schedule.costs, strict=True):
        n = lm.nest
        rows.append((
            lm.layer, f"{n.gemm_m}x{n.gemm_n}x{n.gemm_k}",
            f"{lm.tile_m}x{lm.tile_n}x{lm.tile_k}", "".join(lm.order), f"{c.cycles:,}",
            f"{c.utilization:.1%}", f"{c.accesses['store.w.read']:,}", f"{c.energy_pj / 1e3:.1f}",
        ))
    costs = schedule.costs
    cycles = schedule.total_cycles
    macs = sum(c.macs for c in costs)
    util = macs / (arch.pes * cycles) if cycles else 0.0
    rows.append((
        "total", "", "", "", f"{cycles:,}", f"{util:.1%}",
        f"{sum(c.accesses['store.w.read'] for c in costs):,}",
        f"{sum(c.energy_pj for c in costs) / 1e3:.1f}",
    ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {4, 5, 6, 7}

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()

    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows[1:-1]]
    lines += ["  ".join("-" * w for w in widths), fmt(rows[-1])]
    lines.append(
        f"{len(costs)} compute layers on {arch.name} ({arch.rows}x{arch.cols} {arch.dataflow}), "
        f"{cycles:,} cycles = {cycles / arch.clock_mhz:,.1f} us at {arch.clock_mhz:g} MHz "
        "(estimated: analytic model; accelerator compute layers only)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mapping.arch import ArchSpecError, resolve
    from mapping.mapper import map_graph
    from mapping.schedule import MappingError

    if not 2 <= args.bits <= 16:
        raise CliError(f"--bits {args.bits} is invalid: must be from 2 to 16")
    try:
        arch = resolve(args.arch)
    except ArchSpecError as exc:
        raise CliError(str(exc)) from None
    entry = model_from_args(args)
    graph = (prepare_graph(entry, bits=args.bits) if hasattr(entry, "record")
             else prepare_model(args.model, args.bits))
    try:
        schedule = map_graph(graph, arch, args.objective)
    except MappingError as exc:
        raise CliError(f"{args.model} on {arch.name}: {exc}") from None
    print(schedule.to_json() if args.json else format_table(schedule, arch))
    return 0
