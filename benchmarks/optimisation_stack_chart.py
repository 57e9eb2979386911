"""The chart of ``benchmarks/optimisation_stack.py`` (matplotlib, PNG).

``results`` maps a model name to its rows by config key (``Row`` of that script:
``cycles``, ``cycles_src``, ``res``, ``res_src``, ``weight_bits``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def chart(results: dict, steps: list[str], labels: list[str], path: Path) -> None:
    """Cycles (log), ECP5 LUTs and weight bits per cumulative step, one line per model;
    the last step (os instead of ws) dashed; filled marks measured, hollow estimated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(steps))
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    colours = {"cnn-digits": "tab:blue", "mlp-digits": "tab:orange"}
    for name, by in results.items():
        c = colours.get(name, "tab:gray")
        cyc = [by[k].cycles for k in steps]
        ax = axes[0]
        ax.plot(x[:-1], cyc[:-1], "-", color=c, label=name)
        ax.plot([x[-2], x[-1]], cyc[-2:], "--", color=c, alpha=0.6)
        for i, k in enumerate(steps):
            ax.plot(x[i], cyc[i], "o", color=c, mfc=c if by[k].cycles_src == "m" else "white")
        for i in range(1, len(steps)):
            prev = cyc[i - 1] if i < len(steps) - 1 else cyc[-3]
            ax.annotate(f"{prev / cyc[i]:.2f}x", (x[i], cyc[i]), textcoords="offset points",
                        xytext=(4, 6 if name == "cnn-digits" else -12), fontsize=8, color=c)
        for j, (ax, key, log) in enumerate(((axes[1], "lut", False), (axes[2], "bits", True))):
            vals = [by[k].res["lut"] if key == "lut" else by[k].weight_bits for k in steps]
            ax.plot(x[:-1], vals[:-1], "-", color=c, label=name)
            ax.plot([x[-2], x[-1]], vals[-2:], "--", color=c, alpha=0.6)
            for i, k in enumerate(steps):
                meas = by[k].res_src == "m" if key == "lut" else True
                ax.plot(x[i], vals[i], "o", color=c, mfc=c if meas else "white")
            if log:
                ax.set_yscale("log")
            del j
    axes[0].set_yscale("log")
    axes[0].set_title("cycles per inference, ratio vs previous step\n(filled: RTL-measured, "
                      "hollow: timing contract)", fontsize=10)
    axes[1].set_title("ECP5 LUTs (filled: synthesised, hollow: resource model)", fontsize=10)
    axes[2].set_title("model size: weight bits", fontsize=10)
    for ax in axes:
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Optimisation stack on hwgen: baseline (16-bit, naive schedule, 1x1 array) -> "
                 "int8 -> pruning -> mapper -> 8x8 array (dashed: os instead of ws)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
