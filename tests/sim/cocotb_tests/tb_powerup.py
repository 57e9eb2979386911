"""cocotb test that reads every word of a memory nobody wrote (power-up contents)."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from sim.cocotb_lib import write_results


@cocotb.test()
async def read_unwritten(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    words = []
    for a in range(16):
        dut.addr.value = a
        await RisingEdge(dut.clk)
        await RisingEdge(dut.clk)
        words.append(str(dut.q.value))
    write_results(words=words)
