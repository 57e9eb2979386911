"""Time Yosys synthesis (and optionally nextpnr) of MAC arrays on the three families.

    python benchmarks/bench_synth.py [--sizes 4 8] [--pnr]

Uses a fresh cache directory per run (so every figure is a real tool run) and
prints one row per (size, family): resources and seconds. Designs are the
registered 8x8-bit signed multiply-accumulate arrays from tests/boards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "boards"))

from boards_designs import mac_array_verilog  # noqa: E402

FAMILIES = {"ecp5": "ulx3s-85f", "ice40": "icebreaker", "xc7": "arty-a7-100"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--pnr", action="store_true", help="also nextpnr Fmax (ECP5, iCE40)")
    args = ap.parse_args(argv)

    import os

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HWGEN_CACHE"] = str(Path(tmp) / "cache")
        from boards.pnr import estimate_fmax
        from boards.report import DoesNotFitError, fit
        from boards.synth import synthesize

        head = f"{'design':<8} {'family':<6} {'LUT':>6} {'FF':>6} {'carry':>6} {'DSP':>4} " \
               f"{'BRAM':>5} {'synth s':>8}" + (f" {'Fmax MHz':>9} {'pnr s':>6}" if args.pnr else "")
        print(head)
        print("-" * len(head))
        for n in args.sizes:
            path, top = mac_array_verilog(Path(tmp), n, n)
            for family, board in FAMILIES.items():
                t0 = time.perf_counter()
                rep = synthesize(path, top, family)
                secs = time.perf_counter() - t0
                row = (f"{top:<8} {family:<6} {rep.lut:>6} {rep.ff:>6} {rep.carry:>6} "
                       f"{rep.dsp:>4} {rep.bram:>5g} {secs:>8.1f}")
                if args.pnr:
                    if family == "xc7":
                        row += f" {'n/a':>9} {'':>6}"
                    else:
                        t0 = time.perf_counter()
                        try:
                            fit(rep, board)
                            pnr = estimate_fmax(path, top, board, freq_mhz=100)
                            row += f" {pnr.fmax:>9.1f} {time.perf_counter() - t0:>6.1f}"
                        except DoesNotFitError as exc:
                            row += f" {'no fit':>9} {'':>6}  ({exc})"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
