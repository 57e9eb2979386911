"""The fixed latencies the RTL implements are the timing contract's (mapping.timing),
measured in simulation; rejected components leave no unused-elaboratable warning."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, unsigned
from amaranth.lib import wiring
from amaranth.sim import Simulator
from test_rtl_accelerator import _arch, random_input, random_layer, run_accelerator

from hwgen.compiler.codegen import add_instruction, pool_instruction
from hwgen.compiler.program import AddLayer, PoolLayer, compile_program
from hwgen.rtl.accelerator import Accelerator, GenerationError
from hwgen.rtl.array import SystolicArray
from hwgen.rtl.eltwise import Pool, ResidualAdd
from hwgen.rtl.eltwise_engine import EltwiseEngine
from hwgen.rtl.memory import ConstTable
from hwgen.rtl.pe import PE
from hwgen.rtl.postproc import PostProc
from mapping import timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest


def _run_elt(arch: ArchSpec, word: int, mem: np.ndarray, max_cycles: int = 500):
    """Start the element-wise engine on ELT ``word`` over scratchpad ``mem`` (synchronous
    reads, as ActivationScratchpad); return per cycle (read?, write mask, busy)."""
    dut = EltwiseEngine(arch)
    trace = []

    async def bench(ctx):
        ctx.set(dut.cmd.go, 1)
        ctx.set(dut.cmd.instr.as_value(), word)
        rd_next = None
        for _ in range(max_cycles):
            if rd_next is not None:  # data of last cycle's read
                for r, a in enumerate(rd_next):
                    ctx.set(dut.act_rd.data[r], int(mem[a % len(mem)]))
            en = ctx.get(dut.act_rd.en)
            rd_next = [ctx.get(dut.act_rd.addr[r]) for r in range(arch.rows)] if en else None
            trace.append((bool(en), ctx.get(dut.act_wr.mask), bool(ctx.get(dut.cmd.busy))))
            await ctx.tick()
            ctx.set(dut.cmd.go, 0)
            if len(trace) > 2 and not trace[-1][2] and not ctx.get(dut.cmd.busy):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return trace


@pytest.mark.parametrize("kind", ["add", "max", "avg"])
def test_eltwise_engine_latency_is_the_timing_contract(kind):
    """Every result is written ELT_LATENCY cycles after the read that completes it, and
    the engine is busy for its issues + ELT_LATENCY cycles (mapping.timing.pool_cycles /
    add_cycles without the LAYER_SETUP of the sequencer)."""
    arch = ArchSpec(rows=2, cols=3, act_words=256, w_words=64, acc_words=64, ext_word_bits=16)
    rng = np.random.default_rng(4)
    mem = rng.integers(-128, 128, size=256)
    if kind == "add":
        e = 5
        word = add_instruction(arch, AddLayer("a", (1, 1, e), 1 << 14, 1 << 13, 15), 0, 0, 10,
                               40)
        groups, per_group = -(-e // arch.rows), 2
        issues = timing.add_cycles(e, arch) - timing.LAYER_SETUP - timing.ELT_LATENCY
    else:
        pl = PoolLayer("p", kind, 4, 4, 3, 2, 2, 0, mult=1 << 14, shift=16)
        word = pool_instruction(arch, pl, 0, 0, 100)
        g = pl.geometry()
        window = g["kh"] * g["kw"]
        groups, per_group = g["P"] * g["Q"] * -(-pl.C // arch.rows), window
        issues = timing.pool_issues(g["P"] * g["Q"], pl.C, window, arch)
    trace = _run_elt(arch, word, mem)
    reads = [t for t, (rd, _, _) in enumerate(trace) if rd]
    writes = [t for t, (_, mask, _) in enumerate(trace) if mask]
    busy = [t for t, (_, _, b) in enumerate(trace) if b]
    assert len(reads) == issues == groups * per_group
    assert reads == list(range(reads[0], reads[0] + issues))  # back to back
    completing = reads[per_group - 1::per_group]  # the read that completes each result
    assert [w - r for w, r in zip(writes, completing, strict=True)] == \
        [timing.ELT_LATENCY] * groups
    assert busy == list(range(1, 1 + issues + timing.ELT_LATENCY))
    assert writes[-1] == busy[-1]  # busy ends with the last write


def test_post_processing_latency_is_the_timing_contract(sim_helpers):
    """POST_LATENCY = accumulator / parameter read (1) + PostProc's measured pipeline."""
    arch = ArchSpec(rows=2, cols=2)
    dut = PostProc(arch)
    seen = []

    async def bench(ctx):
        ctx.set(dut.in_valid, 1)
        for _ in range(6):
            seen.append(ctx.get(dut.out_valid))
            await ctx.tick()
            ctx.set(dut.in_valid, 0)

    sim_helpers.run_simulation(dut, bench)
    assert seen.index(1) + 1 == PostProc.latency(arch) + 1 == timing.POST_LATENCY


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_latency_is_the_pipeline_depth(dataflow):
    """The tile pipeline of docs/timing.md: start (1) + read (1) + array + accumulator (1)."""
    for rows, cols in ((1, 1), (2, 5), (8, 8), (5, 3)):
        arch = ArchSpec(rows=rows, cols=cols, dataflow=dataflow)
        lat = SystolicArray.latency(arch)
        if dataflow == "ws":
            assert timing.ws_pipeline_depth(arch) == 1 + 1 + lat + 1
        else:  # the drained rows follow the first one
            assert timing.os_pipeline_depth(arch) == 1 + 1 + lat + (rows - 1) + 1


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_run_cycles_are_the_timing_contract(dataflow):
    """start..done = input stream + layers + output stream + RUN_OVERHEAD."""
    arch = _arch(dataflow=dataflow)
    nest = LoopNest.gemm(5, 4, 6)
    rng = np.random.default_rng(9)
    layer = random_layer(rng, arch, nest, (3, 4, 6), ("m", "n", "k"))
    prog = compile_program(arch, [layer])
    x = random_input(rng, arch, nest)
    _, layers, run = run_accelerator(Accelerator(arch, prog), x)
    assert run == timing.run_cycles(prog.input_count, sum(layers), prog.output_count)
    assert layers == [timing.layer_cycles(layer.mapping, arch).cycles]


