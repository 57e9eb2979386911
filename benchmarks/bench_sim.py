"""Simulation speed: the fast engine (compiled Verilator testbench) against the cocotb engine
on the edge-8x8 mlp-digits demo build, and the whole `hwgen demo` cold and warm.

In one invocation on one machine (so the ratios compare like with like):

1. ``hwgen compile mlp-digits --arch edge-8x8`` (timed);
2. per engine, a cold build (fresh simulation cache, Verilator's run-time objects
   compiled too) and the 360 digits test samples, then the same run with the build
   cached: build seconds, sample-loop seconds and simulated cycles per second;
3. ``hwgen demo`` as a new user runs it after set-up: with every hwgen cache empty
   (``XDG_CACHE_HOME`` a fresh folder: compile + Verilator build + 360 samples), then again
   with the caches warm.

Writes ``benchmarks/results/sim.md``. ``--quick`` simulates 60 samples instead of 360.

    python benchmarks/bench_sim.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _common import write_section  # noqa: E402

MODEL, ARCH = "mlp-digits", "edge-8x8"
PAIRS = 3


def load() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def timed_demo(cache_home: Path, out: Path) -> float:
    """Wall seconds of ``hwgen demo`` with ``XDG_CACHE_HOME=cache_home`` (checks it passed)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("HWGEN_SIM_CACHE", None)
    env.pop("HWGEN_SIM_OBJCACHE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwgen", "demo", "-o", str(out)], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or "360/360 samples equal sim.golden" not in proc.stdout:
        raise SystemExit(f"hwgen demo failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 samples, no demo timing")
    args = ap.parse_args(argv)
    samples = 60 if args.quick else None
    from hwgen.cli.compile_cmd import compile_zoo_model, resolve_arch
    from hwgen.cli.sim_cmd import simulate_build

    load_before = load()
    runs: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        build = Path(tmp) / "build"
        t0 = time.perf_counter()
        compile_zoo_model(MODEL, resolve_arch(ARCH), build)
        t_compile = time.perf_counter() - t0
        for engine in ("fast", "cocotb"):
            cache = Path(tmp) / f"simcache-{engine}"
            os.environ["HWGEN_SIM_OBJCACHE"] = str(Path(tmp) / f"objcache-{engine}")
            cold = simulate_build(build, samples=samples, engine=engine, cache_dir=cache,
                                  progress=False)
            warm = simulate_build(build, samples=samples, engine=engine, cache_dir=cache,
                                  progress=False)
            runs[engine] = (cold, warm)
        # paired warm runs, fast and cocotb in turn: the ratio of each pair, then the median
        pairs = []
        for _ in range(PAIRS):
            f = simulate_build(build, samples=samples, engine="fast", progress=False,
                               cache_dir=Path(tmp) / "simcache-fast")["result"]
            c = simulate_build(build, samples=samples, engine="cocotb", progress=False,
                               cache_dir=Path(tmp) / "simcache-cocotb")["result"]
            pairs.append(f.cycles_per_second / c.cycles_per_second)
        os.environ.pop("HWGEN_SIM_OBJCACHE", None)
        demo = None
        if not args.quick:
            cache_home = Path(tmp) / "cache-home"
            demo = (timed_demo(cache_home, Path(tmp) / "demo"),
                    timed_demo(cache_home, Path(tmp) / "demo"))
    load_after = load()
    for cold, warm in runs.values():
        for s in (cold, warm):
            assert s["result"].bit_exact and max(s["result"].layer_deviation()) == 0
    f_cold, f_warm = (s["result"] for s in runs["fast"])
    c_cold, c_warm = (s["result"] for s in runs["cocotb"])
    n = f_warm.samples
    speedup = float(np.median(pairs))
    rows = [
        ("`hwgen compile` (trace, quantise, map, generate, emit Verilog)", f"{t_compile:.1f} s",
         ""),
        ("Verilator build, cold (fresh build and object caches)",
         f"{f_cold.build_seconds:.1f} s", f"{c_cold.build_seconds:.1f} s"),
        (f"{n}-sample `hwgen sim`, build included", f"{runs['fast'][0]['wall']:.1f} s",
         f"{runs['cocotb'][0]['wall']:.1f} s"),
        (f"{n}-sample `hwgen sim`, build cached", f"{runs['fast'][1]['wall']:.1f} s",
         f"{runs['cocotb'][1]['wall']:.1f} s"),
        (f"{n}-sample loop (inside the simulator)", f"{f_warm.loop_seconds:.2f} s",
         f"{c_warm.loop_seconds:.2f} s"),
        ("simulated cycles (free-running counter)", f"{f_warm.total_cycles:,}",
         f"{c_warm.total_cycles:,}"),
        ("simulation speed, sample loop", f"{f_warm.cycles_per_second:,.0f} cycles/s",
         f"{c_warm.cycles_per_second:,.0f} cycles/s"),
        ("per-layer cycles measured (= predicted)", f"{list(map(int, f_warm.layer_cycles[0]))}",
         f"{list(map(int, c_warm.layer_cycles[0]))}"),
        ("outputs bit-exact vs sim.golden", f"{n - len(f_warm.mismatches)}/{n}",
         f"{n - len(c_warm.mismatches)}/{n}"),
    ]
    acc = runs["fast"][1].get("accuracy")
    body = [
        "All figures *measured* (wall clock / RTL simulation) in one invocation on the machine "
        f"above. Load average (1, 5, 15 min) before: {load_before}; after: {load_after} (other "
        "jobs sharing the 2 cores slow every figure down; the ratio compares runs of the same "
        "invocation).", "",
        "| what | fast engine | cocotb engine |", "|---|---:|---:|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows], "",
        f"Fast engine / cocotb engine, simulated cycles per second, median of {PAIRS} paired warm "
        f"runs: **{speedup:.1f}x** (pairs {', '.join(f'{r:.1f}' for r in pairs)}; target "
        ">= 15x). Both engines give the same outputs and counters (the free-running "
        "counter included); `tests/sim/test_fast.py` checks that on every zoo design.",
    ]
    if acc:
        body.append(f"Accuracy float / golden int8 / hardware: {acc['float']:.2%} / "
                    f"{acc['golden']:.2%} / {acc['hardware']:.2%}.")
    if demo:
        body += ["", "`hwgen demo` (compile + Verilator build + 360 samples, the fast engine), "
                 f"every hwgen cache empty: **{demo[0]:.1f} s** (target <= 40 s); again with the "
                 f"caches warm (build/demo reused: its hashes checked, same sources; simulator "
                 f"build cached): **{demo[1]:.1f} s** (target <= 10 s)."]
    path = write_section("sim", f"Simulation engines: {MODEL} on {ARCH}, digits test samples "
                         "(Verilator)", "python benchmarks/bench_sim.py", "\n".join(body))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
