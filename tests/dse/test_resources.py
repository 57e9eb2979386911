"""Level-0 program sizes and resource estimates vs independent references.

Reference for the program sizes: the actual build of the point
(:func:`dse.verify.build_point`), read back from its build directory the way
``benchmarks/bench_synth.py::model_estimate`` reads a compiled program (weight
image words, instruction words and width, parameter entries, and
``benchmarks/calibration_designs.py::eltwise_liveness`` on the instruction
words). Reference for the DSP estimates: the counts Yosys synthesised for the
three points verified by the DSE acceptance run (``benchmarks/results/dse.md``).
"""

import importlib.util
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from dse.level0 import Level0Evaluator
from dse.model import model_layers
from dse.resources import NoResourceModel, ProgramSizes, estimator_for, program_sizes
from dse.space import default_space
from dse.verify import build_point
from hwgen.compiler.isa import word_bits
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest

ROOT = Path(__file__).resolve().parents[2]


def _eltwise_liveness():
    spec = importlib.util.spec_from_file_location(
        "calibration_designs", ROOT / "benchmarks" / "calibration_designs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.eltwise_liveness


def built_sizes(build_dir: Path) -> ProgramSizes:
    """The program sizes of a compiled build (bench_synth.model_estimate's derivation)."""
    man = json.loads((build_dir / "manifest.json").read_text())
    arch = ArchSpec.from_dict(man["arch"])
    words = [int(x, 16) for x in (build_dir / "program.hex").read_text().split()]
    weights = (build_dir / "weights.hex").read_text().split()
    assert len(weights) == man["program"]["weight_words"]
    layers = [SimpleNamespace(kind=li["kind"]) for li in man["layers"]]
    pool, add = _eltwise_liveness()(arch, SimpleNamespace(instructions=words, layers=layers))
    return ProgramSizes(rom_words=len(weights), program_words=len(words),
                        program_bits=word_bits(arch),
                        param_words=man["program"]["param_entries"], pool_mult=pool,
                        add_mult=add)


def mappings_of(ev: Level0Evaluator, m: dict) -> tuple:
    out = []
    for name in ev.layers.compute_names:
        tiles, order = m[f"tiles.{name}"].split(":")
        out.append((tuple(int(t) for t in tiles.split("x")), order))
    return tuple(out)


def feasible_points(model: str, n: int, seed: int):
    sp = default_space()
    ev = Level0Evaluator(sp, model_layers(model), NoResourceModel("test"), {"bram_bits": 1e12})
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        p = sp.point(rng.randrange(sp.size))
        m = ev.evaluate(p)
        if m["feasible"]:
            out.append((p, ev.program(sp.arch(p), mappings_of(ev, m))))
    return sp, out


def check_against_builds(model: str, n: int, seed: int, tmp_path: Path) -> None:
    from boards import resource_model as rm

    sp, pts = feasible_points(model, n, seed)
    est = estimator_for("ecp5")
    ev = Level0Evaluator(sp, model_layers(model), est, {"lut": 1e9})
    for i, (p, got) in enumerate(pts):
        d = tmp_path / f"{model}-{i}"
        build_point(model, sp.to_dict(), p, str(d))
        ref = built_sizes(d)
        assert got == ref, p
        if est.available:  # level 0 gives the model exactly these features
            m = ev.evaluate(p)
            r = rm.estimate(sp.arch(p).to_dict(), family="ecp5", rom_words=ref.rom_words,
                            program_words=ref.program_words, program_bits=ref.program_bits,
                            param_words=ref.param_words, pool_mult=ref.pool_mult,
                            add_mult=ref.add_mult)
            assert (m["lut"], m["ff"], m["dsp"], m["bram"]) == (r.lut, r.ff, r.dsp, r.bram)


@pytest.mark.parametrize("model,seed", [("cnn-digits", 11), ("mlp-digits", 12)])
def test_program_sizes_equal_compiled_build(model, seed, tmp_path):
    check_against_builds(model, 1, seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("model,seed", [("cnn-digits", 21), ("mlp-digits", 22)])
def test_program_sizes_equal_compiled_build_more(model, seed, tmp_path):
    check_against_builds(model, 6, seed, tmp_path)


def _one_gemm(M, N, K, eltwise=()):  # noqa: N803
    from dse.model import ComputeLayer, EltwiseLayer

    elt = tuple(EltwiseLayer(f"e{i}", op, 1, 1, 4 if op != "add" else 0, 1)
                for i, op in enumerate(eltwise))
    return SimpleNamespace(compute=(ComputeLayer("g", LoopNest.gemm(M, N, K), "input"),),
                           eltwise=elt, compute_names=["g"])


ARCH16 = ArchSpec(rows=4, cols=4, in_bits=16, w_bits=16, ext_word_bits=64, double_buffer=False)


def test_hand_computed_small_gemm():
    """GEMM 2x6x10 in (2, 4, 4) tiles, order m, n, k (n outer to k), 4 weights a word: weight
    tiles (k x n) 4x4, 4x4, 2x4, 4x2, 4x2, 2x2 -> 4+4+2+2+2+1 = 15 words; no element-wise
    layer, so neither the average-pool nor the residual-add multipliers are built."""
    s = program_sizes(ARCH16, _one_gemm(2, 6, 10), (((2, 4, 4), "mnk"),))
    assert s == ProgramSizes(rom_words=15, program_words=1 + 6 + 1,
                             program_bits=word_bits(ARCH16), param_words=6, pool_mult=False,
                             add_mult=False)
    db = ArchSpec(**{**ARCH16.to_dict(), "double_buffer": True})
    s = program_sizes(db, _one_gemm(2, 6, 9), (((2, 4, 4), "kmn"),))
    # k outer: tiles 4x4, 4x2, 4x4, 4x2, 1x4, 1x2 -> 4+2+4+2+1+1
    assert s == ProgramSizes(rom_words=14, program_words=1 + 1 + 6 + 1,
                             program_bits=word_bits(db), param_words=6, pool_mult=False,
                             add_mult=False)


def test_eltwise_units_follow_the_layers():
    """The multipliers are built for the layers that use them (hwgen.rtl.eltwise_engine)."""
    s = program_sizes(ARCH16, _one_gemm(1, 64, 64), (((1, 8, 8), "mnk"),))
    assert (s.rom_words, s.pool_mult, s.add_mult) == (1024, False, False)
    for ops, want in ((("maxpool2d",), (False, False)), (("avgpool2d",), (True, False)),
                      (("add",), (False, True)), (("mul",), (False, True)),
                      (("maxpool2d", "avgpool2d", "add"), (True, True))):
        s = program_sizes(ARCH16, _one_gemm(1, 16, 16, ops), (((1, 8, 8), "mnk"),))
        assert (s.pool_mult, s.add_mult) == want, ops


# The three points verified by the DSE acceptance run (benchmarks/results/dse.md): design,
# the level-0 / simulated cycles and Yosys's DSP and BRAM counts (ECP5, ulx3s-85f), measured
# again on 2026-12-08 after the element-wise engine stopped building the average-pool and
# residual-add multipliers for programs without such layers (cnn-digits has max pooling
# only: 113 -> 81, 73 -> 41, 161 -> 113 DSPs; block RAM unchanged). The buffer and bank
# parameters are one of the default-space points with those cycles.
VERIFIED = [
    (dict(rows=8, cols=8, dataflow="os", act_words=2048, w_words=2048, acc_words=1024,
          act_banks=1, w_banks=1, acc_banks=1, double_buffer=True, bits=8,
          objective="latency"), 2454, 81, 82),
    (dict(rows=8, cols=4, dataflow="os", act_words=2048, w_words=2048, acc_words=1024,
          act_banks=1, w_banks=1, acc_banks=1, double_buffer=True, bits=8,
          objective="latency"), 4095, 41, 78),
    (dict(rows=12, cols=8, dataflow="ws", act_words=4096, w_words=1024, acc_words=1024,
          act_banks=1, w_banks=1, acc_banks=1, double_buffer=True, bits=8,
          objective="edp"), 2190, 113, 202),
]


@pytest.mark.parametrize("point,cycles,dsp,bram", VERIFIED)
def test_dsp_of_verified_points_equals_synthesis(point, cycles, dsp, bram):
    est = estimator_for("ecp5")
    if not est.available:
        pytest.skip(f"no calibrated ECP5 resource model: {est.source}")
    sp = default_space()
    ev = Level0Evaluator(sp, model_layers("cnn-digits"), est, {"lut": 1e9})
    m = ev.evaluate(point)
    assert m["cycles"] == cycles  # the design the run verified
    assert (m["dsp"], m["bram"]) == (dsp, bram)


def test_lut_of_synthesised_zoo_points_within_ten_percent():
    """Level 0's closed-form program sizes + the shipped model reproduce the cnn-digits DSE
    points whose builds were synthesised for the calibration (held-out records, measured by
    Yosys): LUT within 10 %, DSP and BRAM exact. The records were synthesised before the
    element-wise engine stopped building unused multipliers, so the model is given the
    record's own ``pool_mult``/``add_mult`` (the hardware it measured)."""
    from boards import resource_model as rm

    est = estimator_for("ecp5")
    if not est.available:
        pytest.skip(f"no calibrated ECP5 resource model: {est.source}")
    recs = [r for r in rm.load_calibration("ecp5") if r["split"] == "heldout"
            and r["program"].get("label") == "cnn-digits" and r["arch"]["rows"] >= 8]
    assert len(recs) >= 3
    sp = default_space()
    ev = Level0Evaluator(sp, model_layers("cnn-digits"), NoResourceModel("sizes only"),
                         {"bram_bits": 1e12})
    for rec in recs:
        m, meas = ev.evaluate(rec["point"]), rec["measured"]
        arch = sp.arch(rec["point"])
        sizes = ev.program(arch, mappings_of(ev, m))
        r = est.model.predict(rm.features_from_arch(
            arch.to_dict(), family="ecp5", rom_words=sizes.rom_words,
            program_words=sizes.program_words, program_bits=sizes.program_bits,
            param_words=sizes.param_words, pool_mult=rec["program"]["pool_mult"],
            add_mult=rec["program"]["add_mult"]))
        assert abs(r.lut - meas["lut"]) <= 0.10 * meas["lut"], (rec["point"], r.lut)
        assert (r.dsp, r.bram) == (meas["dsp"], meas["bram"]), rec["point"]