def _rejections():
    arch = ArchSpec(rows=2, cols=2)
    bad_prog = compile_program(
        arch, [random_layer(np.random.default_rng(0), arch, LoopNest.gemm(2, 2, 2), (2, 2, 2),
                            ("m", "n", "k"))])
    return [
        (lambda: PE(8, 8, 8), ValueError),
        (lambda: SystolicArray(arch, tag_width=0), ValueError),
        (lambda: PostProc(arch, lanes=0), ValueError),
        (lambda: Pool(arch, out_width=1), ValueError),
        (lambda: ResidualAdd(arch, lanes=300), ValueError),
        (lambda: ConstTable(unsigned(4), [1, 2, 3], 2, addr_bits=1), ValueError),
        (lambda: Accelerator(arch, bad_prog, rom_budget_bits=1), GenerationError),
        (lambda: Accelerator(arch.replace(cols=3), bad_prog), GenerationError),
    ]


def test_rejected_components_leave_no_unused_warning():
    """Arguments are checked before the component exists: nothing is left to warn about."""
    cases = _rejections()
    Fragment.get(Module(), None)  # Amaranth enables the warning once elaboration has begun

    class Rejects(wiring.Component):  # what the warning looks like (the check is sensitive)
        def __init__(self):
            raise ValueError("rejected")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            Rejects()
        gc.collect()
    assert any("never used" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for make, exc in cases:
            with pytest.raises(exc):
                make()
        gc.collect()
    assert [str(w.message) for w in caught if "never used" in str(w.message)] == []
