"""``hwgen dse``: design-space exploration of a model (zoo name, file.py:NAME, .pt2, .onnx)
on a board (see docs/dse.md)."""

from __future__ import annotations

import os
import sys
import time

from hwgen.cli.model_arg import add_model_arguments, model_from_args, model_key

DEFAULT_JOBS = max(1, min(2, os.cpu_count() or 1))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dse", help="explore ArchSpec x bit widths x mapper objective: Pareto frontier",
        description="Search the design space of MODEL on BOARD (level 0: analytic models), "
        "verify the top frontier points with synthesis and RTL simulation, and write "
        "points.csv, pareto.csv, report.md and plots into the run directory. Re-running "
        "the same command resumes the study. Accuracy is an objective when the model has "
        "labelled data (a zoo data set, or --calib data.npz with labels y).")
    add_model_arguments(p)
    p.add_argument("--board", required=True, help="board or device (see `hwgen boards`)")
    p.add_argument("--strategy", default="nsga2", choices=("grid", "random", "tpe", "nsga2"))
    p.add_argument("--trials", type=int, default=10_000, help="points to evaluate (default "
                   "10000; grid: at most the space size)")
    p.add_argument("--batch", type=int, default=100, help="points asked per sampler round "
                   "(NSGA-II population; default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="Dask LocalCluster workers "
                   f"(default {DEFAULT_JOBS}: this machine's cores, at most 2; 1 = in process)")
    p.add_argument("--scheduler", help="use an existing Dask cluster (tcp://host:port)")
    p.add_argument("--storage", help="Optuna RDB URL (default sqlite:///RUN/study.db)")
    p.add_argument("--space", help="space TOML file (default: the built-in space)")
    p.add_argument("--verify-frontier", type=int, default=3, metavar="K",
                   help="synthesise and simulate the top K frontier points (default 3)")
    p.add_argument("--samples", type=int, default=8, help="test samples per RTL simulation")
    p.add_argument("--pnr", action="store_true", help="also place and route the verified "
                   "points with nextpnr (ECP5, iCE40) for a measured Fmax; Xilinx boards are "
                   "synthesis only")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run directory")
    p.set_defaults(func=run)


class _Bar:
    def __init__(self):
        self.t0 = time.perf_counter()
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        width = 30
        fill = int(width * done / max(1, total))
        rate = ""
        el = time.perf_counter() - self.t0
        if stage != self.stage:
            if self.stage is not None:
                sys.stderr.write("\n")
            self.stage, self.t0, el = stage, time.perf_counter(), 0.0
        elif el > 0:
            rate = f" {el:6.0f}s"
        sys.stderr.write(f"\r{stage:8s} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}{rate}")
        sys.stderr.flush()


def run(args) -> int:
    from hwgen.cli import CliError

    try:
        import boards
        from dse.model import ModelError
        from dse.report import verified_line
        from dse.run import run_dse
        from dse.space import Space, SpaceError, default_space
        from dse.study import StudyError

        key = model_key(model_from_args(args))
        boards.get(args.board)
        space = Space.from_toml(args.space) if args.space else default_space()
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.trials < 1 or args.jobs < 1 or args.verify_frontier < 0:
        raise CliError("--trials and --jobs must be >= 1, --verify-frontier >= 0")
    bar = _Bar()
    try:
        res = run_dse(key, args.board, args.out, space=space, strategy=args.strategy,
                      trials=args.trials, batch=args.batch, seed=args.seed, jobs=args.jobs,
                      scheduler=args.scheduler, storage=args.storage,
                      verify=args.verify_frontier, verify_samples=args.samples,
                      simulator=args.simulator, pnr=args.pnr, progress=bar)
    except (SpaceError, StudyError, ModelError) as exc:
        raise CliError(str(exc)) from None
    sys.stderr.write("\n")
    s = res.seconds
    print(f"{len(res.points)} points ({res.evaluated} evaluated now), frontier "
          f"{len(res.frontier)}, verified {len(res.verified)}; level 0 {s['level0']:.1f} s, "
          f"verify {s['verify']:.1f} s, total {s['total']:.1f} s")
    for v in res.verified:
        print(f"  {verified_line(v)}")
    print(f"report: {res.run_dir / 'report.md'}")
    return verification_exit(res.verified)


def verification_exit(verified: list[dict]) -> int:
    """The command's exit status for its verified points (docs/dse.md, "Exit status").

    A tool that failed on a point (Yosys crash, simulator timeout) is that point's
    result, reported with the tool's message: the run itself succeeded, exit 0. A
    point whose RTL disagrees with the golden model or whose measured cycles differ
    from the prediction means the generated hardware is wrong: exit 1.
    """
    failed = [v for v in verified if v.get("verify_error")]
    for v in failed:
        print(f"warning: point #{v.get('index', '?')} not verified: {v['verify_error']}",
              file=sys.stderr)
    wrong = [v for v in verified if v.get("bit_exact_l2") is False
             or (v.get("cycles_l2") is not None and v["cycles_l2"] != v.get("cycles"))]
    return 1 if wrong else 0
