"""``hwgen compile``: model (zoo name, file.py:NAME, .pt2, .onnx) -> quantised graph ->
schedule -> program -> Verilog build dir."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hwgen.cli import CliError
from hwgen.cli.model_arg import (
    add_model_arguments,
    default_out,
    model_from_args,
    prepare_graph,
    source_settings,
)
from mapping.timing import run_cycles

DEFAULT_ARCH = "edge-8x8"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile a model (zoo name, file.py:NAME, .pt2, .onnx) into an accelerator build "
        "directory (Verilog, init files, manifest, schedule, report)",
        description="Trace, fold, fuse, quantise and lower a model, map every compute layer, "
        "compile the program, generate the accelerator and write Verilog, hex init files, "
        "manifest.json, schedule.json and report.md into the output directory. Ops the "
        "accelerator cannot run (softmax, layernorm, GELU) are listed as host-executed.",
    )
    add_model_arguments(p)
    p.add_argument("--arch", default=DEFAULT_ARCH,
                   help=f"architecture preset (tiny-4x4, edge-8x8, mid-16x16) or a TOML file "
                   f"(default {DEFAULT_ARCH})")
    p.add_argument("--bits", type=int, default=8,
                   help="activation and weight bits of the quantised model (default 8)")
    p.add_argument("--dataflow", choices=("ws", "os"), default=None,
                   help="override the architecture's dataflow")
    p.add_argument("--weight-store", choices=("rom", "external"), default=None,
                   help="override where the weights live: baked ROM or external memory")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override an ArchSpec field, e.g. --set act_words=12288 (repeatable)")
    p.add_argument("--objective", choices=("latency", "energy", "edp"), default="latency",
                   help="what the mapper minimises (default latency)")
    p.add_argument("-o", "--out", default=None,
                   help="output directory (default build/NAME, NAME the zoo name or e.g. "
                   "lenet5.Net for examples/lenet5.py:Net)")
    p.set_defaults(func=run)


def parse_sets(items: list[str]) -> dict:
    """``["act_words=12288", ...]`` -> ``{"act_words": 12288}`` (values parsed as TOML scalars)."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set {item!r} must look like FIELD=VALUE, e.g. act_words=12288")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()  # a bare word: a string value
    return out


def resolve_arch(spec: str, dataflow: str | None = None, weight_store: str | None = None,
                 sets: list[str] | None = None):
    """The ArchSpec of ``--arch`` with the command-line overrides applied (CliError if bad)."""
    import dataclasses

    from mapping.arch import ArchSpec, ArchSpecError, resolve

    try:
        arch = resolve(spec)
        changes = {k: v for k, v in (("dataflow", dataflow), ("weight_store", weight_store))
                   if v is not None}
        extra = parse_sets(sets or [])
        known = {f.name for f in dataclasses.fields(ArchSpec)}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise CliError(f"--set {', '.join(unknown)}: unknown ArchSpec field(s); allowed: "
                           f"{', '.join(sorted(known))}")
        changes.update(extra)
        if extra and "name" not in extra:
            changes["name"] = arch.name + "".join(f"+{k}={v}" for k, v in sorted(extra.items()))
        if changes:
            arch = arch.replace(**changes)
    except ArchSpecError as exc:
        raise CliError(str(exc)) from None
    return arch


def load_entry(name: str):
    """The zoo entry ``name`` (CliError listing the known names if unknown)."""
    import models

    try:
        return models.get(name)
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None


def compile_zoo_model(name: str, arch, out_dir: str | Path, *, bits: int = 8,
                      objective: str = "latency", settings: dict | None = None):
    """Prepare zoo model ``name`` (calibrated on its training data) and compile it;
    ``settings`` are recorded in the manifest beside ``bits``."""
    return compile_entry(load_entry(name), arch, out_dir, bits=bits, objective=objective,
                         settings=settings)


