"""The designs ``benchmarks/calibrate_resource_model.py`` synthesises, and how each is built.

Two kinds, each with a fixed ``split`` (``fit``: calibrates the model;
``heldout``: only predicted; ``check``: DSP/BRAM only) and a program label
(``program.label`` in the record):

- ``gemm``: the ArchSpec grid (hand-picked corners plus a seeded random
  sample, array shapes 1..16, widths 4..16, both dataflows, weights in ROM or
  external) running ONE fixed GEMM layer (:func:`build_program`), as the hwgen
  tests do;
- zoo programs (``cnn-digits``: two conv layers, max pool, linear;
  ``mlp-digits``: linear layers): points of the DSE default space
  (:func:`dse.space.default_space`: 2..16 x 2..16 arrays, both dataflows,
  4/6/8-bit, weights in ROM), built exactly as ``dse.verify.build_point``
  builds a point it verifies (same Verilog, so the synthesis cache is shared).

:func:`measure` builds one design, emits its Verilog, synthesises it with
``boards.synth.synthesize`` and returns a calibration record: the ArchSpec,
the baked program's sizes (``rom_words``, ``instr_words``/``instr_bits``,
``param_words``, ``pool_mult``/``add_mult``, layer counts, the instruction
words), the measured resources and the synthesis time.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

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
    from hwgen.compiler.layers import AddLayer, PoolLayer
    from hwgen.compiler.program import ComputeLayer, compile_program
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
    """(pool_mult, add_mult): does the element-wise engine built for the program have the
    average-pool / residual-add multipliers? ``hwgen.rtl.eltwise_engine`` builds them only
    for a program with an average pool / an add or a tensor multiply (before 2026-12-08 the
    units were always built and Yosys kept them when some instruction word, read as an ELT
    word, set their ``kind`` bit: the shipped calibration designs were synthesised so, and
    their stored features say what they had)."""
    kinds = {li.kind for li in prog.layers}
    return "avgpool" in kinds, bool(kinds & {"add", "mul"})


# Zoo designs: (split, model, DSE default-space point). Points were drawn (seed 2026)
# from the feasible points of a 10,000-point cnn-digits DSE run, one per array shape /
# dataflow / width class; the held-out set includes the three points that run verified
# (#1384 8x8 os, #5161 8x4 os, #2579 12x4 ws, all 8-bit). mlp-digits reuses some of
# the same ArchSpecs so the program's share of the logic shows directly.
def _pt(rows, cols, dataflow, act, w, acc, ab, wb, cb, db, bits, obj) -> dict:
    return dict(rows=rows, cols=cols, dataflow=dataflow, act_words=act, w_words=w,
                acc_words=acc, act_banks=ab, w_banks=wb, acc_banks=cb, double_buffer=db,
                bits=bits, objective=obj)


P1384 = _pt(8, 8, "os", 2048, 2048, 1024, 2, 1, 1, True, 8, "latency")
P5161 = _pt(8, 4, "os", 2048, 2048, 1024, 2, 1, 1, True, 8, "latency")
P2579 = _pt(12, 4, "ws", 4096, 2048, 1024, 1, 2, 2, True, 8, "latency")
P220 = _pt(8, 8, "ws", 4096, 1024, 256, 2, 1, 2, True, 6, "edp")
P5763 = _pt(8, 8, "os", 4096, 512, 1024, 2, 2, 1, True, 4, "latency")
P4556 = _pt(4, 4, "os", 2048, 4096, 1024, 1, 2, 1, False, 8, "latency")
P9051 = _pt(4, 4, "ws", 4096, 512, 1024, 1, 1, 2, True, 6, "latency")
P4114 = _pt(2, 8, "ws", 2048, 4096, 1024, 2, 1, 1, True, 8, "edp")
P4182 = _pt(8, 8, "ws", 4096, 2048, 1024, 1, 2, 1, False, 4, "latency")
P4583 = _pt(16, 4, "os", 2048, 1024, 1024, 2, 1, 1, True, 8, "latency")
P1557 = _pt(12, 8, "ws", 2048, 4096, 1024, 4, 1, 1, False, 4, "edp")
P9441 = _pt(8, 4, "ws", 4096, 4096, 1024, 4, 2, 1, False, 6, "edp")
P2067 = _pt(4, 8, "os", 4096, 4096, 1024, 4, 2, 1, False, 6, "edp")
P7654 = _pt(12, 4, "os", 4096, 2048, 1024, 1, 2, 2, True, 6, "latency")
P9463 = _pt(4, 4, "ws", 4096, 4096, 1024, 1, 1, 2, False, 8, "latency")
P6940 = _pt(8, 8, "os", 4096, 4096, 1024, 2, 1, 1, True, 8, "latency")

ZOO: list[tuple[str, str, dict]] = [
    ("fit", "cnn-digits", P220), ("fit", "cnn-digits", P5763), ("fit", "cnn-digits", P4556),
    ("fit", "cnn-digits", P9051), ("fit", "cnn-digits", P4114), ("fit", "cnn-digits", P4182),
    ("fit", "cnn-digits", P4583), ("fit", "cnn-digits", P1557), ("fit", "cnn-digits", P9441),
    ("fit", "mlp-digits", P6940), ("fit", "mlp-digits", P9441), ("fit", "mlp-digits", P4556),
    ("heldout", "cnn-digits", P1384), ("heldout", "cnn-digits", P5161),
    ("heldout", "cnn-digits", P2579), ("heldout", "cnn-digits", P2067),
    ("heldout", "cnn-digits", P7654), ("heldout", "cnn-digits", P9463),
    ("heldout", "mlp-digits", P1384), ("heldout", "mlp-digits", P9051),
]
DSE_POINTS = {"#1384 8x8 os 8b": P1384, "#5161 8x4 os 8b": P5161, "#2579 12x4 ws 8b": P2579}


def designs() -> list[dict]:
    """Every design: ``{"split", "label", "arch"}`` (GEMM: ArchSpec dict) or
    ``{"split", "label", "point"}`` (zoo: DSE default-space point), in listing order."""
    out = [{"split": s, "label": "gemm", "arch": d} for s, d in grid()]
    out += [{"split": s, "label": m, "point": p} for s, m, p in ZOO]
    return out


def design_key(d: dict) -> str:
    """Identity of a design (to skip the ones already synthesised)."""
    if "point" in d:
        return json.dumps({"model": d["label"], "point": d["point"]}, sort_keys=True)
    from mapping.arch import ArchSpec

    plain = {k: v for k, v in d["arch"].items() if k != "_eltwise"}
    return _key(ArchSpec(**plain).to_dict(), d["arch"].get("_eltwise", False))


def record_key(rec: dict) -> str:
    p = rec["program"]
    if "point" in rec:
        return json.dumps({"model": p["label"], "point": rec["point"]}, sort_keys=True)
    return _key(rec["arch"], p.get("eltwise", False))


def _key(arch: dict, eltwise: bool = False) -> str:
    return json.dumps({k: v for k, v in arch.items() if k != "name"} | {"_eltwise": eltwise},
                      sort_keys=True)


def _cost(a: dict) -> int:
    """A rough synthesis-time proxy: multiplier and accumulator bits of the array."""
    bits = a.get("bits", 8)
    return (a["rows"] * a["cols"] * (a.get("in_bits", bits) + a.get("w_bits", bits) + 32)
            + 60 * (a["rows"] + a["cols"]))


def cost(d: dict) -> int:
    """:func:`_cost` of a design (zoo programs about double a design's logic)."""
    return 2 * _cost(d["point"]) if "point" in d else _cost(d["arch"])


def build_zoo(model: str, point: dict, out_dir: str):
    """(ArchSpec, Program) of ``model`` compiled for DSE point ``point`` into ``out_dir``,
    as ``dse.verify.build_point`` does (same arch name and settings: same Verilog)."""
    import models
    from dse.space import default_space
    from hwgen.build.flow import compile_model
    from mapping.passes import prepare_entry

    space = default_space()
    arch = space.arch(point, name="dse-verify")
    bits = space.model_bits(point)
    g = prepare_entry(models.get(model), bits=bits, w_bits=bits, acc_bits=arch.acc_bits)
    cm = compile_model(g, arch, out_dir, model=model, objective=space.objective(point),
                       settings={"bits": bits})
    return arch, cm.program


def program_record(arch, prog, label: str, eltwise: bool = False) -> dict:
    """The ``program`` part of a record: the baked program's sizes and shape."""
    from hwgen.compiler.program import param_bits, word_bits

    rom_words = len(prog.weight_image) if arch.weight_store == "rom" else 0
    pool, add = eltwise_liveness(arch, prog)
    kinds = [li.kind for li in prog.layers]
    return {"label": label, "rom_words": rom_words, "rom_bits": rom_words * arch.ext_word_bits,
            "instr_words": len(prog.instructions), "instr_bits": word_bits(arch),
            "param_words": len(prog.params), "param_bits": param_bits(arch),
            "layers": len(prog.layers), "layer_kinds": kinds, "eltwise": eltwise,
            "pool_mult": pool, "add_mult": add,
            "instructions": [format(w, "x") for w in prog.instructions]}


def measure(design: dict, family: str) -> dict:
    """Build, emit and synthesise one design; a calibration record."""
    from boards.synth import synthesize
    from hwgen.build.emit import TOP_MODULE, emit
    from hwgen.rtl.accelerator import Accelerator
    from mapping.arch import ArchSpec

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if "point" in design:
            arch, prog = build_zoo(design["label"], design["point"], tmp)
            eltwise = False
        else:
            arch_dict = dict(design["arch"])
            eltwise = bool(arch_dict.pop("_eltwise", False))
            arch = ArchSpec(**arch_dict)
            prog = build_program(arch, eltwise)
            emit(Accelerator(arch, prog), tmp)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep = synthesize(Path(tmp) / f"{TOP_MODULE}.il", TOP_MODULE, TARGETS[family])
        wall = time.perf_counter() - t0
    rec = {
        "split": design["split"],
        "arch": {k: v for k, v in arch.to_dict().items() if k != "name"},
        "program": program_record(arch, prog, design["label"], eltwise),
        "measured": {"lut": rep.lut, "ff": rep.ff, "carry": rep.carry, "dsp": rep.dsp,
                     "bram": rep.bram, "cells": rep.cells},
        "synth_seconds": rep.seconds, "wall_seconds": round(wall, 1),
        "build_seconds": round(build_s, 1), "cached": rep.cached,
        "tool_version": rep.tool_version,
    }
    if "point" in design:
        rec["point"] = dict(design["point"])
    return rec
