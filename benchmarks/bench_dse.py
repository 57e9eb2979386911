"""Level-0 evaluation throughput and the full `hwgen dse` acceptance run.

    python benchmarks/bench_dse.py [--points 10000] [--full] [--trials 10000] [--jobs 2] [--pnr]
                                   [--pnr-cost]

Level 0: random points of the default space for cnn-digits on ulx3s-85f, evaluated
in this process: *cold* (empty layer caches, every new layer shape prices its
candidate grid) and *warm* (the same points again: cache lookups, energy, resources).

``--full`` also times the issue's acceptance run, the CLI with its defaults
(``hwgen dse cnn-digits --board ulx3s-85f``: NSGA-II, 10,000 trials, 2 workers,
verify the top 3 frontier points with Yosys + Verilator) in a fresh run directory
with cold synthesis and simulation-build caches (fresh ``HWGEN_CACHE`` and
``HWGEN_SIM_CACHE``); only Verilator's run-time object cache
(``HWGEN_SIM_OBJCACHE``, design-independent) stays warm. Records wall time per
phase, the machine load, and the verified points' predicted vs measured figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_section  # noqa: E402


def level0(n: int, seed: int = 0) -> dict:
    from dse.execute import EvalConfig, build_evaluator
    from dse.run import with_board_clock
    from dse.space import default_space

    sp = with_board_clock(default_space(), "ulx3s-85f")
    with tempfile.TemporaryDirectory() as tmp:
        ev = build_evaluator(EvalConfig("cnn-digits", "ulx3s-85f", sp.to_dict(), tmp))
        rng = random.Random(seed)
        pts = [sp.point(rng.randrange(sp.size)) for _ in range(n)]
        for b in (4, 6, 8):
            ev.acc_of((b, ()))
        t0 = time.perf_counter()
        ev.evaluate_many(pts)
        cold = time.perf_counter() - t0
        misses = ev.misses
        t0 = time.perf_counter()
        ev.evaluate_many(pts)
        warm = time.perf_counter() - t0
    return {"n": n, "cold_s": cold, "warm_s": warm, "grids": misses}


def _pct(p, m) -> str:
    if p in (None, "", 0) or m in (None, ""):
        return "—"
    return f"{100.0 * (m - p) / p:+.1f}%"


def _f(v, d=0) -> str:
    if v is None or v == "":
        return "—"
    return f"{v:,.{d}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def pnr_cost(vrows: list[dict], ver: dict, env: dict) -> str:
    """nextpnr on the chosen point's build after the run (its synthesis is cached): what
    ``--pnr`` would add per point."""
    from dse.verify import level1_pnr

    ok = [r for r in vrows if "l1" in ver.get(r["index"], {}) and "l2" in ver[r["index"]]]
    if not ok:
        return "P&R cost not measured: no verified point synthesised."
    r = ok[0]
    v = ver[r["index"]]
    saved = os.environ.get("HWGEN_CACHE")
    os.environ["HWGEN_CACHE"] = env["HWGEN_CACHE"]
    try:
        t0 = time.perf_counter()
        p = level1_pnr(v["build_dir"], "ulx3s-85f")
        secs = time.perf_counter() - t0
    except Exception as exc:  # reported, not fatal to the benchmark
        return f"P&R of #{r['index']} failed: {type(exc).__name__}: {exc}"
    finally:
        if saved is None:
            os.environ.pop("HWGEN_CACHE", None)
        else:
            os.environ["HWGEN_CACHE"] = saved
    cyc = v["l2"]["cycles"]
    return (f"`--pnr` cost, measured after the run on the chosen point #{r['index']} (its "
            f"synthesis cached): nextpnr-ecp5 out of context {secs:.0f} s; Fmax "
            f"{p['fmax_mhz']:.1f} MHz (target {p['target_mhz']:g} MHz), so measured throughput "
            f"{p['fmax_mhz'] * 1e6 / cyc:,.0f} inferences/s (Fmax / {cyc:,.0f} measured cycles) "
            f"vs {float(r['throughput_l0']):,.0f}/s estimated at the board clock.")


def full_run(trials: int, jobs: int | None, pnr: bool, pnr_after: bool = False) -> str:
    objcache = Path(os.environ.get("HWGEN_SIM_OBJCACHE")
                    or Path.home() / ".cache" / "hwgen" / "sim" / "objcache")
    tmp = tempfile.mkdtemp(prefix="bench-dse-")  # kept when the run fails (its logs)
    env = {**os.environ, "HWGEN_CACHE": f"{tmp}/cache", "HWGEN_SIM_CACHE": f"{tmp}/sim",
           "HWGEN_SIM_OBJCACHE": str(objcache)}
    cmd = ["hwgen", "dse", "cnn-digits", "--board", "ulx3s-85f"]
    if trials != 10_000:
        cmd += ["--trials", str(trials)]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    if pnr:
        cmd.append("--pnr")
    run = Path(tmp, "run")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hwgen", *cmd[1:], "-o", str(run)], cwd=ROOT,
                       capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    load1 = os.getloadavg()
    if p.returncode not in (0, 1) or not (run / "timings.json").is_file():
        return f"\nAcceptance run `{' '.join(cmd)}` failed (exit {p.returncode}; run " \
               f"directory kept in `{tmp}`):\n\n" \
               f"```\n{p.stderr[-3000:]}\n```\n"
    t = json.loads((run / "timings.json").read_text())
    ver = json.loads((run / "verified.json").read_text())
    import csv
    with open(run / "verified.csv") as fh:
        vrows = list(csv.DictReader(fh))
    pnr_line = pnr_cost(vrows, ver, env) if pnr_after else ""
    kept = ""
    if p.returncode == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        kept = (f" A verification failed: run directory and caches (Yosys logs of failed "
                f"syntheses in `cache/synth/*.failed`) kept in `{tmp}`.")
    s = t["seconds"]
    body = [f"\nAcceptance run `{' '.join(cmd)} -o RUN` (fresh run directory; cold Yosys "
            "and simulation-build caches; Verilator's design-independent run-time object "
            f"cache warm): exit {p.returncode}, **{secs:.0f} s wall** (budget 600 s). Load "
            f"average (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
            f"after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}; run under "
            "`/work/notes/heavy -2` (no other heavy job on the 2 cores)." + kept, "",
            "| phase | seconds |", "|---|---|",
            f"| accuracy per bit width (sim.golden, test split) | {s.get('accuracy', 0):.1f} |",
            f"| level 0: {t['evaluated']:,} points (NSGA-II, 2 Dask workers) | "
            f"{s.get('level0', 0):.1f} ({t['evaluated'] / max(s.get('level0', 1), 1e-9):,.0f}"
            " points/s incl. sampler and storage) |",
            f"| verification of {t['verified']} points (build, Yosys, Verilator; "
            f"2 workers) | {s.get('verify', 0):.1f} |",
            f"| total (in process; wall incl. start-up {secs:.1f}) | {s.get('total', 0):.1f} |",
            "", f"Frontier: {t['frontier']} points, {t['frontier_groups']} distinct objective "
            "vectors.", "",
            "| # | design | cycles L0 | cycles L2 | err | LUT L0 | LUT L1 | err | DSP L0 | DSP L1 "
            "| err | BRAM L0 | BRAM L1 | err | bit-exact | build / synth / sim s |",
            "|" + "---|" * 16]
    for r in vrows:
        v = ver.get(r["index"], {})
        l1, l2 = v.get("l1", {}), v.get("l2", {})

        def num(k, r=r):
            return float(r[k]) if r.get(k) not in (None, "") else None
        design = (f"{r['rows']}x{r['cols']} {r['dataflow']} {r.get('bits', '')}b "
                  f"{r.get('objective', '')}")
        cells = [r["index"], design, _f(int(num("cycles_l0"))), _f(l2.get("cycles"), 1),
                 _pct(num("cycles_l0"), l2.get("cycles"))]
        for k in ("lut", "dsp", "bram"):
            cells += [_f(num(f"{k}_l0"), 0), _f(l1.get(k)), _pct(num(f"{k}_l0"), l1.get(k))]
        cells += [str(l2.get("bit_exact", "—")) + f" ({l2.get('samples', '—')})",
                  f"{v.get('build_seconds', '—')} / {l1.get('synth_seconds', '—')} / "
                  f"{l2.get('sim_seconds', '—')}"]
        if v.get("error"):
            cells[-1] += f" — FAILED: {v['error'][:200]}"
        lines = "| " + " | ".join(str(c) for c in cells) + " |"
        body.append(lines)
    body += ["", pnr_line, "", f"```\n{p.stdout.strip()}\n```"]
    return "\n".join(body) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--full", action="store_true", help="also the 10,000-trial acceptance run")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=None, help="--jobs of the run (default: the "
                    "CLI's)")
    ap.add_argument("--pnr", action="store_true", help="the run also places and routes")
    ap.add_argument("--pnr-cost", action="store_true", help="after the run, time nextpnr on "
                    "the chosen point (what --pnr adds; >10 min for a 30k-LUT design)")
    args = ap.parse_args(argv)
    r = level0(args.points)
    body = (f"Level 0, {r['n']:,} random points of the default space (cnn-digits, ulx3s-85f), "
            "one process:\n\n| cache | seconds | points/s | layer grids priced |\n"
            "|---|---|---|---|\n"
            f"| cold | {r['cold_s']:.1f} | {r['n'] / r['cold_s']:,.0f} | {r['grids']:,} |\n"
            f"| warm | {r['warm_s']:.2f} | {r['n'] / r['warm_s']:,.0f} | 0 |\n")
    print(body, flush=True)
    if args.full:
        full = full_run(args.trials, args.jobs, args.pnr, args.pnr_cost and not args.pnr)
        print(full)
        body += full
    write_section("dse", "Design-space exploration", "python benchmarks/bench_dse.py "
                  + " ".join(argv or sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
