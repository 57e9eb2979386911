"""An output that depends on uninitialised state is a one-line error naming the sample and
the cycle: in the fast engine (2-state Verilator: two runs with different random power-up
values differ) and in the cocotb engine on Icarus (4-state: X on the output port).

The design speaks the accelerator's protocol (start, input stream, output stream, done,
counters) but streams out words of a memory nothing ever writes."""

from __future__ import annotations

import numpy as np
import pytest
from test_accelerator import need

from sim import fast
from sim.accelerator import TB_MODULE
from sim.runner import SimulationError, run_cocotb

FAKE = """module fake(clk, rst, start, busy, done, inp__valid, inp__ready, inp__payload,
            out__valid, out__ready, out__payload, cycle_count, run_cycles, layer_sel,
            layer_count);
  input clk, rst, start, inp__valid, out__ready;
  input [7:0] inp__payload, layer_sel;
  output busy, done, inp__ready, out__valid;
  output [7:0] out__payload;
  output [47:0] cycle_count, run_cycles;
  output [31:0] layer_count;
  reg [1:0] state;
  reg [2:0] cnt;
  reg [7:0] junk [0:3];  // never written: its contents are whatever power-up left
  reg [47:0] cyc, run;
  assign inp__ready = state == 2'd1;
  assign out__valid = state == 2'd2;
  assign out__payload = junk[cnt[1:0]];
  assign busy = state == 2'd1 || state == 2'd2;
  assign done = state == 2'd3;
  assign cycle_count = cyc;
  assign run_cycles = run;
  assign layer_count = 32'd7;
  always @(posedge clk) begin
    cyc <= rst ? 48'd0 : cyc + 48'd1;
    if (rst) begin
      state <= 2'd0; cnt <= 3'd0; run <= 48'd0;
    end else case (state)
      2'd0, 2'd3: if (start) begin state <= 2'd1; cnt <= 3'd0; run <= 48'd0; end
      2'd1: begin
        run <= run + 48'd1;
        if (inp__valid) begin
          if (cnt == 3'd3) begin state <= 2'd2; cnt <= 3'd0; end else cnt <= cnt + 3'd1;
        end
      end
      2'd2: begin
        run <= run + 48'd1;
        if (out__ready) begin
          if (cnt == 3'd3) state <= 2'd3;
          cnt <= cnt + 3'd1;
        end
      end
    endcase
  end
endmodule
"""
INPUTS = np.arange(8, dtype=np.int64).reshape(2, 4)


def test_fast_engine_names_sample_and_cycle_of_an_uninitialised_output(tmp_path):
    need("verilator")
    harness = fast.build_harness(FAKE, "fake")
    kw = dict(output_count=4, layers=1, out_bits=8, max_cycles=100)
    plain = fast.run_harness(harness, INPUTS, run_dir=tmp_path / "a", **kw)
    assert plain["outputs"].shape == (2, 4)  # a 2-state run alone cannot see it
    with pytest.raises(SimulationError) as info:
        fast.run_x_checked(harness, INPUTS, run_dir=tmp_path / "b", **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("sample 0, output element ") and ", cycle " in msg
    assert "depends on uninitialised state" in msg


def test_cocotb_engine_on_icarus_names_sample_and_cycle_of_an_x_output():
    need("icarus")
    params = {"inputs": INPUTS.tolist(), "output_count": 4, "layers": 1, "max_cycles": 100,
              "progress": None, "ext": None}
    with pytest.raises(SimulationError) as info:
        run_cocotb(FAKE, "fake", TB_MODULE, params, simulator="icarus")
    msg = str(info.value)
    assert "sample 0, output element 0, cycle " in msg and "X/Z" in msg
