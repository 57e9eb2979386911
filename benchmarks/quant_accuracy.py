"""Float vs integer test accuracy of the digits models (measured), and golden-model speed.

For mlp-digits and cnn-digits: float accuracy of the shipped checkpoint on the
360-sample test split, then int8 and int4 accuracy of the quantised graph
(calibrated on the training split) run by ``sim.golden`` and by
``mapping.fakequant`` (they must agree). Also the wall-clock time of one
golden run over the whole test split. Writes
``benchmarks/results/quant_accuracy.md``.

    python benchmarks/quant_accuracy.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_section  # noqa: E402

import models  # noqa: E402
from mapping import fakequant  # noqa: E402
from mapping.passes import prepare_entry  # noqa: E402
from sim import golden  # noqa: E402

MODELS = ("mlp-digits", "cnn-digits")
CONFIGS = ((8, 8), (4, 4), (8, 4), (4, 8))  # (activation bits, weight bits)


def measure(name: str) -> list[str]:
    entry = models.get(name)
    ds = entry.dataset()
    x = np.array(ds.x_test, dtype=np.float32).reshape((-1,) + entry.input_shape[1:])
    y = np.asarray(ds.y_test)
    with torch.no_grad():
        float_acc = float((entry.load()(torch.from_numpy(x)).argmax(-1).numpy() == y).mean())
    rows = [f"| {name} | float32 | {100 * float_acc:.2f} | - | - | - |"]
    for a_bits, w_bits in CONFIGS:
        g = prepare_entry(entry, bits=a_bits, w_bits=w_bits)
        model = golden.GoldenModel(g)
        xq = golden.quantize_input(g, x)
        model.run(xq)  # warm-up
        t0 = time.perf_counter()
        out = model.run(xq)
        dt_ms = 1e3 * (time.perf_counter() - t0)
        agree = bool(np.array_equal(out, fakequant.run(g, xq)))
        acc = float((out.argmax(-1) == y).mean())
        rows.append(f"| {name} | a{a_bits}/w{w_bits} | {100 * acc:.2f} | "
                    f"{100 * (acc - float_acc):+.2f} | {'yes' if agree else 'NO'} | "
                    f"{dt_ms:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    rows = ["| model | precision | test accuracy % | vs float (pp) | golden == fakequant | "
            "golden time, 360 samples (ms) |", "|---|---|---|---|---|---|"]
    for name in MODELS:
        rows += measure(name)
    body = (
        "All figures *measured*: accuracy on the 360-sample scikit-learn digits test split; "
        "integer models calibrated (max-abs) on the training split, per-channel weights, "
        "per-tensor activations, 32-bit accumulators; `golden == fakequant`: identical "
        "integer outputs from `sim.golden` (numpy) and `mapping.fakequant` (torch) on every "
        "sample; time = one vectorised `GoldenModel.run` over the whole split (wall clock).\n\n"
        + "\n".join(rows)
    )
    path = write_section("quant_accuracy", "Quantisation accuracy (digits)",
                         "python benchmarks/quant_accuracy.py", body)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
