"""Mapper speed: every conv + fc layer of the zoo ``resnet18`` onto ``mid-16x16``.

Prints the total wall and CPU time, the mapspace size and the evaluated
mappings per second, and writes ``benchmarks/results/mapper.md``.

ResNet-18's feature maps (up to 150k + 800k elements) do not fit mid-16x16's
activation scratchpad (``act_words`` = 65536): compiled, such a program keeps its
tensors in external memory and runs every layer in row bands (``mapping.bands``), so
the mapper only checks that one output row of each layer fits. The preset is
mapped as it is.

Usage: ``python benchmarks/bench_mapper.py [--repeat 3] [--objective latency]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

import models
from mapping.arch import preset
from mapping.cost import act_requirement
from mapping.mapper import search_layer
from mapping.passes import prepare

RESULTS = Path(__file__).resolve().parent / "results" / "mapper.md"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def resnet18_layers():
    entry = models.get("resnet18")
    x = entry.example_input()
    graph = prepare(entry.load(), x, x.numpy())
    return [(n.name, n.nest) for n in graph.compute_nodes()]


def run_once(layers, arch, objective):
    t0, c0 = time.perf_counter(), time.process_time()
    results = [(name, search_layer(nest, arch, objective, layer=name)) for name, nest in layers]
    return time.perf_counter() - t0, time.process_time() - c0, results


def whole_command(arch, repeat: int) -> dict:
    """Wall seconds of the whole ``hwgen map resnet18 --arch <arch as TOML>`` process, cold
    (its nest cache emptied first: trace, lower, map, print) and warm (the traced nests read
    back from the cache: ``hwgen.cli.nest_cache``, no torch), and of ``python -c "import
    torch"`` (the floor of any command that traces a torch model), in rotation: medians and
    minima of ``repeat`` rounds."""
    import shutil
    import statistics
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "arch.toml"
        arch.save(toml)
        cache = Path(tmp) / "nests"
        env = {**os.environ, "HWGEN_NEST_CACHE": str(cache)}
        cmd = [sys.executable, "-m", "hwgen", "map", "resnet18", "--arch", str(toml)]
        cmds = {"hwgen map, cold": cmd, "hwgen map, warm": cmd,
                "import torch": [sys.executable, "-c", "import torch"]}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(repeat):
            for k, c in cmds.items():
                if k.endswith("cold"):
                    shutil.rmtree(cache, ignore_errors=True)
                t0 = time.perf_counter()
                subprocess.run(c, check=True, stdout=subprocess.DEVNULL, env=env)
                times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    ap.add_argument("--objective", default="latency", choices=("latency", "energy", "edp"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    layers = resnet18_layers()
    arch = preset("mid-16x16")
    banded = sum(sum(act_requirement(nest)) > arch.act_words for _, nest in layers)
    runs = [run_once(layers, arch, args.objective) for _ in range(args.repeat)]
    wall, cpu, results = min(runs, key=lambda r: r[1])
    space = sum(r.space for _, r in results)
    evaluated = sum(r.evaluated for _, r in results)
    cycles = sum(r.cost.cycles for _, r in results)
    macs = sum(r.cost.macs for _, r in results)
    summary = (
        f"resnet18 ({len(layers)} conv+fc layers) on mid-16x16, objective {args.objective}: "
        f"wall {wall:.3f} s, CPU {cpu:.3f} s (best of {args.repeat}; all runs' CPU: "
        f"{', '.join(f'{r[1]:.3f}' for r in runs)} s); mapspace {space:,} mappings, "
        f"{evaluated:,} evaluated ({evaluated / cpu:,.0f}/s CPU)"
    )
    print(summary)
    whole = whole_command(arch, max(args.repeat, 5))
    (cold_med, cold_min), (cmd_med, cmd_min) = whole["hwgen map, cold"], whole["hwgen map, warm"]
    torch_med, torch_min = whole["import torch"]
    print(f"whole command: hwgen map resnet18 median {cmd_med:.2f} s (min {cmd_min:.2f}) with "
          f"its traced nests cached, {cold_med:.2f} s (min {cold_min:.2f}) tracing; import "
          f"torch alone median {torch_med:.2f} s (min {torch_min:.2f})")

    lines = [
        "# Mapper benchmark (`benchmarks/bench_mapper.py`)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, numpy {np.__version__}",
        f"- load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(the machine is shared: CPU time is the figure to compare, wall time includes waiting)",
        f"- workload: every conv + fc layer of zoo `resnet18` ({len(layers)} layers, "
        f"{macs:,} MACs) on `mid-16x16` (16x16 ws), objective `{args.objective}`, "
        "one process, one thread (numpy element-wise)",
        f"- the preset as it is (act_words {arch.act_words:,}: {banded} of the layers do not "
        "fit and run in row bands when compiled; the mapper checks one output row fits)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| total wall time (best of {args.repeat}) | {wall:.3f} s (measured) |",
        f"| total CPU time | {cpu:.3f} s (measured; target <= 1 s) |",
        f"| mapspace size (candidate tile sizes^3 x 6 orders, summed) | {space:,} |",
        f"| mappings evaluated (after the order-independent buffer filter) | {evaluated:,} |",
        f"| evaluated mappings / s (CPU) | {evaluated / cpu:,.0f} |",
        f"| whole command `hwgen map resnet18 --arch mid-16x16` (as a TOML file), "
        f"wall (median / min of {max(args.repeat, 5)}), its traced nests cached (every run "
        f"after the first) | {cmd_med:.2f} s / {cmd_min:.2f} s "
        "(measured; target <= 2 s; read nests, map, print: no torch) |",
        f"| the same, first run (nest cache emptied: trace at 224x224, lower, map, print, no "
        f"calibration) | {cold_med:.2f} s / {cold_min:.2f} s (measured) |",
        f"| `python -c \"import torch\"`, in rotation with both | {torch_med:.2f} s / "
        f"{torch_min:.2f} s (measured: the floor of any command that traces) |",
        f"| predicted total cycles | {cycles:,} (estimated: analytic model) |",
        f"| overall utilisation | {macs / (arch.pes * cycles):.1%} (estimated) |",
        "",
        "| layer | GEMM MxNxK | space | evaluated | tile m x n x k | order | cycles | util |",
        "|---|---|---:|---:|---|---|---:|---:|",
    ]
    for name, r in results:
        n, lm = r.mapping.nest, r.mapping
        lines.append(
            f"| {name} | {n.gemm_m}x{n.gemm_n}x{n.gemm_k} | {r.space:,} | {r.evaluated:,} | "
            f"{lm.tile_m}x{lm.tile_n}x{lm.tile_k} | {''.join(lm.order)} | {r.cost.cycles:,} | "
            f"{r.cost.utilization:.1%} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
