"""Fast resource model of the generated accelerator, calibrated on real synthesis.

The accelerator is a generator, so its resources are sums of per-component
terms of the ``ArchSpec`` fields. ``boards`` sits below ``hwgen`` and may not
import it: the input is a plain :class:`Features` (built from
``ArchSpec.to_dict()`` by :func:`features_from_arch`, plus the sizes of the
baked weight ROM and program), and the component structure hwgen generates is
restated here (see docs/boards.md "Resource model").

- **DSP** is derived exactly: one multiplier per PE (``in_bits x w_bits``), one
  ``acc_bits x 16`` requantisation multiplier per post-processing lane (``cols``
  lanes), per element-wise lane (``rows`` lanes, only when the program can
  select them: see :class:`Features`) two ``in_bits x 16`` residual-add
  scalings and one ``acc_bits x 16`` average-pool scaling, and the tile
  engine's ``row x cw`` accumulator-address product, each split into DSP
  blocks by Yosys's ``mul2dsp`` rule for the family (:func:`dsp_blocks`).
- **BRAM** is derived exactly from each memory's depth x width x read ports and
  the family's block geometry, choosing block RAM, distributed RAM or logic by
  the same cost comparison as Yosys's ``memory_libmap`` (:func:`map_memory`).
- **LUT** and **FF** are least-squares fits of a few structural terms
  (:func:`lut_terms`, :func:`ff_terms`), plus exact parts: distributed-RAM
  LUTs and the PE array's register count (``hwgen.rtl.array.SystolicArray.register_bits``).
  Two terms carry what real (multi-layer) programs keep and a one-GEMM program
  does not exercise: ``elt_live``, the element-wise lanes' rounding datapaths
  that stay with the pool / add multipliers, and ``pe_os``, the OS PE's
  restart-or-accumulate multiplexer (which one-GEMM designs of <= 24 PEs could not
  tell apart from the lanes).

Coefficients are fitted by ``benchmarks/calibrate_resource_model.py`` and
shipped in ``boards/data/resource_calibration_<family>.json`` so design-space
exploration needs no synthesis. Every figure this model gives is *estimated*.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from boards.family_rules import (  # noqa: F401  (re-exported as part of this module's API)
    RULES,
    FamilyRules,
    Memory,
    ResourceModelError,
    bank_count,
    bits_for,
    block_count,
    dsp_blocks,
    map_memory,
    rules,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
SOURCE = "estimated (boards.resource_model, calibrated on yosys synthesis)"

# Restated from mapping.quant (boards imports nothing of ours);
# tests/boards/test_constants_agree.py checks them and param_bits against the originals.
MULT_BITS, SHIFT_BITS = 15, 6
OS_CW_BITS = 16  # width of the OS walk's column count (at most 18: one DSP column)


def param_bits(acc_bits: int) -> int:
    """Bits of one parameter-table entry: bias, multiplier, shift
    (``hwgen.compiler.isa.param_layout``)."""
    return acc_bits + MULT_BITS + SHIFT_BITS


# ---------------------------------------------------------------- features
@dataclass(frozen=True)
class Features:
    """Everything the model needs: ArchSpec fields and the baked memory sizes.

    ``rom_words``: words of the baked weight ROM (0 with an external weight
    store), ``ext_word_bits`` wide; ``program_words``/``program_bits``: the
    instruction ROM; ``param_words``: per-channel parameter entries;
    ``pool_mult``/``add_mult``: the element-wise engine has the average-pool /
    residual-add multipliers (built only for a program with an average pool / an add or a
    tensor multiply; ``benchmarks/calibration_designs.py: eltwise_liveness``). ``act_gather``: the
    activation scratchpad is built once per read lane (``"lanes"``) or once (``"runs"``;
    the calibration designs are all ``"lanes"``: its block RAM follows the mapping rule
    exactly, its LUTs are the ``"lanes"`` fit).
    """

    family: str
    rows: int
    cols: int
    dataflow: str
    in_bits: int
    w_bits: int
    acc_bits: int
    act_words: int
    act_banks: int
    w_words: int
    w_banks: int
    acc_words: int
    acc_banks: int
    double_buffer: bool
    weight_store: str
    ext_word_bits: int
    rom_words: int = 0
    program_words: int = 0
    program_bits: int = 0
    param_words: int = 0
    pool_mult: bool = False
    add_mult: bool = False
    act_gather: str = "lanes"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ARCH_FIELDS = ("rows", "cols", "dataflow", "in_bits", "w_bits", "acc_bits", "act_words",
               "act_banks", "w_words", "w_banks", "acc_words", "acc_banks", "double_buffer",
               "weight_store", "ext_word_bits")


def features_from_arch(arch: dict[str, Any], *, family: str = "ecp5", rom_words: int = 0,
                       rom_bits: int | None = None, program_words: int = 0,
                       program_bits: int = 0, param_words: int = 0,
                       pool_mult: bool = False, add_mult: bool = False) -> Features:
    """:class:`Features` from ``ArchSpec.to_dict()`` output and the program's sizes.

    Give the weight ROM as ``rom_words`` (words of ``ext_word_bits``) or
    ``rom_bits``; it is ignored when ``weight_store`` is ``"external"``.
    """
    if not isinstance(arch, dict):
        raise ResourceModelError(f"arch must be a dict (ArchSpec.to_dict()), got "
                                 f"{type(arch).__name__}")
    missing = [f for f in ARCH_FIELDS if f not in arch]
    if missing:
        raise ResourceModelError(f"arch dict lacks field(s) {', '.join(missing)}; "
                                 f"needed: {', '.join(ARCH_FIELDS)}")
    rules(family)
    ewb = int(arch["ext_word_bits"])
    if rom_bits is not None:
        rom_words = -(-int(rom_bits) // ewb)
    if arch["weight_store"] == "external":
        rom_words = 0
    for name, v in (("rom_words", rom_words), ("program_words", program_words),
                    ("program_bits", program_bits), ("param_words", param_words)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ResourceModelError(f"{name} = {v!r} must be a non-negative integer")
    f = Features(family=family, **{k: arch[k] for k in ARCH_FIELDS}, rom_words=rom_words,
                 program_words=program_words, program_bits=program_bits, param_words=param_words,
                 pool_mult=bool(pool_mult), add_mult=bool(add_mult),
                 act_gather=arch.get("act_gather", "lanes"))
    if f.act_gather not in ("lanes", "runs"):
        raise ResourceModelError(f"act_gather = {f.act_gather!r} must be 'lanes' or 'runs'")
    for k in ("rows", "cols", "in_bits", "w_bits", "acc_bits", "act_words", "act_banks",
              "w_words", "w_banks", "acc_words", "acc_banks", "ext_word_bits"):
        v = getattr(f, k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ResourceModelError(f"arch field {k} = {v!r} must be a positive integer")
    if f.dataflow not in ("ws", "os"):
        raise ResourceModelError(f"dataflow = {f.dataflow!r} must be 'ws' or 'os'")
    return f


# ---------------------------------------------------------------- memories
def memories(f: Features) -> list[Memory]:
    """The accelerator's memories (hwgen.rtl.memory, hwgen.rtl.dma.WeightROM, the sequencer ROM)."""
    R, C = f.rows, f.cols
    out = []
    ba = bank_count(max(R, C), f.act_banks)
    copies = 1 if f.act_gather == "runs" else R  # one per read lane, or one read run
    out.append(Memory("act", -(-f.act_words // ba), f.in_bits, copies, False, ba))
    wpw = f.ext_word_bits // f.w_bits
    bw = bank_count(C, wpw, f.w_banks)
    out.append(Memory("w", -(-f.w_words // bw), f.w_bits, 1, False, bw))
    bc = bank_count(C, f.acc_banks)
    out.append(Memory("acc", -(-f.acc_words // bc), f.acc_bits, 1, False, bc, transparent=True))
    bp = bank_count(C)
    pb = param_bits(f.acc_bits)
    out.append(Memory("params", max(1, -(-(max(f.param_words, 1) + C) // bp)), pb, 1, True, bp))
    if f.rom_words:
        out.append(Memory("weight_rom", f.rom_words, f.ext_word_bits, 1, True))
    if f.program_words and f.program_bits:
        out.append(Memory("program", f.program_words, f.program_bits, 1, True))
    return out


# ---------------------------------------------------------------- exact parts
def dsp_count(f: Features) -> int:
    """DSP blocks (exact): PE multipliers, post-processing and element-wise lanes,
    the tile engine's address product."""
    fam = f.family
    pe = f.rows * f.cols * dsp_blocks(f.in_bits, f.w_bits, fam)
    lanes = f.cols * dsp_blocks(f.acc_bits, MULT_BITS + 1, fam)
    elt = f.rows * (2 * dsp_blocks(f.in_bits, MULT_BITS + 1, fam) * f.add_mult
                    + dsp_blocks(f.acc_bits, MULT_BITS + 1, fam) * f.pool_mult)
    ctrl = dsp_blocks(bits_for(f.rows), bits_for(f.cols + 1), fam)
    # OS: the next m block's accumulator row advances by cw * rows, a constant
    # multiply that stays a multiplier unless rows is a power of two
    if f.dataflow == "os" and f.rows & (f.rows - 1):
        ctrl += dsp_blocks(OS_CW_BITS, f.rows.bit_length(), fam)
    return pe + lanes + elt + ctrl


def bram_count(f: Features) -> int:
    """Block RAMs (exact, given the mapping rule)."""
    return _mapped_total(memories(f), f.family, "block")


def lutram_cells(f: Features) -> int:
    """Distributed-RAM cells (exact, given the mapping rule)."""
    return _mapped_total(memories(f), f.family, "dist")


def _mapped_total(mems: list[Memory], family: str, kind: str) -> int:
    total = 0
    for m in mems:
        k, n = map_memory(m, family)
        if k == kind:
            total += m.arrays * n
    return total


def array_register_bits(f: Features) -> int:
    """``hwgen.rtl.array.SystolicArray.register_bits`` restated (tag = the controller's tag)."""
    R, C, ib, wb, ab = f.rows, f.cols, f.in_bits, f.w_bits, f.acc_bits
    tag = bits_for(R) + bits_for(f.acc_words) + 1 + bits_for(C + 1) + bits_for(R + 1)
    if f.dataflow == "ws":
        pe = (ib + 1 + ab + 2 * wb) * R * C - R * (ib + 1)
        idx = max(1, (R - 1).bit_length())
        return (pe + ib * R * (R + 1) // 2 + R + (1 + idx) * C + wb * C * (C + 1) // 2 + idx
                + ab * C * (C - 1) // 2 + (1 + tag) * (R + C))
    pe = (ib + wb + 2 + ab) * R * C - R * (ib + 1) - C * wb
    return (pe + ib * R * (R + 1) // 2 + wb * C * (C + 1) // 2 + 2 * R + ab * C * (C - 1) // 2
            + (1 + tag) * (C + 1) + tag + max(1, (R - 1).bit_length()))


# ---------------------------------------------------------------- fitted parts
LUT_TERMS = ("pe", "pe_os", "lanes", "elt_live", "select", "dist_mux", "rom_logic", "addr",
             "const")
FF_TERMS = ("lanes", "elt_live", "addr", "const")


def lane_bits(f: Features) -> int:
    """Datapath bits of the vector units: ``cols`` post-processing lanes (bias add,
    requantise, round, clamp) and ``rows`` element-wise lanes (the max-pool
    comparator and round/clamp always stay: the ELT decode cannot be proven dead)."""
    return ((f.cols + f.rows) * (f.acc_bits + MULT_BITS + SHIFT_BITS)
            + f.rows * f.in_bits * (1 + f.add_mult))


def elt_live_bits(f: Features) -> int:
    """Datapath bits of the element-wise lanes that only a program selecting the
    average-pool / residual-add multipliers keeps (``rows`` lanes each): the pool's
    ``acc_bits + 16``-bit product and the add's ``in_bits + 17``-bit sum of products,
    each rounded by a variable shift and clamped (``hwgen.rtl.eltwise``). Without them the
    shift of a max pool is the constant 0 and the add unit is dead logic."""
    return f.rows * ((f.acc_bits + MULT_BITS + 1) * f.pool_mult
                     + (f.in_bits + MULT_BITS + 2) * f.add_mult)


def lut_terms(f: Features, mems: list[Memory] | None = None) -> dict[str, float]:
    """Structural LUT terms (fitted coefficient each, LUT4 per unit)."""
    R, C = f.rows, f.cols
    ba, bc = bank_count(max(R, C), f.act_banks), bank_count(C, f.acc_banks)
    wpw = f.ext_word_bits // f.w_bits
    bw = bank_count(C, wpw, f.w_banks)
    pb = param_bits(f.acc_bits)
    bp = bank_count(C)
    # selection networks: an n-way choice of b bits costs about (n - 1) * b
    select = (R * (ba - 1) * f.in_bits + ba * (max(R, C) - 1) * f.in_bits
              + C * (bw - 1) * f.w_bits + bw * (wpw - 1) * f.w_bits
              + 2 * C * (bc - 1) * f.acc_bits + C * (bp - 1) * pb)
    dist_mux = rom_logic = 0.0
    cell_depth = rules(f.family).lutram[0]
    for m in memories(f) if mems is None else mems:
        kind, n = map_memory(m, f.family)
        if kind == "dist":
            dist_mux += m.arrays * (math.ceil(m.depth / cell_depth) - 1) * m.width
        elif kind == "logic" and m.name != "program":  # program fields fold into control
            rom_logic += m.arrays * n
    addr = (R + C + 3) * (bits_for(f.act_words) + bits_for(f.w_words) + bits_for(f.acc_words))
    return {
        "pe": R * C * (f.acc_bits + f.w_bits + f.in_bits),
        # an OS PE restarts or accumulates: Mux(first, prod, acc + prod), acc_bits wide
        "pe_os": R * C * f.acc_bits * (f.dataflow == "os"),
        "lanes": lane_bits(f), "elt_live": elt_live_bits(f),
        "select": select, "dist_mux": dist_mux, "rom_logic": rom_logic, "addr": addr,
        "const": 1.0,
    }


def ff_terms(f: Features) -> dict[str, float]:
    """Structural FF terms beyond the array's exact register count."""
    R, C = f.rows, f.cols
    addr = (R + C + 3) * (bits_for(f.act_words) + bits_for(f.w_words) + bits_for(f.acc_words))
    return {"lanes": lane_bits(f), "elt_live": elt_live_bits(f), "addr": addr, "const": 1.0}


@dataclass(frozen=True)
class Derived:
    """The coefficient-free part of a prediction (cached per :class:`Features`)."""

    dsp: int
    bram: int
    lutram_cells: int
    lut_exact: int
    ff_exact: int
    lut_terms: tuple[float, ...]
    ff_terms: tuple[float, ...]


@functools.lru_cache(maxsize=65536)
def derived(f: Features) -> Derived:
    """Exact counts and the fitted terms' values for ``f``."""
    mems = memories(f)
    cells = _mapped_total(mems, f.family, "dist")
    lt, ft = lut_terms(f, mems), ff_terms(f)
    return Derived(dsp=dsp_count(f), bram=_mapped_total(mems, f.family, "block"),
                   lutram_cells=cells, lut_exact=rules(f.family).lutram_luts * cells,
                   ff_exact=array_register_bits(f), lut_terms=tuple(lt[t] for t in LUT_TERMS),
                   ff_terms=tuple(ft[t] for t in FF_TERMS))


@dataclass(frozen=True)
class ResourceEstimate:
    """Estimated resources of one accelerator (same keys as ``SynthReport.resources``)."""

    family: str
    lut: int
    ff: int
    dsp: int
    bram: int
    lutram_cells: int
    source: str = SOURCE

    def resources(self) -> dict[str, float]:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram": self.bram, "spram": 0}


def fit_nonnegative(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least squares ``X @ c ~ y`` with ``c >= 0`` (weighted rows).

    Active-set elimination: solve, drop the most negative coefficient's column
    (fix it at 0), repeat. Small problems only (a handful of terms).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ResourceModelError(f"fit needs X (n, k) and y (n,), got {X.shape} and {y.shape}")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    Xw, yw = X * w[:, None], y * w
    active = list(range(X.shape[1]))
    coef = np.zeros(X.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(Xw[:, active], yw, rcond=None)
        if (sol >= 0).all():
            coef[:] = 0
            coef[active] = sol
            break
        active.pop(int(np.argmin(sol)))
    return coef


@dataclass
class ResourceModel:
    """Per-family model: exact DSP/BRAM rules plus fitted LUT/FF coefficients."""

    family: str
    lut_coef: dict[str, float]
    ff_coef: dict[str, float]
    fitted_on: int = 0

    @classmethod
    def fit(cls, family: str, rows: list[tuple[Features, dict[str, float]]]) -> ResourceModel:
        """Fit LUT and FF coefficients to (features, measured resources) pairs.

        LUT: measured LUTs minus the exact distributed-RAM LUTs; FF: measured
        FFs minus the array's exact register count. Rows are weighted by
        1/measured so the fit minimises relative error.
        """
        rules(family)
        if not rows:
            raise ResourceModelError("no calibration rows to fit")
        r = rules(family)
        XL = np.array([[lut_terms(f)[t] for t in LUT_TERMS] for f, _ in rows])
        yL = np.array([m["lut"] - r.lutram_luts * lutram_cells(f) for f, m in rows], float)
        wL = 1.0 / np.maximum(1.0, np.array([m["lut"] for _, m in rows], float))
        XF = np.array([[ff_terms(f)[t] for t in FF_TERMS] for f, _ in rows])
        yF = np.array([m["ff"] - array_register_bits(f) for f, m in rows], float)
        wF = 1.0 / np.maximum(1.0, np.array([m["ff"] for _, m in rows], float))
        cl = fit_nonnegative(XL, yL, wL)
        cf = fit_nonnegative(XF, yF, wF)
        return cls(family, dict(zip(LUT_TERMS, map(float, cl), strict=True)),
                   dict(zip(FF_TERMS, map(float, cf), strict=True)), fitted_on=len(rows))

    def predict(self, f: Features) -> ResourceEstimate:
        """Estimated resources of the accelerator described by ``f``."""
        if f.family != self.family:
            raise ResourceModelError(f"features are for {f.family!r}, the model for "
                                     f"{self.family!r}")
        d = derived(f)
        lut = d.lut_exact + sum(self.lut_coef[t] * v for t, v in zip(LUT_TERMS, d.lut_terms,
                                                                      strict=True))
        ff = d.ff_exact + sum(self.ff_coef[t] * v for t, v in zip(FF_TERMS, d.ff_terms,
                                                                   strict=True))
        return ResourceEstimate(self.family, lut=round(lut), ff=round(ff), dsp=d.dsp,
                                bram=d.bram, lutram_cells=d.lutram_cells)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "lut_coef": self.lut_coef, "ff_coef": self.ff_coef,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResourceModel:
        try:
            lut, ff = dict(d["lut_coef"]), dict(d["ff_coef"])
            model = cls(d["family"], lut, ff, int(d.get("fitted_on", 0)))
        except (KeyError, TypeError) as exc:
            raise ResourceModelError(f"bad resource model data: missing {exc}") from None
        if set(lut) != set(LUT_TERMS) or set(ff) != set(FF_TERMS):
            raise ResourceModelError(f"resource model terms differ from this version's: LUT "
                                     f"{sorted(lut)} vs {sorted(LUT_TERMS)}, FF {sorted(ff)} vs "
                                     f"{sorted(FF_TERMS)}; re-run the calibration")
        return model

    def save(self, family_file: str | Path | None = None) -> Path:
        """Store the coefficients in the family's calibration file (records kept)."""
        path = Path(family_file) if family_file else calibration_path(self.family)
        data = json.loads(path.read_text()) if path.is_file() else {"family": self.family,
                                                                     "records": []}
        data["model"] = self.to_dict()
        _write_json(path, data)
        return path

    @classmethod
    def load(cls, family: str = "ecp5", path: str | Path | None = None) -> ResourceModel:
        """The shipped (or given) fitted model of ``family``."""
        path = Path(path) if path else calibration_path(family)
        if not path.is_file():
            raise ResourceModelError(f"no calibration for family {family!r} ({path}); run "
                                     "benchmarks/calibrate_resource_model.py --family "
                                     f"{family}")
        data = json.loads(path.read_text())
        if "model" not in data:
            raise ResourceModelError(f"{path} holds no fitted model; run "
                                     "benchmarks/calibrate_resource_model.py --fit-only")
        return cls.from_dict(data["model"])


def estimate(arch: dict[str, Any], *, family: str = "ecp5", **sizes: int) -> ResourceEstimate:
    """One-call estimate from ``ArchSpec.to_dict()`` with the shipped model."""
    return ResourceModel.load(family).predict(features_from_arch(arch, family=family, **sizes))


# ---------------------------------------------------------------- calibration data
def calibration_path(family: str) -> Path:
    return DATA_DIR / f"resource_calibration_{family}.json"


def record_features(rec: dict[str, Any], family: str) -> Features:
    """Features of one calibration record (as written by the calibration script)."""
    p = rec["program"]
    return features_from_arch(rec["arch"], family=family, rom_words=p["rom_words"],
                              program_words=p["instr_words"], program_bits=p["instr_bits"],
                              param_words=p["param_words"], pool_mult=p["pool_mult"],
                              add_mult=p["add_mult"])


def load_calibration(family: str, path: str | Path | None = None) -> list[dict]:
    """The calibration records (features + measured synthesis) of ``family``."""
    path = Path(path) if path else calibration_path(family)
    if not path.is_file():
        raise ResourceModelError(f"no calibration data for {family!r} at {path}")
    return json.loads(path.read_text())["records"]


def save_calibration(family: str, records: list[dict], path: str | Path | None = None) -> Path:
    """Write the records (keeping a stored model)."""
    path = Path(path) if path else calibration_path(family)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(family=family, records=records)
    _write_json(path, data)
    return path


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
