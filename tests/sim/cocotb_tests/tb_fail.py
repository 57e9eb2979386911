"""cocotb test that fails on purpose: the runner must report it by name."""

import cocotb


@cocotb.test()
async def fails_on_purpose(dut):
    raise AssertionError("this test fails on purpose")
