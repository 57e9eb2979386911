"""``hwgen map``: map every compute layer of a model (zoo name, file.py:NAME, .pt2, .onnx)
onto an architecture."""

from __future__ import annotations

import argparse

from hwgen.cli import CliError
from hwgen.cli.model_arg import add_model_arguments, model_from_args

OBJECTIVES = ("latency", "energy", "edp")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "map",
        help="loop-tiling mapper: per-layer tiles, loop order, cycles and energy",
        description="Trace and lower a model (operand widths from --bits; no calibration: "
        "the mapper needs shapes and widths, not scales), then find the best tiling and "
        "loop order of each compute layer on the architecture. All figures are estimates "
        "of the analytic cost model (mapping.cost), not measurements. The traced layer "
        "shapes of a zoo, .pt2 or .onnx model are cached (hwgen.cli.nest_cache: "
        "~/.cache/hwgen/nests, keyed by the model, --bits, torch and the sources), so a "
        "second run does not import torch.",
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


def mapping_graph(entry, bits: int):
    """The lowered graph with ``bits``-bit operands, traced but not calibrated: the mapper
    needs shapes and widths (:func:`mapping.passes.shapes_for_mapping`), one-line errors."""
    from mapping.graph import GraphError
    from mapping.passes import shapes_for_mapping
    from mapping.quant import QuantError

    try:
        return shapes_for_mapping(entry, bits=bits)
    except (GraphError, QuantError, FileNotFoundError) as exc:
        raise CliError(f"{entry.name}: {exc}") from None


def format_table(schedule, arch) -> str:
    """Per-layer table and totals of a Schedule (estimated figures)."""
    head = ("layer", "GEMM MxNxK", "tile m x n x k", "order", "cycles", "util", "DMA words",
            "energy nJ")
    from mapping.bands import spilled_cost
    from mapping.cost import act_requirement

    rows = [head]
    spilled = {}  # layers whose input + output do not fit act_words: priced in row bands
    for lm, c in zip(schedule.layers, schedule.costs, strict=True):
        n = lm.nest
        if sum(act_requirement(n)) > arch.act_words:
            spilled[lm.layer] = spilled_cost(lm, arch)
        rows.append((
            lm.layer + ("*" if lm.layer in spilled else ""), f"{n.gemm_m}x{n.gemm_n}x{n.gemm_k}",
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
        f"{cycles:,} cycles (estimated: analytic model; accelerator compute layers only; no "
        "time: the clock target is not a verified clock, `hwgen synth --pnr` measures Fmax)"
    )
    if spilled:
        extra = sum(s.cycles for s in spilled.values()) - sum(
            c.cycles for lm, c in zip(schedule.layers, costs, strict=True) if lm.layer in spilled)
        lines.append(
            f"* {len(spilled)} layers do not fit the activation scratchpad (act_words = "
            f"{arch.act_words:,}): compiled, the program keeps its tensors in external memory "
            f"and runs every layer in row bands; these layers then take "
            f"{sum(s.cycles for s in spilled.values()):,} cycles with their band loads and "
            f"stores (+{extra:,}; estimated, mapping.bands; `hwgen compile` prints every "
            "layer's)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hwgen.cli import nest_cache
    from mapping.arch import ArchSpecError, resolve
    from mapping.mapper import map_nests
    from mapping.schedule import MappingError

    if not 2 <= args.bits <= 16:
        raise CliError(f"--bits {args.bits} is invalid: must be from 2 to 16")
    try:
        arch = resolve(args.arch)
    except ArchSpecError as exc:
        raise CliError(str(exc)) from None
    key = nest_cache.cache_key(args.model, args.input_shape, args.bits)
    nests = nest_cache.load(key) if key else None
    if nests is None:  # trace (imports torch); later runs read the nests back
        graph = mapping_graph(model_from_args(args, calibrates=False), args.bits)
        nests = [(node.name, node.nest) for node in graph.compute_nodes()]
        if key:
            nest_cache.store(key, nests)
    try:
        schedule = map_nests(nests, arch, args.objective)
    except MappingError as exc:
        raise CliError(f"{args.model} on {arch.name}: {exc}") from None
    print(schedule.to_json() if args.json else format_table(schedule, arch))
    return 0
