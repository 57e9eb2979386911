"""``hwgen demo`` (``make demo``): compile ``mlp-digits`` for ``edge-8x8`` into build/demo,
simulate the whole digits test split in Verilator and print a short report.

The build is reused when build/demo already holds an intact build (every file's hash
checked) of the same model and architecture compiled from the same sources: the manifest's
``settings`` record a digest of the ``models``, ``mapping`` and ``hwgen`` packages (their
Python files and the shipped checkpoints), so a change to any of them recompiles. Like the
simulator's build cache, the key is content, not time stamps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hwgen.cli.sources import source_digest

DEMO_MODEL = "mlp-digits"
DEMO_ARCH = "edge-8x8"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help=f"the main flow on {DEMO_MODEL}: compile, simulate the test split, report",
        description=f"Compile {DEMO_MODEL} for {DEMO_ARCH}, run every digits test sample through "
        "the generated Verilog (the fast Verilator testbench), check each output bit-exactly "
        "against the golden model and print float/golden/hardware accuracy, measured vs "
        "predicted cycles and the simulation speed. An intact build of the same sources in "
        "the build directory is reused.",
    )
    p.add_argument("-o", "--out", default="build/demo", help="build directory (default build/demo)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="HDL simulator (default verilator)")
    p.add_argument("--samples", type=int, default=None,
                   help="number of test samples (default: all 360)")
    p.set_defaults(func=run)


def reusable(out: Path, arch, digest: str) -> bool:
    """Whether ``out`` holds an intact demo build of ``arch`` compiled from ``digest``."""
    from hwgen.build.manifest import BuildError, Manifest

    if not (out / "manifest.json").is_file():
        return False
    try:
        man = Manifest.load(out)
    except BuildError:
        return False
    return (man.kind == "chain" and man.model == DEMO_MODEL and man.arch == arch
            and dict(man.settings or {}).get("sources") == digest)


def demo_report(s: dict, compile_seconds: float, total_seconds: float, out: Path) -> str:
    res, acc = s["result"], s["accuracy"]
    lines = [f"hwgen demo: {DEMO_MODEL} on {DEMO_ARCH}, {res.samples} digits test samples, "
             f"{res.simulator}"]
    lines.append(f"  accuracy     float {acc['float']:.2%} | golden int8 {acc['golden']:.2%} | "
                 f"hardware {acc['hardware']:.2%} (measured in RTL simulation)")
    bad = res.mismatches
    lines.append(f"  bit-exact    {res.samples - len(bad)}/{res.samples} samples equal "
                 "sim.golden" + ("" if not bad else f"; first mismatch: "
                                 f"{res.mismatch_detail(bad[0])}"))
    meas = [int(res.layer_cycles[:, i].max()) for i in range(len(res.predicted))]
    lines.append(f"  cycles       per layer measured {meas} vs predicted {res.predicted}; "
                 f"inference {max(res.run_cycles):,} cycles start..done "
                 f"({res.predicted_run:,} predicted)")
    lines.append(f"  sim speed    {res.cycles_per_second:,.0f} cycles/s (Verilator sample loop); "
                 f"build {'cached' if res.build_cached else f'{res.build_seconds:.0f} s'}, "
                 f"simulation {s['wall']:.1f} s")
    lines.append(f"  wall time    compile {compile_seconds:.1f} s, total {total_seconds:.1f} s")
    lines.append(f"  Verilog      {out / 'hwgen_accel.v'}  (report: {out / 'report.md'})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hwgen.cli.compile_cmd import compile_zoo_model, resolve_arch
    from hwgen.cli.sim_cmd import passed, simulate_build

    t0 = time.perf_counter()
    out = Path(args.out)
    arch, digest = resolve_arch(DEMO_ARCH), source_digest()
    if reusable(out, arch, digest):
        print(f"{out} is an intact build of {DEMO_MODEL} for {DEMO_ARCH} from the same sources "
              "(manifest hashes checked): not recompiled", flush=True)
    else:
        print(f"compiling {DEMO_MODEL} for {DEMO_ARCH} into {out} ...", flush=True)
        compile_zoo_model(DEMO_MODEL, arch, out, settings={"sources": digest})
    t1 = time.perf_counter()
    print(f"simulating the digits test split with {args.simulator} (the first build of the "
          "Verilog takes about 20 s; later runs reuse it) ...", flush=True)
    s = simulate_build(out, samples=args.samples, simulator=args.simulator)
    print(demo_report(s, t1 - t0, time.perf_counter() - t0, out))
    return 0 if passed(s) else 1
