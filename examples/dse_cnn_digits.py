"""Design-space exploration of cnn-digits on the ULX3S from Python (the `hwgen dse` API).

    python examples/dse_cnn_digits.py [RUN_DIR] [--trials N] [--jobs N] [--verify K]

A smaller space than the CLI default (array shape, dataflow, double buffering,
bit width, mapper objective), NSGA-II, then the frontier and the verified points.
Re-running with the same RUN_DIR resumes the study.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dse.report import verified_line  # noqa: E402
from dse.run import run_dse  # noqa: E402
from dse.space import Param, Space  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="runs/example-cnn-digits")
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--verify", type=int, default=0, help="frontier points to synthesise "
                    "and simulate")
    ap.add_argument("--pnr", action="store_true", help="also place and route them (Fmax)")
    args = ap.parse_args()
    space = Space(
        params=(Param("rows", (2, 4, 8, 16)), Param("cols", (2, 4, 8, 16)),
                Param("dataflow", ("ws", "os")), Param("double_buffer", (True, False)),
                Param("bits", (4, 6, 8)), Param("objective", ("latency", "edp"))),
        base={"act_words": 4096, "w_words": 4096, "acc_words": 1024},
    )
    res = run_dse("cnn-digits", "ulx3s-85f", args.run_dir, space=space, strategy="nsga2",
                  trials=args.trials, batch=50, seed=0, jobs=args.jobs, verify=args.verify,
                  pnr=args.pnr,
                  progress=lambda stage, done, total: print(f"\r{stage}: {done}/{total}",
                                                            end="", file=sys.stderr))
    print(file=sys.stderr)
    print(f"{len(res.points)} points, {len(res.frontier)} on the frontier "
          f"({len(res.groups)} distinct objective vectors) "
          f"(objectives: {', '.join(o.metric for o in res.objectives)})")
    for p in sorted(res.frontier, key=lambda p: -p["throughput"])[:10]:
        print(f"  #{p['index']:4d} {p['rows']:2d}x{p['cols']:<2d} {p['dataflow']} "
              f"bits={p['bits']} {p['objective']:7s} {p['throughput']:9.0f}/s "
              f"accuracy={p['accuracy']:.3f}")
    for v in res.verified:
        print(f"  verified {verified_line(v)}")
    print(f"report: {res.run_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
