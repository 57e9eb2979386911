"""Co-simulation speed: the full 360-sample mlp-digits run on edge-8x8 in Verilator.

Measures (wall clock, this machine): ``hwgen compile`` time, the Verilator build of the
generated Verilog (fresh build cache; Verilator's run-time library object cache is the
machine's usual one), the 360-sample ``hwgen sim`` run including that build, the same run
with the build cached, and the simulated cycles per second of the sample loop. Writes
``benchmarks/results/sim.md``.

    python benchmarks/bench_sim.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_section  # noqa: E402

MODEL, ARCH = "mlp-digits", "edge-8x8"


def load() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    from hwgen.cli.compile_cmd import compile_zoo_model, resolve_arch
    from hwgen.cli.sim_cmd import simulate_build

    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "simcache"
        t0 = time.perf_counter()
        compile_zoo_model(MODEL, resolve_arch(ARCH), build)
        t_compile = time.perf_counter() - t0
        load_before = load()
        first = simulate_build(build, cache_dir=cache, progress=False)
        second = simulate_build(build, cache_dir=cache, progress=False)
        load_after = load()
    r1, r2 = first["result"], second["result"]
    assert r1.bit_exact and r2.bit_exact and not r1.build_cached and r2.build_cached
    acc = first["accuracy"]
    meas = [int(r1.layer_cycles[:, i].max()) for i in range(len(r1.predicted))]
    rows = [
        ("`hwgen compile` (trace, quantise, map, generate, emit Verilog)", f"{t_compile:.1f} s"),
        ("Verilator build of the accelerator (fresh cache)", f"{r1.build_seconds:.1f} s"),
        ("360-sample `hwgen sim`, build included", f"{first['wall']:.1f} s"),
        ("compile + 360-sample sim incl. build (goal <= 60 s)",
         f"{t_compile + first['wall']:.1f} s"),
        ("360-sample `hwgen sim`, build cached", f"{second['wall']:.1f} s"),
        ("simulated cycles (360 samples)", f"{r2.total_cycles:,}"),
        ("Verilator speed, sample loop (cocotb, per-sample Python)",
         f"{r2.cycles_per_second:,.0f} cycles/s"),
        ("per-layer cycles measured / predicted", f"{meas} / {r1.predicted}"),
        ("start..done per inference measured / predicted (timing.run_cycles)",
         f"{max(r1.run_cycles):,} / {r1.predicted_run:,}"),
        ("accuracy float / golden int8 / hardware",
         f"{acc['float']:.2%} / {acc['golden']:.2%} / {acc['hardware']:.2%}"),
        ("outputs bit-exact vs sim.golden", f"{r1.samples - len(r1.mismatches)}/{r1.samples}"),
    ]
    body = ["All figures *measured* (wall clock / RTL simulation) on the machine above. "
            f"Load average (1, 5, 15 min) before the runs: {load_before}; after: {load_after} "
            "(other jobs sharing the 2 cores slow every figure down).", "",
            "| what | value |", "|---|---:|"]
    body += [f"| {a} | {b} |" for a, b in rows]
    path = write_section("sim", f"Co-simulation: {MODEL} on {ARCH}, 360 digits test samples "
                         "(Verilator)", "python benchmarks/bench_sim.py", "\n".join(body))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
