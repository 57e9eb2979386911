"""Plots of a DSE run (matplotlib, Agg backend, PNG). Each function returns its Figure
(tests read the plotted coordinates back) and writes ``path``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dse.pareto import pareto_mask  # noqa: E402


def _save(fig, path: Path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


NO_FIT = "no point fits the board: empty Pareto frontier"
NO_POINT = "no point could be mapped: nothing to plot"


def _log_scale(set_scale, values) -> None:
    """Log scale when some value is positive (matplotlib cannot log-scale an axis without
    positive data: no point, or all zero); else the linear default."""
    if any(v > 0 for v in values):
        set_scale("log")


def tradeoff(rows: list[dict], xkey: str, xlabel: str, frontier: list[dict], path: Path,
             verified: list[dict] | None = None, xkey_measured: str | None = None,
             budget: float | None = None, title: str = "", n_objectives: int = 0):
    """Throughput vs a resource: every feasible point, the 2-D front, the run's frontier
    (coloured by bit width: frontier points below the 2-D front trade another objective),
    the board's budget, and verified points' measurements beside their predictions. An
    empty frontier (no point fits the board) is written on the plot."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    pts = [r for r in rows if r.get(xkey) is not None and r.get("throughput") is not None]
    x = np.array([r[xkey] for r in pts], float)
    y = np.array([r["throughput"] for r in pts], float)
    ax.scatter(x, y, s=6, c="0.75", label=f"evaluated ({len(pts)}, level 0)", zorder=1)
    if len(pts):
        m = pareto_mask(np.c_[x, y], ["minimize", "maximize"])
        o = np.argsort(x[m])
        ax.step(x[m][o], y[m][o], where="post", c="tab:blue", lw=1.2,
                label="2-D front (this resource and throughput only)", zorder=2)
    front = [r for r in frontier if r.get(xkey) is not None]
    fx = [r[xkey] for r in front]
    fy = [r["throughput"] for r in front]
    # one collection with every frontier point (tests read it back), coloured by bit width
    bits = sorted({r.get("bits") for r in front if r.get("bits") is not None})
    cmap = plt.get_cmap("plasma", max(2, len(bits) + 1))
    colour = {b: cmap(i) for i, b in enumerate(bits)}
    cols = [colour.get(r.get("bits"), "tab:red") for r in front]
    what = f"{n_objectives}-objective " if n_objectives else ""
    ax.scatter(fx, fy, s=24, c=cols if cols else "tab:red", edgecolors="k", linewidths=0.3,
               label=f"{what}Pareto frontier ({len(fx)})" + (", by bit width:" if bits else ""),
               zorder=3)
    for b in bits:
        ax.scatter([], [], s=24, color=colour[b], edgecolors="k", linewidths=0.3,
                   label=f"  frontier, {b}-bit")
    if budget:
        ax.axvline(budget, c="tab:red", ls="--", lw=0.9, label=f"board budget ({budget:,.0f})")
    for v in verified or []:
        if xkey_measured and v.get(xkey_measured) is not None:
            ax.scatter([v[xkey_measured]], [v.get("throughput_l2", v["throughput"])], marker="x",
                       s=60, c="k", zorder=4)
            ax.annotate("", xy=(v[xkey_measured], v.get("throughput_l2", v["throughput"])),
                        xytext=(v[xkey], v["throughput"]),
                        arrowprops={"arrowstyle": "->", "color": "k", "lw": 0.8})
    if verified and xkey_measured:
        ax.scatter([], [], marker="x", c="k", label="verified: measured (synthesis, RTL sim)")
    if not front:
        ax.text(0.5, 0.55, NO_FIT if len(pts) else NO_POINT, ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="tab:red")
    if not len(pts):
        ax.set_yticks([])  # no throughput to show
    _log_scale(ax.set_xscale, [*x, *([budget] if budget else [])])
    _log_scale(ax.set_yscale, y)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("throughput, inferences/s (estimated, board clock)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    leg = ax.legend(fontsize=7.5, loc="lower right", framealpha=0.9)
    for h, t in zip(leg.legend_handles, leg.get_texts(), strict=False):
        if "Pareto frontier" in t.get_text() and hasattr(h, "set_facecolor"):
            h.set_facecolor("white")  # the colours are per bit width, listed below it
    return _save(fig, path)


def accuracy_vs_bits(table: list[tuple[str, float]], path: Path):
    """Accuracy of each quantisation choice (golden model, test split)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    labels = [k for k, _ in table]
    acc = [100 * a for _, a in table]
    ax.plot(range(len(acc)), acc, "o-", c="tab:green")
    ax.margins(x=0.1, y=0.2)  # room for the labels
    for i, a in enumerate(acc):
        ax.annotate(f"{a:.1f}%", (i, a), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0,
                  fontsize=8)
    ax.set_xlabel("bit width (activations = weights)")
    ax.set_ylabel("test accuracy, % (measured, sim.golden)")
    ax.set_title("accuracy of the quantised model (y axis does not start at 0)", fontsize=8)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def layer_utilisation(point: dict, layers: list[str], path: Path, title: str):
    """Per-layer PE-array utilisation (MACs / (PEs x cycles)) of one design, each bar
    labelled with the layer's share of the compute cycles (a low utilisation matters
    only where the cycles are)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    u = [100 * point.get(f"util.{n}", 0.0) for n in layers]
    cyc = [float(point.get(f"cycles.{n}") or 0) for n in layers]
    tot = sum(cyc) or 1.0
    ax.bar(layers, u, color="tab:purple")
    for i, v in enumerate(u):
        ax.annotate(f"{v:.0f}%\n({100 * cyc[i] / tot:.0f}% of cycles)", (i, v),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7.5)
    ax.set_ylim(0, 118)
    ax.set_ylabel("PE utilisation, % (estimated)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def model_error(verified: list[dict], path: Path):
    """Level-0 predictions vs level-1/2 measurements (cycles, LUT, DSP, BRAM), y = x dashed,
    each point labelled with its index and % error."""
    fig, axes = plt.subplots(2, 2, figsize=(8, 6.6))
    panels = (("cycles", "cycles_l2", "cycles per inference (RTL sim)"),
              ("lut", "lut_l1", "LUTs (Yosys)"), ("dsp", "dsp_l1", "DSP blocks (Yosys)"),
              ("bram", "bram_l1", "BRAM blocks (Yosys)"))
    for ax, (pk, mk, label) in zip(axes.flat, panels, strict=True):
        pairs = [(v[pk], v[mk], v["index"]) for v in verified
                 if v.get(pk) is not None and v.get(mk) is not None]
        if pairs:
            p = np.array([a for a, _, _ in pairs], float)
            m = np.array([b for _, b, _ in pairs], float)
            ax.scatter(p, m, c="tab:orange", zorder=3)
            labels: dict[tuple, list[str]] = {}  # coinciding points share one label
            for a, b, i in pairs:
                err = f"{100 * (b - a) / a:+.2f}%" if a else ""
                labels.setdefault((a, b), []).append(f"#{i} {err}")
            for (a, b), texts in labels.items():
                ax.annotate("\n".join(texts), (a, b), textcoords="offset points",
                            xytext=(4, -10), va="top", fontsize=7)
            lo, hi = min(p.min(), m.min()), max(p.max(), m.max())
            pad = 0.1 * max(hi - lo, 0.1 * max(abs(hi), 1.0))
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        else:
            why = ("no level-0 prediction (no calibrated model)"
                   if any(v.get(mk) is not None for v in verified) else "no measurement")
            ax.text(0.5, 0.5, why, ha="center", transform=ax.transAxes, fontsize=8)
        ax.set_xlabel("level-0 prediction (estimated)", fontsize=8)
        ax.set_ylabel("measured", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(True, alpha=0.3)
    return _save(fig, path)
