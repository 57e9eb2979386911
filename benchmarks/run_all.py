"""Run every benchmark script and collect their results into BENCHMARKS.md.

Each ``benchmarks/bench_*.py`` (and the other scripts listed in ``SCRIPTS``)
writes a markdown section to ``benchmarks/results/<name>.md``. This script runs
them in one invocation (so ratios compare runs on the same machine at the same
time), then writes BENCHMARKS.md with the machine and date on top.

    python benchmarks/run_all.py            # run all, rewrite BENCHMARKS.md
    python benchmarks/run_all.py --collect  # only collect existing results
    python benchmarks/run_all.py bench_mapper.py   # run one, then collect
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine  # noqa: E402

ROOT = HERE.parent
RESULTS = HERE / "results"

# Scripts in run order, with their arguments; scripts not listed run afterwards, sorted.
SCRIPTS: dict[str, list[str]] = {
    "quant_accuracy.py": [],
    "bench_mapper.py": [],
    "bench_utilization.py": [],
    "bench_sim.py": [],
    "bench_synth.py": [],
    # refit from the shipped calibration data; without --fit-only it resumes the
    # synthesis grid (about an hour on 2 cores)
    "calibrate_resource_model.py": ["--fit-only"],
    "bench_dse.py": [],
    # the RTL fuzz campaign: about 3 hours on 2 cores for 1,000 cases
    "fuzz_rtl.py": ["--cases", "1000", "--jobs", "2"],
    "bench_pruning.py": [],
    "optimisation_stack.py": [],
    # models written outside this repository: trace -> quantise -> compile -> RTL
    "corpus.py": ["--jobs", "2"],
    # a Brevitas 4-bit QAT MLP on digits: its own accuracy vs hwgen's (about 1 minute)
    "brevitas_digits.py": [],
    # bank conflicts of the array's activation reads without per-lane copies, and the
    # cycles of the design built (gather by runs) against per-lane copies (seconds)
    "act_banking.py": [],
}
# Order of the result sections (benchmarks/results/<stem>.md) in BENCHMARKS.md.
SECTIONS = ["quant_accuracy", "brevitas_digits", "corpus", "mapper", "utilization", "sim",
            "fuzz_rtl", "fuzz_rtl_rerun", "synth", "resource_model", "act_banking", "dse",
            "pruning", "optimisation_stack", "fuzz_spill", "fuzz_runs", "spill"]


def scripts(selected: list[str]) -> list[Path]:
    present = {p.name: p for p in HERE.glob("*.py") if p.name != Path(__file__).name}
    if selected:
        missing = [s for s in selected if s not in present]
        if missing:
            sys.exit(f"unknown benchmark(s): {', '.join(missing)}; have: {', '.join(sorted(present))}")
        return [present[s] for s in selected]
    ordered = [present[s] for s in SCRIPTS if s in present]
    ordered += [p for n, p in sorted(present.items()) if n not in SCRIPTS and n.startswith("bench_")]
    return ordered


def collect() -> None:
    sections = []
    order = {name: i for i, name in enumerate(SECTIONS)}
    for md in sorted(RESULTS.glob("*.md"), key=lambda p: (order.get(p.stem, 99), p.stem)):
        text = md.read_text().strip()
        if text.startswith("# "):  # a section is level 2 in BENCHMARKS.md: demote its headings
            text = "\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines())
        sections.append(text)
    text = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run_all.py` (or `make bench`); every section says the",
        "command that regenerates it. Each section records the machine and date of its own run;",
        f"this file was assembled on {dt.date.today().isoformat()} on: {machine()}.",
        "Figures are marked *measured* (RTL simulation, synthesis, place-and-route, wall clock)",
        "or *estimated* (analytic model).",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(text) + "\n\n".join(sections) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scripts", nargs="*", help="benchmark file names (default: all)")
    ap.add_argument("--collect", action="store_true", help="only collect existing results")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    failed = []
    if not args.collect:
        for script in scripts(args.scripts):
            print(f"== {script.name}", flush=True)
            rc = subprocess.call([sys.executable, str(script), *SCRIPTS.get(script.name, [])], cwd=ROOT)
            if rc:
                failed.append(script.name)
    collect()
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
