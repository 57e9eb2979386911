"""Run-directory outputs: points.csv, pareto.csv, verified.csv, report.md and the plots.

Column names carry the fidelity of each figure: ``_l0`` estimated by the
analytic models (level 0), ``_l1`` measured by Yosys synthesis, ``_l2``
measured by RTL simulation; ``accuracy`` is measured by the golden integer
model on the test split. Missing figures are empty cells, never invented.
"""

from __future__ import annotations

import csv
import json
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


MAX_ROWS = 40


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def frontier_section(result, space) -> list[str]:
    """The frontier, one row per objective vector: parameters that vary across the
    frontier, the level-0 figures, and how many points share the row's objectives
    (and which of their parameters differ)."""
    from dse.pareto import varying

    groups = result.groups
    reps = [g[0] for g in groups]
    shown = [n for n in space.names if len({r.get(n) for r in reps}) > 1] or list(space.names)
    dup = len(result.frontier) - len(groups)
    lines = ["", f"## Pareto frontier ({len(result.frontier)} points, {len(groups)} distinct "
             "objective vectors)", ""]
    if not groups:
        return lines + [no_fit_text(result.points)]
    if dup:
        lines += [f"{dup} frontier points have the same objectives as another one (they "
                  "differ only in parameters that no objective sees, e.g. banks, buffer "
                  "sizes beyond what the mapping uses, or were sampled twice): each row "
                  "below is one objective vector, shown by its member with the fewest "
                  "on-chip memory bits; `equal` counts the members and names the "
                  "parameters that differ among them. `pareto.csv` lists every member "
                  "(columns `group`, `group_size`).", ""]
    head = ["#", *shown, "throughput/s (est.)", "cycles (est.)", "LUT (est.)", "DSP (est.)",
            "BRAM (est.)", "accuracy % (meas.)", "equal"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(groups, key=lambda g: (-g[0]["throughput"], g[0]["index"]))
    for rep, members in order[:MAX_ROWS]:
        var = varying(members, space.names)
        same = str(len(members))
        if var:
            same += " (" + "; ".join(f"{k}: {'/'.join(map(str, v))}" for k, v in var.items()) + ")"
        elif len(members) > 1:
            same += " (same parameters)"
        cells = [str(rep["index"]), *(str(rep.get(n)) for n in shown),
                 _fmt(rep["throughput"]), _fmt(rep["cycles"]), _fmt(rep.get("lut")),
                 _fmt(rep.get("dsp")), _fmt(rep.get("bram")), _pct(rep.get("accuracy")), same]
        lines.append("| " + " | ".join(cells) + " |")
    if len(groups) > MAX_ROWS:
        lines.append(f"\n({len(groups) - MAX_ROWS} more objective vectors in pareto.csv)")
    return lines


def no_fit_text(points: list[dict]) -> str:
    """Why the frontier is empty: no point fits the board (or none could be mapped)."""
    ok = sum(1 for p in points if p["state"] == "COMPLETE")
    if ok:
        why = ("each needs more than the board has (`violation_l0` > 0 in points.csv); try a "
               "larger board or a space with smaller arrays and scratchpads")
    else:
        eg = next((p for p in points if p.get("reason")), None)
        why = "none could be mapped (`reason` in points.csv says why" + (
            f", e.g. #{eg['index']}: {eg['reason']})" if eg else ")")
    return f"**No point fits the board**: {len(points)} points stored, {ok} mappable; {why}."


def verified_line(v: dict) -> str:
    """One line per verified point for the terminal: predicted vs measured cycles and LUTs."""
    return (f"#{v['index']}: cycles L0 {v['cycles']} L2 {v.get('cycles_l2', '-')}, "
            f"LUT L0 {v.get('lut', '-')} L1 {v.get('lut_l1', '-')}, bit-exact "
            f"{v.get('bit_exact_l2', '-')}"
            + (f", Fmax {v['fmax_mhz_pnr']} MHz" if v.get("fmax_mhz_pnr") else "")
            + (f" FAILED: {v['verify_error']}" if v.get("verify_error") else ""))


def verified_section(result, board: str) -> list[str]:
    """Verified points: level-0 predictions beside synthesis / simulation / P&R."""
    lines = ["", "## Verified frontier points: level-0 prediction vs measurement", ""]
    if not result.verified:
        return lines + ["None requested (`--verify-frontier K`)."]
    lines += ["Predictions (L0) are estimated by the analytic models; L1 is measured by Yosys "
              "synthesis, L2 by RTL simulation (cycles from the hardware counter, outputs "
              "compared with `sim.golden`). Error = (measured - predicted) / predicted.", "",
              "| # | cycles L0 | cycles L2 | error | LUT L0 | LUT L1 | error | DSP L0 | DSP L1 | "
              "error | BRAM L0 | BRAM L1 | error | bit-exact (samples) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in result.verified:
        cells = [str(v["index"]), _fmt(v["cycles"]), _fmt(v.get("cycles_l2"), 1),
                 _err(v["cycles"], v.get("cycles_l2"))]
        for k in ("lut", "dsp", "bram"):
            cells += [_fmt(v.get(k)), _fmt(v.get(f"{k}_l1")), _err(v.get(k), v.get(f"{k}_l1"))]
        be = v.get("bit_exact_l2")
        cells.append("—" if be is None else f"{'yes' if be else 'NO'} ({v.get('samples_l2')})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Throughput (inferences/s):", "",
              "| # | L0 at board clock (est.) | board clock / measured cycles | "
              "Fmax (P&R, meas.) | Fmax / measured cycles (meas.) |", "|---|---|---|---|---|"]
    for v in result.verified:
        fmax = v.get("fmax_mhz_pnr")
        lines.append(f"| {v['index']} | {_fmt(v['throughput'])} | "
                     f"{_fmt(v.get('throughput_l2'))} | "
                     f"{'—' if fmax is None else f'{fmax:.1f} MHz'} | "
                     f"{_fmt(v.get('throughput_pnr'))} |")
    if result.pnr == "off":
        lines += ["", "Fmax not measured (place-and-route is off; `--pnr` runs nextpnr). "
                  "Throughput assumes the board clock."]
    elif result.pnr != "on":
        lines += ["", f"Fmax not measured on {board}: {result.pnr}."]
    errs = [v for v in result.verified if v.get("verify_error")]
    if errs:
        lines += ["", "Failures (the run went on):", ""]
        lines += [f"- #{v['index']}: {v['verify_error'][:400]}" for v in errs]
    lines += ["", "Stage times (s, measured): " + "; ".join(
        f"#{v['index']}: build {v.get('build_seconds', '—')}, synth "
        f"{v.get('synth_seconds_l1', '—')}"
        + ("" if v.get("cached_l1") is not True else " (cached)")
        + f", sim {v.get('sim_seconds_l2', '—')}"
        + (f", P&R {v['pnr_seconds_pnr']}" if v.get("pnr_seconds_pnr") is not None else "")
        for v in result.verified)]
    return lines


def write_all(result, space, model: str, board: str, ev) -> None:
    run = result.run_dir
    layers = [c.name for c in ev.layers.compute] + [e.name for e in ev.layers.eltwise]
    cols = columns(result.points, space.names, layers)
    write_csv(run / "points.csv", result.points, cols)
    write_csv(run / "pareto.csv", result.frontier,
              cols + [("group", "group"), ("group_size", "group_size")])
    vcols = cols + [(k, k) for k in ("lut_l1", "ff_l1", "dsp_l1", "bram_l1", "cycles_l2",
                                     "predicted_run_l2", "bit_exact_l2", "mismatches_l2",
                                     "samples_l2", "throughput_l2", "fmax_mhz_pnr",
                                     "throughput_pnr", "build_seconds", "synth_seconds_l1",
                                     "sim_seconds_l2", "pnr_seconds_pnr", "verify_error")]
    write_csv(run / "verified.csv", result.verified, vcols)
    have_res = ev.resources.available
    xkeys = [("lut", "LUTs (dots: estimated, level 0; x: synthesised)", "lut_l1", "lut"),
             ("dsp", "DSP blocks (dots: estimated, level 0; x: synthesised)", "dsp_l1",
              "dsp")] if have_res else \
        [("pes", "PEs (exact)", None, None),
         ("onchip_bits", "on-chip memory bits (exact)", None, "bram_bits")]
    figs = []
    for key, label, mk, bkey in xkeys:
        name = f"throughput_vs_{key}.png"
        plots.tradeoff(result.points, key, label, result.frontier, run / name,
                       result.verified, mk, budget=ev.budget.get(bkey) if bkey else None,
                       title=f"{model} on {board}: level-0 estimates of {len(result.points):,}"
                       " points", n_objectives=len(result.objectives))
        figs.append(name)
    acc_table = sorted((q, a) for q, a in ev._acc.items() if a is not None and not q[1])
    if acc_table:
        plots.accuracy_vs_bits([(str(q[0]), a) for q, a in acc_table],
                               run / "accuracy_vs_bits.png")
        figs.append("accuracy_vs_bits.png")
    chosen = result.verified[0] if result.verified else (
        max(result.frontier, key=lambda p: p["throughput"]) if result.frontier else None)
    if chosen:
        arch = space.arch_fields(chosen)  # a dimension the space fixes or omits: base/default
        plots.layer_utilisation(chosen, [c.name for c in ev.layers.compute],
                                run / "layer_utilisation.png",
                                f"{'chosen (verified)' if result.verified else 'fastest frontier'}"
                                f" design #{chosen['index']}: {arch['rows']}x{arch['cols']} "
                                f"{arch['dataflow']}, {space.model_bits(chosen)}-bit")
        figs.append("layer_utilisation.png")
    if result.verified:
        plots.model_error(result.verified, run / "model_error.png")
        figs.append("model_error.png")
    (run / "timings.json").write_text(json.dumps(
        {"seconds": {k: round(v, 2) for k, v in result.seconds.items()},
         "evaluated": result.evaluated, "points": len(result.points),
         "frontier": len(result.frontier), "frontier_groups": len(result.groups),
         "verified": len(result.verified)}, indent=1, sort_keys=True))
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
    lines += frontier_section(result, space)
    lines += verified_section(result, board)
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
