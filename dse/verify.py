"""Level-1 (Yosys synthesis) and level-2 (RTL simulation) evaluation of chosen points.

Both start from a build directory written by :func:`hwgen.flow.compile_model`
for the point's ``ArchSpec`` and quantisation. Level 1 synthesises its Verilog
with :func:`boards.synth.synthesize` for the board's family (measured LUT, FF,
DSP, BRAM). Level 2 runs :func:`sim.accelerator.simulate` on test-split
samples: measured cycles per layer and per run, and bit-exactness against
:mod:`sim.golden`. Each function is self-contained so it can run in a Dask worker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dse.space import Space


def build_point(model: str, space_dict: dict, point: dict, out_dir: str) -> str:
    """Quantise ``model`` for the point's bits and compile it for its ArchSpec into ``out_dir``."""
    import models
    from hwgen.flow import compile_model
    from mapping.passes import prepare_entry

    space = Space.from_dict(space_dict)
    arch = space.arch(point, name="dse-verify")
    bits = space.model_bits(point)
    g = prepare_entry(models.get(model), bits=bits, w_bits=bits,
                      acc_bits=arch.acc_bits, per_layer_bits=space.layer_bits(point) or None)
    compile_model(g, arch, out_dir, model=model, objective=space.objective(point),
                  settings={"bits": bits, **{f"bits.{k}": v
                                             for k, v in space.layer_bits(point).items()}})
    return out_dir


def level1(build_dir: str, board: str) -> dict[str, Any]:
    """Synthesis of a build directory (measured resources)."""
    from boards.synth import synthesize
    from sim.accelerator import load_build

    b = load_build(build_dir)
    t0 = time.perf_counter()
    rep = synthesize(b.verilog, b.manifest["top_module"], board)
    return {"lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp, "bram": rep.bram,
            "synth_seconds": round(time.perf_counter() - t0, 1), "cached": rep.cached,
            "source": rep.source}


def level2(build_dir: str, model: str, samples: int = 8, simulator: str = "verilator",
           seed: int = 0) -> dict[str, Any]:
    """RTL simulation of ``samples`` test-split inputs (measured cycles, bit-exactness)."""
    import models
    from sim.accelerator import load_build, quantize_inputs, simulate

    b = load_build(build_dir)
    ds = models.get(model).dataset()
    x = np.asarray(ds.x_test, dtype=np.float32)
    idx = np.random.default_rng(seed).choice(len(x), size=min(samples, len(x)), replace=False)
    t0 = time.perf_counter()
    res = simulate(b, quantize_inputs(b, x[np.sort(idx)]), simulator=simulator)
    return {"cycles": float(np.mean(res.run_cycles)), "cycles_min": int(min(res.run_cycles)),
            "cycles_max": int(max(res.run_cycles)), "predicted_run": int(res.predicted_run),
            "layer_cycles": {n: int(c) for n, c in zip(res.layer_names,
                                                         res.layer_cycles[0], strict=True)},
            "bit_exact": bool(res.bit_exact), "mismatches": len(res.mismatches),
            "samples": int(res.samples), "simulator": simulator,
            "sim_seconds": round(time.perf_counter() - t0, 1),
            "source": "measured (RTL simulation)"}


def verify_point(model: str, board: str, space_dict: dict, point: dict, out_dir: str,
                 levels: tuple[int, ...] = (1, 2), samples: int = 8,
                 simulator: str = "verilator") -> dict[str, Any]:
    """Build a point and run the requested levels; errors are returned, not raised."""
    out: dict[str, Any] = {"build_dir": out_dir}
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_point(model, space_dict, point, out_dir)
        out["build_seconds"] = round(time.perf_counter() - t0, 1)
        if 1 in levels:
            out["l1"] = level1(out_dir, board)
        if 2 in levels:
            out["l2"] = level2(out_dir, model, samples=samples, simulator=simulator)
    except Exception as exc:  # reported per point in report.md; the run goes on
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out
