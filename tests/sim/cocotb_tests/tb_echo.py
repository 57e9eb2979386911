"""cocotb test that hands its params back unchanged (runner round trip)."""

import cocotb

from sim.cocotb_lib import clock_and_reset, load_params, write_results


@cocotb.test()
async def echo(dut):
    await clock_and_reset(dut, reset_cycles=1)
    write_results(echo=load_params())


@cocotb.test()
async def second(dut):
    write_results(second_ran=True)
