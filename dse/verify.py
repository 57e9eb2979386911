"""Level-1 (Yosys synthesis) and level-2 (RTL simulation) evaluation of chosen points.

Both start from a build directory written by :func:`hwgen.build.flow.compile_model`
for the point's ``ArchSpec`` and quantisation. Level 1 synthesises its Verilog
with :func:`boards.synth.synthesize` for the board's family (measured LUT, FF,
DSP, BRAM). Optionally (``--pnr``) nextpnr places and routes the synthesised netlist for
a measured Fmax (ECP5, iCE40; Xilinx is synthesis only). Level 2 runs
:func:`sim.accelerator.simulate` on test-split
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
    """Quantise ``model`` (:func:`dse.model.model_entry`) for the point's bits and compile it
    for its ArchSpec into ``out_dir``."""
    from dse.model import model_entry
    from hwgen.build.flow import compile_model
    from mapping.passes import prepare_entry

    space = Space.from_dict(space_dict)
    arch = space.arch(point, name="dse-verify")
    bits = space.model_bits(point)
    entry = model_entry(model)
    g = prepare_entry(entry, bits=bits, w_bits=bits,
                      acc_bits=arch.acc_bits, per_layer_bits=space.layer_bits(point) or None)
    source = {"source": entry.record()} if hasattr(entry, "record") else {}
    compile_model(g, arch, out_dir, model=entry.name, objective=space.objective(point),
                  settings={"bits": bits, **source,
                            **{f"bits.{k}": v for k, v in space.layer_bits(point).items()}})
    return out_dir


def level1(build_dir: str, board: str) -> dict[str, Any]:
    """Synthesis of a build directory (measured resources)."""
    from boards.synth import synthesize
    from sim.accelerator import load_build

    b = load_build(build_dir)
    t0 = time.perf_counter()
    rep = synthesize(b.synth_source, b.manifest.top_module, board)
    return {"lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp, "bram": rep.bram,
            "synth_seconds": round(time.perf_counter() - t0, 1), "cached": rep.cached,
            "source": rep.source}


def level2(build_dir: str, model: str, samples: int = 8, simulator: str = "verilator",
           seed: int = 0) -> dict[str, Any]:
    """RTL simulation of ``samples`` test-split inputs (the model's data; seeded
    ``example_input``s for a model without data): measured cycles, bit-exactness."""
    from dse.model import model_entry
    from sim.accelerator import load_build, quantize_inputs, simulate

    b = load_build(build_dir)
    entry = model_entry(model)
    ds = entry.dataset()
    if ds is not None:
        x = np.asarray(ds.x_test, dtype=np.float32)
        idx = np.random.default_rng(seed).choice(len(x), size=min(samples, len(x)),
                                                 replace=False)
        x = x[np.sort(idx)]
    else:
        x = np.concatenate([np.asarray(entry.example_input(seed + i), dtype=np.float32)
                            for i in range(samples)])
    t0 = time.perf_counter()
    res = simulate(b, quantize_inputs(b, x), simulator=simulator)
    return {"cycles": float(np.mean(res.run_cycles)), "cycles_min": int(min(res.run_cycles)),
            "cycles_max": int(max(res.run_cycles)), "predicted_run": int(res.predicted_run),
            "layer_cycles": {n: int(c) for n, c in zip(res.layer_names,
                                                         res.layer_cycles[0], strict=True)},
            "bit_exact": bool(res.bit_exact), "mismatches": len(res.mismatches),
            "samples": int(res.samples), "simulator": simulator,
            "sim_seconds": round(time.perf_counter() - t0, 1),
            "source": "measured (RTL simulation)"}


def level1_pnr(build_dir: str, board: str) -> dict[str, Any]:
    """nextpnr place-and-route of a build (measured Fmax); ECP5 out of context, iCE40 with
    its ports wrapped (:func:`boards.pnr.estimate_fmax`). Reuses the cached synthesis."""
    import boards
    from boards.pnr import estimate_fmax
    from sim.accelerator import load_build

    b = load_build(build_dir)
    t0 = time.perf_counter()  # the board (not its name) makes its clock the timing target
    rep = estimate_fmax(b.synth_source, b.manifest.top_module, boards.get(board))
    return {"fmax_mhz": round(float(rep.fmax), 2), "target_mhz": rep.target_mhz,
            "io_mode": rep.io_mode, "pnr_seconds": round(time.perf_counter() - t0, 1),
            "source": rep.source}


def pnr_supported(board: str) -> tuple[bool, str]:
    """(True, "") if the open tools place and route ``board``'s family, else (False, why)."""
    import boards

    dev = boards.catalogue.device_of(board)
    if getattr(dev, "supports_pnr", False):
        return True, ""
    return False, f"synthesis only: no open-source place-and-route for {dev.family}"


def _stage(name: str, fn, *args) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # reported per point in report.md; the run goes on
        return {"error": f"{name}: {type(exc).__name__}: {exc}"}


def build_task(model: str, space_dict: dict, point: dict, out_dir: str) -> dict[str, Any]:
    """Compile the point into ``out_dir`` (a Dask task): build dir and seconds, or error."""
    def go() -> dict[str, Any]:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_point(model, space_dict, point, out_dir)
        return {"build_dir": out_dir, "build_seconds": round(time.perf_counter() - t0, 1)}
    return _stage("build", go)


def synth_task(build: dict, board: str) -> dict[str, Any]:
    """Level 1 of a built point (a Dask task depending on :func:`build_task`)."""
    if "error" in build:
        return {"error": "synthesis skipped: the build failed"}
    return _stage("synthesis", level1, build["build_dir"], board)


def sim_task(build: dict, model: str, samples: int, simulator: str) -> dict[str, Any]:
    """Level 2 of a built point (a Dask task depending on :func:`build_task`)."""
    if "error" in build:
        return {"error": "simulation skipped: the build failed"}
    return _stage("simulation", level2, build["build_dir"], model, samples, simulator)


def pnr_task(build: dict, synth: dict, board: str) -> dict[str, Any]:
    """Place-and-route after synthesis (a Dask task depending on :func:`synth_task`)."""
    if "error" in build or "error" in synth:
        return {"error": "place-and-route skipped: the build or synthesis failed"}
    return _stage("place-and-route", level1_pnr, build["build_dir"], board)


def merge(build: dict, synth: dict | None, sim: dict | None,
          pnr: dict | None = None) -> dict[str, Any]:
    """One verified.json entry: ``l1`` (synthesis), ``l2`` (simulation), ``pnr`` and
    ``error`` (every failed stage, ``; ``-joined)."""
    out: dict[str, Any] = {k: v for k, v in build.items() if k != "error"}
    errors = [build["error"]] if "error" in build else []
    for key, part in (("l1", synth), ("l2", sim), ("pnr", pnr)):
        if part is None:
            continue
        if "error" in part:
            if "skipped" not in part["error"]:
                errors.append(part["error"])
        else:
            out[key] = part
    if errors:
        out["error"] = "; ".join(errors)
    return out


def verify_point(model: str, board: str, space_dict: dict, point: dict, out_dir: str,
                 levels: tuple[int, ...] = (1, 2), samples: int = 8,
                 simulator: str = "verilator", pnr: bool = False) -> dict[str, Any]:
    """Build a point and run the requested levels in this process; errors are returned per
    stage, not raised."""
    build = build_task(model, space_dict, point, out_dir)
    synth = synth_task(build, board) if 1 in levels else None
    sim = sim_task(build, model, samples, simulator) if 2 in levels else None
    place = pnr_task(build, synth or {}, board) if pnr and 1 in levels else None
    return merge(build, synth, sim, place)
