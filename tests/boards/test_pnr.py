"""nextpnr runs on the 2x2 MAC array, and report parsing on a hand-written report."""

import pytest
from boards_designs import mac_array_verilog

from boards.catalogue import DEVICES
from boards.pnr import PnrUnsupportedError, estimate_fmax, parse_report, place_and_route
from boards.synth import synthesize


@pytest.fixture(scope="module")
def mac2x2(design_dir):
    return mac_array_verilog(design_dir, 2, 2)


def test_ecp5_out_of_context_fmax(mac2x2, synth_cache):
    path, top = mac2x2
    rep = estimate_fmax(path, top, "ulx3s-85f", freq_mhz=100)
    assert rep.io_mode == "ooc" and set(rep.fmax_mhz) == {"clk"}
    # An ECP5 -6 MULT18X18D alone is ~4 ns: a registered 8x8 MAC lands well inside this.
    assert 60 < rep.fmax < 400
    cp = rep.critical_paths[0]
    assert cp.delay_ns == pytest.approx(cp.logic_ns + cp.routing_ns)
    assert 1000 / cp.delay_ns == pytest.approx(rep.fmax, rel=0.05)
    assert rep.utilization["MULT18X18D"][0] == 4
    assert rep.source.startswith("measured")


def test_ice40_wrapped_fmax_and_cache(mac2x2, synth_cache):
    path, top = mac2x2
    rep = estimate_fmax(path, top, "icebreaker", freq_mhz=12)
    assert rep.io_mode == "pins" and set(rep.fmax_mhz) == {"clk"}
    assert 15 < rep.fmax < 200
    assert any("wrapped" in n for n in rep.notes)
    assert rep.utilization["ICESTORM_DSP"][0] == 4
    again = estimate_fmax(path, top, "icebreaker", freq_mhz=12)
    assert "cached result" in again.notes and again.fmax_mhz == rep.fmax_mhz


def test_many_ports_need_the_wrapper(mac2x2, synth_cache):
    path, top = mac2x2
    rep = synthesize(path, top, "icebreaker")  # 179 port bits > 39 pins on SG48
    with pytest.raises(PnrUnsupportedError, match="179 port bits .* 39 user I/O"):
        place_and_route(rep, "icebreaker")


def test_unsupported_requests(mac2x2, synth_cache, tmp_path):
    path, top = mac2x2
    with pytest.raises(PnrUnsupportedError, match="synthesis-only"):
        estimate_fmax(path, top, "arty-a7-35")
    with pytest.raises(PnrUnsupportedError, match="synthesis-only"):
        place_and_route(tmp_path / "x.json", "XC7A100T")
    with pytest.raises(PnrUnsupportedError, match="only supported on ECP5"):
        place_and_route(tmp_path / "x.json", "icebreaker", io_mode="ooc")
    with pytest.raises(PnrUnsupportedError, match="bitstream needs placed I/O"):
        place_and_route(tmp_path / "x.json", "ulx3s-85f", bitstream=True)
    with pytest.raises(ValueError, match="allowed: auto, ooc, pins"):
        place_and_route(tmp_path / "x.json", "ulx3s-85f", io_mode="fast")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        place_and_route(tmp_path / "x.json", "ulx3s-85f")


def test_parse_report_by_hand():
    data = {
        "fmax": {"clk$SB_IO_IN_$glb_clk": {"achieved": 50.0, "constraint": 12.0},
                 "$glbnet$aux_clk$TRELLIS_IO_IN": {"achieved": 80.0, "constraint": 12.0}},
        "critical_paths": [{"from": "posedge clk$SB_IO_IN_$glb_clk", "to": "posedge clk",
                            "path": [
                                {"type": "clk-to-q", "delay": 1.0, "from": {"cell": "a"},
                                 "to": {"cell": "a"}},
                                {"type": "routing", "delay": 3.0, "from": {"cell": "a"},
                                 "to": {"cell": "b"}, "net": "n"},
                                {"type": "logic", "delay": 5.5, "from": {"cell": "b"},
                                 "to": {"cell": "b"}},
                                {"type": "setup", "delay": 0.5, "from": {"cell": "c"},
                                 "to": {"cell": "c"}}]}],
        "utilization": {"ICESTORM_LC": {"used": 10, "available": 5280}},
    }
    rep = parse_report(data, DEVICES["iCE40UP5K"], target_mhz=12.0, io_mode="pins",
                       seconds=1.0, version="v")
    assert rep.fmax_mhz == {"clk": 50.0, "aux_clk": 80.0} and rep.fmax == 50.0
    cp = rep.critical_paths[0]
    assert (cp.src_clock, cp.logic_ns, cp.routing_ns, cp.delay_ns) == (
        "posedge clk", 7.0, 3.0, 10.0)
    assert cp.steps[1].net == "n"
    assert rep.utilization == {"ICESTORM_LC": (10, 5280)}
