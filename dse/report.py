"""Run-directory outputs: points.csv, pareto.csv, verified.csv, report.md and the plots.

Column names carry the fidelity of each figure: ``_l0`` estimated by the
analytic models (level 0), ``_l1`` measured by Yosys synthesis, ``_l2``
measured by RTL simulation; ``accuracy`` is measured by the golden integer
model on the test split. Missing figures are empty cells, never invented.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dse import plots
from dse.accuracy import key_name

L0_METRICS = ("cycles", "latency_us", "throughput", "energy_nj", "utilization", "lut", "ff",
              "dsp", "bram", "violation", "fits", "pes", "onchip_bits")


def columns(points: list[dict], names: tuple[str, ...], layers: list[str]) -> list[tuple]:
    """(CSV header, key) pairs: index, state, parameters, level-0 metrics, accuracy."""
    cols = [("index", "index"), ("state", "state")] + [(n, n) for n in names]
    cols += [(f"{m}_l0", m) for m in L0_METRICS]
    cols += [(f"cycles_l0.{n}", f"cycles.{n}") for n in layers]
    cols += [(f"util_l0.{n}", f"util.{n}") for n in layers]
    cols += [(f"tiles_l0.{n}", f"tiles.{n}") for n in layers]
    cols += [("accuracy_golden", "accuracy"), ("reason", "reason")]
    return cols


def write_csv(path: Path, rows: list[dict], cols: list[tuple]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([h for h, _ in cols])
        for r in rows:
            w.writerow(["" if r.get(k) is None else r.get(k) for _, k in cols])


def _fmt(v, digits: int = 0) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _err(pred, meas) -> str:
    if pred in (None, "") or meas in (None, "") or not pred:
        return "—"
    return f"{100.0 * (meas - pred) / pred:+.2f}%"


def write_all(result, space, model: str, board: str, ev) -> None:
    run = result.run_dir
    layers = [c.name for c in ev.layers.compute] + [e.name for e in ev.layers.eltwise]
    cols = columns(result.points, space.names, layers)
    write_csv(run / "points.csv", result.points, cols)
    write_csv(run / "pareto.csv", result.frontier, cols)
    vcols = cols + [(k, k) for k in ("lut_l1", "ff_l1", "dsp_l1", "bram_l1", "cycles_l2",
                                     "predicted_run_l2", "bit_exact_l2", "mismatches_l2",
                                     "samples_l2", "verify_error")]
    write_csv(run / "verified.csv", result.verified, vcols)
    have_res = ev.resources.available
    xkeys = [("lut", "LUTs (estimated, level 0)", "lut_l1"),
             ("dsp", "DSP blocks (estimated, level 0)", "dsp_l1")] if have_res else \
        [("pes", "PEs (exact)", None), ("onchip_bits", "on-chip memory bits (exact)", None)]
    figs = []
    for key, label, mk in xkeys:
        name = f"throughput_vs_{key}.png"
        plots.tradeoff(result.points, key, label, result.frontier, run / name,
                       result.verified, mk)
        figs.append(name)
    acc_table = sorted((q, a) for q, a in ev._acc.items() if a is not None and not q[1])
    if acc_table:
        plots.accuracy_vs_bits([(str(q[0]), a) for q, a in acc_table],
                               run / "accuracy_vs_bits.png")
        figs.append("accuracy_vs_bits.png")
    chosen = result.verified[0] if result.verified else (
        max(result.frontier, key=lambda p: p["throughput"]) if result.frontier else None)
    if chosen:
        plots.layer_utilisation(chosen, [c.name for c in ev.layers.compute],
                                run / "layer_utilisation.png",
                                f"design #{chosen['index']}: {chosen['rows']}x{chosen['cols']} "
                                f"{chosen['dataflow']}")
        figs.append("layer_utilisation.png")
    if result.verified:
        plots.model_error(result.verified, run / "model_error.png")
        figs.append("model_error.png")
    (run / "report.md").write_text(render(result, space, model, board, ev, figs, acc_table,
                                          chosen))


def render(result, space, model, board, ev, figs, acc_table, chosen) -> str:
    pts = result.points
    n_ok = sum(1 for p in pts if p["state"] == "COMPLETE")
    n_fit = sum(1 for p in pts if p["state"] == "COMPLETE" and p.get("fits"))
    s = result.seconds
    lines = [
        f"# DSE: {model} on {board}", "",
        f"Study `{result.study}` (Optuna RDB storage; `points.csv` is regenerated from it).", "",
        f"- points stored: {len(pts)} ({n_ok} mappable, {n_fit} fit the board, "
        f"{len(pts) - n_ok} cannot run); evaluated by this invocation: {result.evaluated}",
        f"- space: {space.size:,} points over {', '.join(space.names)}",
        "- objectives: " + ", ".join(f"{o.metric} ({o.direction})" for o in result.objectives),
        f"- resources (level 0): {ev.resources.source}",
        f"- time: accuracy {s.get('accuracy', 0):.1f} s, level 0 {s.get('level0', 0):.1f} s, "
        f"verification {s.get('verify', 0):.1f} s, total {s.get('total', 0):.1f} s",
        "",
        "Fidelity: `_l0` = estimated by the analytic models (mapper cycles incl. pooling and "
        "the I/O streams, `mapping.energy`, the resource model); `_l1` = measured by Yosys "
        "synthesis; `_l2` = measured by RTL simulation; accuracy = measured by `sim.golden` on "
        "the test split.",
    ]
    if not ev.resources.available:
        lines += ["", "**No calibrated resource model for this family: LUT/FF/DSP/BRAM "
                  "columns are empty.** The trade-off uses PEs and on-chip memory bits (exact "
                  "counts from the ArchSpec); board fit is checked on memory bits only."]
    lines += ["", f"## Pareto frontier ({len(result.frontier)} points)", "",
              "| # | rows x cols | df | bits | objective | throughput/s | cycles | LUT | DSP | "
              "BRAM | accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(result.frontier, key=lambda p: -p["throughput"])[:40]:
        lines.append(f"| {p['index']} | {p['rows']}x{p['cols']} | {p['dataflow']} | "
                     f"{p.get('bits', '')} | {p.get('objective', '')} | "
                     f"{_fmt(p['throughput'])} | {_fmt(p['cycles'])} | {_fmt(p.get('lut'))} | "
                     f"{_fmt(p.get('dsp'))} | {_fmt(p.get('bram'))} | "
                     f"{_fmt(100 * p['accuracy'], 1) if p.get('accuracy') is not None else '—'}"
                     " |")
    if len(result.frontier) > 40:
        lines.append(f"\n({len(result.frontier) - 40} more in pareto.csv)")
    lines += ["", "## Verified frontier points (level 0 prediction vs measurement)", ""]
    if not result.verified:
        lines.append("None requested (`--verify-frontier K`).")
    else:
        lines += ["| # | cycles L0 | cycles L2 | error | LUT L0 | LUT L1 | error | DSP L0 | "
                  "DSP L1 | BRAM L0 | BRAM L1 | bit-exact (samples) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in result.verified:
            if v.get("verify_error"):
                lines.append(f"| {v['index']} | {_fmt(v['cycles'])} | failed: "
                             f"{v['verify_error'][:200]} |||||||||| ")
                continue
            lines.append(
                f"| {v['index']} | {_fmt(v['cycles'])} | {_fmt(v.get('cycles_l2'), 1)} | "
                f"{_err(v['cycles'], v.get('cycles_l2'))} | {_fmt(v.get('lut'))} | "
                f"{_fmt(v.get('lut_l1'))} | {_err(v.get('lut'), v.get('lut_l1'))} | "
                f"{_fmt(v.get('dsp'))} | {_fmt(v.get('dsp_l1'))} | {_fmt(v.get('bram'))} | "
                f"{_fmt(v.get('bram_l1'))} | {v.get('bit_exact_l2')} "
                f"({v.get('samples_l2', '—')}) |")
    if acc_table:
        lines += ["", "## Accuracy per bit width (measured, sim.golden, test split)", "",
                  "| bits | accuracy |", "|---|---|"]
        lines += [f"| {key_name(q)} | {100 * a:.2f}% |" for q, a in acc_table]
    if chosen:
        lines += ["", f"## Chosen design: #{chosen['index']}", "",
                  "Highest throughput per resource among frontier points within one "
                  "percentage point of the best accuracy.", "",
                  "| parameter | value |", "|---|---|"]
        lines += [f"| {n} | {chosen[n]} |" for n in space.names]
    lines += ["", "## Plots", ""] + [f"![{f}]({f})" for f in figs]
    return "\n".join(lines) + "\n"
