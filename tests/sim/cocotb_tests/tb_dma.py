"""cocotb test for designs.DmaReader against sim.cocotb_lib.ExternalMemoryModel.

Params: ``memory`` (ints), ``cases``: list of {latency, bandwidth, addr, words}.
Results: ``cases``: per case the model's request cycle and word cycles, the
start edge, the hardware ``cycles`` and ``sum``.
"""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from designs import ADDR_BITS, REQ_LAYOUT

from sim.cocotb_lib import (
    ExternalMemoryModel,
    StreamPort,
    clock_and_reset,
    load_params,
    read_int,
    struct_fields,
    write_results,
)


@cocotb.test()
async def bursts(dut):
    params = load_params()
    clock = await clock_and_reset(dut)
    fields = struct_fields(REQ_LAYOUT)
    assert fields["addr"] == (0, ADDR_BITS)
    model = ExternalMemoryModel(clock, StreamPort.of(dut, "req"), StreamPort.of(dut, "rsp"),
                                params["memory"], latency=0, bandwidth=1.0,
                                addr_field=fields["addr"], words_field=fields["words"]).start()
    dut.start.value = 0
    out = []
    for case in params["cases"]:
        model.latency, model.bandwidth = case["latency"], case["bandwidth"]
        dut.addr.value = case["addr"]
        dut.words.value = case["words"]
        dut.start.value = 1
        await RisingEdge(dut.clk)
        start_cycle = clock.cycle()
        dut.start.value = 0
        for _ in range(10 * case["words"] + case["latency"] + 50):
            await ReadOnly()
            if read_int(dut.done):
                break
            await RisingEdge(dut.clk)
        else:
            raise AssertionError(f"DMA reader did not finish case {case}")
        burst = model.bursts[-1]
        out.append({"start_cycle": start_cycle, "request_cycle": burst.request_cycle,
                    "word_cycles": burst.word_cycles, "hw_cycles": read_int(dut.cycles),
                    "sum": read_int(dut.sum), "addr": burst.addr, "words": burst.words})
        await RisingEdge(dut.clk)
    write_results(cases=out)
