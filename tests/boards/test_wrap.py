import pytest

from boards.report import Port
from boards.wrap import WRAPPER_TOP, default_clocks, make_wrapper, vid

PORTS = (Port("a", "input", 3), Port("clk", "input", 1), Port("rst", "input", 1),
         Port("y", "output", 4), Port("z", "output", 1))


def test_default_clocks():
    assert default_clocks(PORTS) == ["clk"]
    assert default_clocks((Port("sys_clk", "input", 1), Port("clk2", "input", 1))) == ["sys_clk"]


def test_wrapper_connects_every_bit_once():
    text = make_wrapper("dut", PORTS)
    assert text.startswith(f"module {WRAPPER_TOP}(input wire clk, input wire hwgen_si")
    # 3 + 1 input bits (a, rst) in the serial-in register, 5 output bits out.
    assert "reg [3:0] hwgen_isr" in text and "reg [4:0] hwgen_osr" in text
    assert ".a(hwgen_isr[2:0])" in text and ".rst(hwgen_isr[3:3])" in text
    assert ".y(hwgen_o[3:0])" in text and ".z(hwgen_o[4:4])" in text
    assert ".clk(clk)" in text and text.rstrip().endswith("endmodule")


def test_single_bit_edges():
    text = make_wrapper("d", (Port("clk", "input", 1), Port("q", "output", 1)))
    assert "hwgen_isr" not in text and "hwgen_osr <= hwgen_load ? hwgen_o : 1'b0" in text


def test_escaped_identifiers():
    assert vid("abc_1") == "abc_1"
    assert vid("a.b") == "\\a.b "


@pytest.mark.parametrize("ports,clocks,match", [
    ((Port("x", "input", 1), Port("y", "output", 1)), None, "no clock"),
    (PORTS, ["ck"], "not among the ports"),
    ((Port("clk", "input", 1), Port("io", "inout", 2), Port("y", "output", 1)), None, "inout"),
    ((Port("clk", "input", 1), Port("a", "input", 2)), None, "no outputs"),
])
def test_wrapper_errors(ports, clocks, match):
    with pytest.raises(ValueError, match=match):
        make_wrapper("dut", ports, clocks)
