"""cocotb test module for the generated accelerator top (``hwgen.rtl.accelerator.Accelerator``).

Run through :func:`sim.accelerator.simulate` (``sim.runner.run_cocotb``). One
simulation processes many samples: per sample it pulses ``start``, streams the
input (``inp``), waits for ``done`` (no per-cycle Python while the program
runs), and reads ``run_cycles`` and every per-layer counter (``layer_sel`` ->
``layer_count``). A :class:`sim.cocotb_lib.StreamMonitor` collects the output
stream; with an external-memory port an :class:`ExternalMemoryModel` serves the
external memory (the weight image, then a spilled program's activation regions) with
the ArchSpec's latency and bandwidth, reads and writes. A spilled program
(``ext.input_ext``) has each sample written into the memory before its start and
nothing streamed into ``inp`` (docs/timing.md).

Params: ``inputs`` (list of per-sample element lists, stream order),
``output_count``, ``layers``, ``max_cycles`` (per sample), ``progress``
(a file path or null), ``ext`` (null or ``{memory, latency, bandwidth,
addr_field, words_field, write_bit, word_bits, input_ext}``, ``input_ext`` null or
``[word address, elements per word, bits per element]``; see
``sim.accelerator._ext_params``).
Results: ``outputs`` (per sample), ``run_cycles``, ``layer_cycles`` (per sample
per layer), ``total_cycles`` (hardware free-running counter at the end),
``loop_seconds`` (wall time of the sample loop), ``ext_words`` ([words the external
memory served, words it took], all samples; [0, 0] without one; as sim.fast reports).
"""

from __future__ import annotations

import time

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from sim.cocotb_lib import (
    ExternalMemoryModel,
    StreamDriver,
    StreamMonitor,
    StreamPort,
    clock_and_reset,
    load_params,
    read_counter,
    write_results,
)

PERIOD_NS = 10


def _progress(path: str | None, done: int, total: int) -> None:
    if path:
        with open(path, "w") as handle:
            handle.write(f"{done} {total}\n")


@cocotb.test()
async def run_samples(dut):
    params = load_params()
    inputs, n_out, n_layers = params["inputs"], params["output_count"], params["layers"]
    progress = params.get("progress")
    dut.start.value = 0
    dut.layer_sel.value = 0
    clock = await clock_and_reset(dut, period_ns=PERIOD_NS)
    driver = StreamDriver(StreamPort.of(dut, "inp"), clock)
    monitor = StreamMonitor(StreamPort.of(dut, "out"), clock, signed=True,
                            describe=lambda k: f"sample {k // n_out}, output element "
                                               f"{k % n_out}").start()
    ext = params.get("ext")
    memory, input_ext = None, None
    if ext:
        wdata = StreamPort.of(dut, "ext__wdata") if hasattr(dut, "ext__wdata__valid") else None
        memory = ExternalMemoryModel(
            clock, StreamPort.of(dut, "ext__req"), StreamPort.of(dut, "ext__resp"),
            ext["memory"], latency=ext["latency"], bandwidth=ext["bandwidth"],
            addr_field=tuple(ext["addr_field"]), words_field=tuple(ext["words_field"]),
            wdata=wdata, write_bit=ext.get("write_bit", -1),
            word_bits=ext.get("word_bits", 0)).start()
        input_ext = ext.get("input_ext")
    outputs, run_cycles, layer_cycles = [], [], []
    step = max(1, len(inputs) // 100)
    t0 = time.perf_counter()
    for s, sample in enumerate(inputs):
        if input_ext is not None:  # a spilled program: the host writes the input into memory
            memory.write_elements(*input_ext, sample)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        if input_ext is None:
            await driver.send(sample)
        try:
            await with_timeout(RisingEdge(dut.done), params["max_cycles"] * PERIOD_NS, "ns")
        except cocotb.triggers.SimTimeoutError:
            raise AssertionError(f"sample {s}: the accelerator did not finish within "
                                 f"{params['max_cycles']} cycles") from None
        await ReadOnly()
        run_cycles.append(read_counter(dut, "run_cycles"))
        counts = []
        for i in range(n_layers):
            await RisingEdge(dut.clk)
            dut.layer_sel.value = i
            await ReadOnly()
            counts.append(read_counter(dut, "layer_count"))
        layer_cycles.append(counts)
        got = monitor.values[s * n_out:]
        if len(got) != n_out:
            raise AssertionError(f"sample {s}: {len(got)} output values, expected {n_out}")
        outputs.append(got)
        await RisingEdge(dut.clk)
        if s % step == 0 or s == len(inputs) - 1:
            _progress(progress, s + 1, len(inputs))
    loop_seconds = time.perf_counter() - t0
    await ReadOnly()
    total = read_counter(dut, "cycle_count")
    bursts = memory.bursts if memory is not None else []
    ext_words = [sum(len(b.word_cycles) for b in bursts if not b.write),
                 sum(len(b.word_cycles) for b in bursts if b.write)]
    write_results(outputs=outputs, run_cycles=run_cycles, layer_cycles=layer_cycles,
                  total_cycles=total, loop_seconds=loop_seconds, ext_words=ext_words)
