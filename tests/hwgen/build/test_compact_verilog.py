"""compact_zero_init: all-zero memory initialisation as a loop, everything else untouched."""

import shutil
import subprocess

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.build.compact_verilog import compact_zero_init

BLOCKS = """module m;
  reg [7:0] zero [0:2];
  initial begin
    zero[0] = 8'd0;
    zero[1] = 8'd0;
    zero[2] = 8'h0;
  end
  reg [7:0] rom [0:1];
  initial begin
    rom[0] = 8'd0;
    rom[1] = 8'd5;
  end
  reg [7:0] gap [0:3];
  initial begin
    gap[0] = 8'd0;
    gap[2] = 8'd0;
  end
endmodule
"""


def test_only_contiguous_all_zero_blocks_become_loops():
    out = compact_zero_init(BLOCKS)
    assert "for (i = 0; i < 3; i = i + 1) zero[i] = 8'd0;" in out
    assert "    rom[1] = 8'd5;\n" in out and "    rom[0] = 8'd0;\n" in out
    assert "    gap[2] = 8'd0;\n" in out
    assert out.count("for (i") == 1
    assert compact_zero_init(out) == out


class TwoMemories(wiring.Component):
    addr: In(3)
    zero: Out(8)
    rom: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.z = z = memory.Memory(shape=8, depth=8, init=[])
        m.submodules.r = r = memory.Memory(shape=8, depth=8, init=[3 * i + 1 for i in range(8)])
        wz, rz = z.write_port(), z.read_port(domain="comb")
        rr = r.read_port(domain="comb")
        m.d.comb += [rz.addr.eq(self.addr), rr.addr.eq(self.addr), self.zero.eq(rz.data),
                     self.rom.eq(rr.data), wz.en.eq(Signal())]
        return m


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
def test_icarus_reads_the_same_memory_contents(tmp_path):
    text = verilog.convert(TwoMemories(), name="two")
    small = compact_zero_init(text)
    assert small != text and "hwgen_zero_init_1" in small
    bench = """module tb;
  reg [2:0] addr; wire [7:0] zero, rom; integer k;
  two dut(.addr(addr), .zero(zero), .rom(rom), .clk(1'b0), .rst(1'b0));
  initial begin
    for (k = 0; k < 8; k = k + 1) begin addr = k; #1 $display("%0d %0d", zero, rom); end
  end
endmodule
"""
    (tmp_path / "two.v").write_text(small)
    (tmp_path / "tb.v").write_text(bench)
    subprocess.run(["iverilog", "-o", "sim", "two.v", "tb.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert [ln for ln in out if ln.strip()] == [f"0 {3 * i + 1}" for i in range(8)]