def compile_entry(entry, arch, out_dir: str | Path, *, bits: int = 8,
                  objective: str = "latency", settings: dict | None = None, progress=None):
    """Prepare a zoo entry or a user's :class:`mapping.source.ModelSource` and compile it;
    the manifest records ``bits``, a user model's source (``source_settings``) and
    ``settings``; ``progress`` as :func:`hwgen.build.flow.compile_model`'s."""
    from hwgen.build.flow import FlowError, compile_model

    if not 2 <= bits <= 16:
        raise CliError(f"--bits {bits} is invalid: must be from 2 to 16")
    if progress is not None:
        progress(f"tracing and quantising {entry.name} ({bits}-bit)")
    graph = prepare_graph(entry, bits=bits, acc_bits=arch.acc_bits)
    try:
        return compile_model(graph, arch, out_dir, model=entry.name, objective=objective,
                             settings={"bits": bits, **source_settings(entry),
                                       **(settings or {})}, progress=progress)
    except FlowError as exc:
        raise CliError(str(exc)) from None


def summary(cm, seconds: float) -> str:
    """What the compile prints: per-layer estimate, host ops, where the files are."""
    arch = cm.arch
    lines = [f"{cm.manifest.model} on {arch.name} ({arch.rows}x{arch.cols} {arch.dataflow}, "
             f"weights in {arch.weight_store}): compiled in {seconds:.1f} s -> {cm.out_dir}"]
    spilled = cm.program is not None and cm.program.spilled
    banded = {li.name: li for li in cm.program.layers} if spilled else {}
    for lm, c in zip(cm.schedule.layers, cm.schedule.costs, strict=True):
        n = lm.nest
        li = banded.get(lm.layer)
        cyc = f"{c.cycles:>9,}" if li is None else f"{li.predicted_cycles:>9,}"
        lines.append(f"  {lm.layer:<12} {n.kind:<5} {n.gemm_m}x{n.gemm_n}x{n.gemm_k:<6} "
                     f"tiles {lm.tile_m}x{lm.tile_n}x{lm.tile_k} {''.join(lm.order)}  "
                     f"{cyc} cycles (estimated"
                     + (f", {li.xfer_cycles:,} moving activations)" if li else ")"))
    if cm.program is not None:
        prog = cm.program
        layer_sum = sum(li.predicted_cycles for li in prog.layers)
        total = run_cycles(prog.input_count, layer_sum, prog.output_count)
        lines.append(f"  {len(prog.layers)} program layers, {layer_sum:,} layer cycles, "
                     f"{total:,} cycles start..done per inference incl. input/output streams "
                     "(estimated)")
        if spilled:
            lines.append(f"  activations in external memory (they do not fit act_words="
                         f"{arch.act_words:,}): every layer runs in row bands; the host writes "
                         f"the input at word {prog.ext_tensors['input'][0]:,}")
    else:
        lines.append(f"  {len(cm.kernels)} kernels (one program per array op) in "
                     f"{cm.out_dir / 'kernels'}")
    host = cm.host_ops
    if host:
        lines.append("  host-executed (not on the accelerator): "
                     + ", ".join(f"{p.name} ({p.op})" for p in host))
    lines.append(f"  report: {cm.out_dir / 'report.md'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    arch = resolve_arch(args.arch, args.dataflow, args.weight_store, args.set)
    entry = model_from_args(args)
    out = Path(args.out) if args.out else default_out(entry)
    start = time.perf_counter()

    def progress(line: str) -> None:  # stderr: the summary on stdout stays clean
        print(f"hwgen compile [{time.perf_counter() - start:6.1f} s] {line} ...",
              file=sys.stderr, flush=True)

    # phases on a terminal (a big model takes minutes); pipes and logs get the summary only
    cm = compile_entry(entry, arch, out, bits=args.bits, objective=args.objective,
                       progress=progress if sys.stderr.isatty() else None)
    print(summary(cm, time.perf_counter() - start))
    return 0
