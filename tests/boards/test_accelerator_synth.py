"""Synthesis of real generated accelerators (``hwgen.rtl.accelerator.Accelerator``) on the three families.

Default suite: a 2x2 accelerator running one small GEMM, synthesised for ECP5,
iCE40 UltraPlus and Xilinx 7 (three Yosys runs side by side, about a minute on
a cold cache). Slow: the full ``edge-8x8`` accelerator compiled from
``cnn-digits`` on the three families, and nextpnr Fmax of ``tiny-4x4``.

References are independent of the code under test: the PE count rows x cols
(one multiplier per PE, operands <= 18 bits so each fits one DSP block of any
of the families), the raw Yosys cell names of each family's DSP primitive, and
the vendors' data-sheet budgets written out here as numbers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from boards_designs import gemm_accelerator_verilog, zoo_accelerator

from boards.report import DoesNotFitError, fit
from boards.synth import synthesize

FAMILIES = ("ecp5", "ice40", "xc7")
DSP_CELL = {"ecp5": "MULT18X18D", "ice40": "SB_MAC16", "xc7": "DSP48E1"}
# Data-sheet budgets (FPGA-DS-02012 Table 1.1, FPGA-DS-02008 Table 1.1, DS180 Table 4).
BUDGETS = {
    "ulx3s-85f": ("ecp5", {"lut": 83_640, "ff": 83_640, "dsp": 156, "bram": 208, "spram": 0}),
    "icebreaker": ("ice40", {"lut": 5_280, "ff": 5_280, "dsp": 8, "bram": 30, "spram": 4}),
    "arty-a7-35": ("xc7", {"lut": 20_800, "ff": 41_600, "dsp": 90, "bram": 50, "spram": 0}),
}
ROWS, COLS = 2, 2


def _synth_all(path, top, families=FAMILIES, timeout=1800.0):
    with ThreadPoolExecutor(len(families)) as pool:
        reps = pool.map(lambda f: synthesize(path, top, f, timeout=timeout), families)
        return dict(zip(families, reps, strict=True))


@pytest.fixture(scope="module")
def small(design_dir, synth_cache):
    """2x2 accelerator, 8-bit operands, 16-bit accumulators, one 2x2x2 GEMM: reports per family."""
    path, top = gemm_accelerator_verilog(design_dir, ROWS, COLS, acc_bits=16, gemm=(2, 2, 2))
    return _synth_all(path.with_suffix(".il"), top)  # what boards.synth reads in the flow


@pytest.mark.parametrize("family", FAMILIES)
def test_small_accelerator_multipliers_in_dsp(small, family):
    rep = small[family]
    assert rep.family == family and rep.source.startswith("measured")
    # one 8x8 multiplier per PE, each fits a single DSP block of every family
    assert rep.cells.get(DSP_CELL[family], 0) >= ROWS * COLS
    assert rep.dsp == rep.cells[DSP_CELL[family]]
    assert rep.lut > 0 and rep.ff > 0


def test_rtlil_synthesises_like_the_verilog(small, design_dir):
    """Synthesis reads emit's RTLIL (boards.synth docstring); Amaranth's Verilog is written
    from it (the simulation Verilog is that, with zero fills as loops). Both must give the
    same hardware."""
    from amaranth.back import verilog

    path, top = gemm_accelerator_verilog(design_dir, ROWS, COLS, acc_bits=16, gemm=(2, 2, 2))
    raw = design_dir / "amaranth_gemm2x2.v"
    raw.write_text(verilog._convert_rtlil_text(path.with_suffix(".il").read_text()))
    v = synthesize(raw, top, "ecp5")
    il = small["ecp5"]
    assert (il.ff, il.dsp, il.bram, il.carry) == (v.ff, v.dsp, v.bram, v.carry)
    # LUTs within ABC's noise: its mapping depends on net names and order. A pure renaming
    # (the MUL member of EltKind: identical logic) moved it 1% -> 2.6%; the sequencer's
    # loop/XFER plumbing (no logic in this design but the layer counters' adder, in both)
    # moved it to 7.2% (RTLIL 4,537, Verilog 4,233 LUTs; FF, DSP, BRAM, carry equal).
    assert abs(il.lut - v.lut) <= 0.10 * v.lut, (il.lut, v.lut)


@pytest.mark.parametrize("board", sorted(BUDGETS))
def test_small_accelerator_fit_matches_budget(small, board):
    family, budget = BUDGETS[board]
    rep = small[family]
    used = {"lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp, "bram": rep.bram, "spram": rep.spram}
    expect_over = {r for r in budget if used[r] > budget[r]}
    fr = fit(rep, board, strict=False)
    assert set(fr.overflows()) == expect_over
    assert fr.fits == (not expect_over)
    for r, avail in budget.items():
        if avail:
            assert fr.utilisation()[r] == pytest.approx(100 * used[r] / avail)
    if expect_over:
        with pytest.raises(DoesNotFitError) as exc:
            fit(rep, board)
        for r in expect_over:
            assert f"{r}: needs {used[r]:g}, has {budget[r]}" in str(exc.value)
            assert f"({used[r] - budget[r]:g} too many" in str(exc.value)
    else:
        assert fit(rep, board).fits


def test_small_accelerator_dsps_on_ultraplus(small):
    """The 2x2 GEMM accelerator's SB_MAC16s: one per PE (8 x 8 bits) and one per
    requantisation lane (16-bit accumulator x 16-bit multiplier), 4 + 2 = 6 of the UP5K's 8.
    A GEMM-only program builds no average-pool or residual-add multipliers (it had 10 when
    they were always built)."""
    rep = small["ice40"]
    assert rep.dsp == ROWS * COLS + COLS
    assert "dsp" not in fit(rep, "icebreaker", strict=False).overflows()


# ---------------------------------------------------------------- slow: the real presets
@pytest.fixture(scope="module")
def edge8x8(tmp_path_factory, synth_cache):
    build = zoo_accelerator(tmp_path_factory.mktemp("edge"), "cnn-digits", "edge-8x8")
    return _synth_all(build / "hwgen_accel.v", "hwgen_accel", timeout=5400.0)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_edge8x8_multipliers_in_dsp(edge8x8, family):
    rep = edge8x8[family]
    assert rep.cells.get(DSP_CELL[family], 0) >= 8 * 8
    assert rep.dsp >= 8 * 8


@pytest.mark.slow
def test_edge8x8_fit_per_board(edge8x8):
    assert fit(edge8x8["ecp5"], "ulx3s-85f").fits
    assert edge8x8["ice40"].dsp > 8
    with pytest.raises(DoesNotFitError, match="dsp: needs"):
        fit(edge8x8["ice40"], "icebreaker")


@pytest.mark.slow
def test_tiny4x4_fmax_ecp5(tmp_path_factory, synth_cache):
    from boards.pnr import estimate_fmax

    build = zoo_accelerator(tmp_path_factory.mktemp("tiny"), "cnn-digits", "tiny-4x4")
    pnr = estimate_fmax(build / "hwgen_accel.v", "hwgen_accel", "ulx3s-85f", timeout=5400.0)
    assert pnr.io_mode == "ooc" and pnr.fmax > 0
    assert pnr.utilization["MULT18X18D"][0] >= 16
    cp = pnr.critical_paths[0]
    assert 1000 / cp.delay_ns == pytest.approx(pnr.fmax, rel=0.05)


@pytest.mark.slow
def test_tiny4x4_fits_no_ice40_and_2x2_fmax_on_hx8k(tmp_path_factory, design_dir, synth_cache):
    """tiny-4x4 needs 16 PE multipliers (UP5K: 8 DSP) and 64 EBR for its activation
    scratchpad copies (UP5K 30, HX8K 32): no iCE40 holds it. The 2x2 GEMM accelerator
    is placed on the HX8K instead (no DSP: multipliers in logic)."""
    from boards.pnr import estimate_fmax

    build = zoo_accelerator(tmp_path_factory.mktemp("tiny"), "cnn-digits", "tiny-4x4")
    rep = synthesize(build / "hwgen_accel.v", "hwgen_accel", "icebreaker", timeout=5400.0)
    assert rep.dsp >= 16
    with pytest.raises(DoesNotFitError, match="dsp: needs"):
        fit(rep, "icebreaker")
    path, top = gemm_accelerator_verilog(design_dir, ROWS, COLS, acc_bits=16, gemm=(2, 2, 2))
    hx = synthesize(path, top, "hx8k-breakout")
    assert hx.dsp == 0 and fit(hx, "hx8k-breakout").fits
    pnr = estimate_fmax(path, top, "hx8k-breakout")
    assert pnr.io_mode == "pins" and pnr.fmax > 0
    assert "ICESTORM_DSP" not in pnr.utilization or pnr.utilization["ICESTORM_DSP"][0] == 0
