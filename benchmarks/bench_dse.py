"""Level-0 evaluation throughput and the full `hwgen dse` acceptance run.

    python benchmarks/bench_dse.py [--points 20000] [--full] [--trials 10000] [--jobs 2]

Level 0: random points of the default space for cnn-digits on ulx3s-85f, evaluated
in this process: *cold* (empty layer caches, every new layer configuration runs
the mapper) and *warm* (the same points again: cache lookups, energy, resources).
``--full`` also times the CLI run of the issue (NSGA-II, 10,000 trials, verify 3).
"""

from __future__ import annotations

import argparse
import random
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
    return {"n": n, "cold_s": cold, "warm_s": warm, "mapper_calls": misses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--full", action="store_true", help="also the 10,000-trial CLI run")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    r = level0(args.points)
    body = (f"Level 0, {r['n']:,} random points of the default space (cnn-digits, ulx3s-85f), "
            "one process:\n\n| cache | seconds | points/s | mapper calls |\n|---|---|---|---|\n"
            f"| cold | {r['cold_s']:.1f} | {r['n'] / r['cold_s']:,.0f} | {r['mapper_calls']:,} |\n"
            f"| warm | {r['warm_s']:.2f} | {r['n'] / r['warm_s']:,.0f} | 0 |\n")
    print(body)
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "hwgen", "dse", "cnn-digits", "--board", "ulx3s-85f",
                   "--trials", str(args.trials), "--jobs", str(args.jobs),
                   "--verify-frontier", "3", "-o", f"{tmp}/run"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            secs = time.perf_counter() - t0
            report = Path(tmp, "run", "report.md")
            text = report.read_text() if report.exists() else p.stderr[-3000:]
        full = (f"\nFull run `{' '.join(cmd[2:-2])}`: exit {p.returncode}, {secs:.0f} s.\n\n"
                f"```\n{p.stdout.strip()}\n```\n")
        print(full)
        print(text)
        body += full
    write_section("dse", "Design-space exploration", "python benchmarks/bench_dse.py "
                  + " ".join(argv or sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
