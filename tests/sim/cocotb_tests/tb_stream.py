"""cocotb test for designs.StreamAccumulator: drive a stream, collect the running sums.

Params: ``values`` (ints), ``idle_prob``, ``backpressure``, ``seed``.
Results: ``outputs``, ``in_cycles``, ``out_cycles``, ``counter_checks``
(pairs of [SimClock cycle, hardware ``cycles`` counter] read in ReadOnly).
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.cocotb_lib import (
    StreamDriver,
    StreamMonitor,
    StreamPort,
    clock_and_reset,
    load_params,
    read_counter,
    read_counters,
    write_results,
)

RESET_CYCLES = 2


@cocotb.test()
async def accumulate(dut):
    params = load_params()
    values = params["values"]
    clock = await clock_and_reset(dut, reset_cycles=RESET_CYCLES)
    driver = StreamDriver(StreamPort.of(dut, "i"), clock, idle_prob=params.get("idle_prob", 0.0),
                          seed=params.get("seed", 0))
    monitor = StreamMonitor(StreamPort.of(dut, "o"), clock, signed=True,
                            backpressure=params.get("backpressure", 0.0),
                            seed=params.get("seed", 0) + 1).start()
    await driver.send(values)
    outputs = await monitor.wait_for(len(values), timeout_cycles=20 * len(values) + 100)

    counter_checks = []
    for _ in range(3):
        await RisingEdge(dut.clk)
        await ReadOnly()
        counter_checks.append([clock.cycle(), read_counter(dut, "cycles")])
    write_results(outputs=outputs, in_cycles=driver.cycles, out_cycles=monitor.cycles[:len(values)],
                  counter_checks=counter_checks, counters=read_counters(dut),
                  reset_cycles=RESET_CYCLES)
