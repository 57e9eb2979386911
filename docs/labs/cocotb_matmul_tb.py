"""cocotb testbench of lab 4b: stream operand vectors into the matrix unit, collect result rows.

This module runs *inside* the simulator: ``sim.runner.run_cocotb`` builds the
Verilog with Verilator, starts it, and imports this file as the cocotb test
module. Parameters arrive as JSON (``sim.cocotb_lib.load_params``) and results
go back the same way (``write_results``), so the testbench holds no knowledge
of matrices or tiling: lab 4b decides what to send and what to expect.

Parameters (all plain JSON):

- ``rows``/``cols``/``in_bits``/``w_bits``/``acc_bits``: the array's shape and widths,
- ``vectors``: one entry per clock cycle, ``[valid, first, last, tag, a_lanes, b_lanes]``
  (``a_lanes``: ``rows`` signed ints, ``b_lanes``: ``cols`` signed ints),
- ``expected``: ``{str(tag): [cols signed ints]}``, the result row each tag must carry.

The ports are Amaranth ``ArrayLayout`` s, which Verilog sees as one flat bit
vector per port: lane ``i`` of an ``n``-bit array occupies bits
``[i*n, (i+1)*n)``, two's complement. :func:`pack` / :func:`unpack` convert.

Timing convention: the driver writes vector ``n`` just after a rising edge,
so it is on the input ports during cycle ``n`` (counted from the first vector)
and the design latches it at the edge that ends that cycle. Outputs are read
in the ``ReadOnly`` phase after each edge; a row read after the edge that ends
cycle ``m - 1`` is recorded as cycle ``m``.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import NextTimeStep, ReadOnly, RisingEdge

from sim.cocotb_lib import clock_and_reset, load_params, read_int, write_int, write_results


def pack(lanes, bits: int) -> int:
    """Little-endian concatenation of signed ``bits``-wide lanes (lane 0 = LSBs)."""
    word = 0
    for i, v in enumerate(lanes):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= int(v) <= hi:
            raise ValueError(f"lane {i} value {v} does not fit {bits} signed bits [{lo}, {hi}]")
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def unpack(word: int, bits: int, lanes: int) -> list[int]:
    """Inverse of :func:`pack`: ``lanes`` signed ``bits``-wide values."""
    out = []
    for i in range(lanes):
        v = (word >> (i * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


@cocotb.test()
async def matmul_rows_are_bit_exact(dut):
    """Drive every vector, one per cycle; every result row must equal its expected row."""
    p = load_params()
    rows, cols, acc_bits = p["rows"], p["cols"], p["acc_bits"]
    vectors, expected = p["vectors"], p["expected"]
    for port in (dut.valid, dut.first, dut.last):
        port.value = 0
    clock = await clock_and_reset(dut, reset_cycles=2)
    start = clock.cycle()  # the edge that released reset; vector 0 is on the ports after it
    got: list[list] = []
    # Drain time after the last vector: the last pass's last row leaves
    # cols + rows cycles after its last vector (see lab 4b); allow a margin.
    for n in range(len(vectors) + rows + cols + 4):
        if n < len(vectors):
            valid, first, last, tag, a, b = vectors[n]
            dut.valid.value, dut.first.value, dut.last.value = valid, first, last
            write_int(dut.tag, tag)
            write_int(dut.a, pack(a, p["in_bits"]))
            write_int(dut.b, pack(b, p["w_bits"]))
        else:
            dut.valid.value = dut.first.value = dut.last.value = 0
        await RisingEdge(dut.clk)
        await ReadOnly()
        if read_int(dut.c_valid):
            row = unpack(read_int(dut.c), acc_bits, cols)
            got.append([clock.cycle() - start, read_int(dut.c_tag), row])
        await NextTimeStep()  # leave the read-only phase before driving the next vector

    mismatches = [(tag, row, expected.get(str(tag))) for _, tag, row in got
                  if expected.get(str(tag)) != row]
    write_results(rows_out=got, mismatches=len(mismatches))
    assert len(got) == len(expected), f"expected {len(expected)} result rows, got {len(got)}"
    assert not mismatches, f"first mismatch (tag, hardware, numpy): {mismatches[0]}"
