"""sim.cocotb_lib in both simulators: streams bit-exact against numpy, memory timing closed form."""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mapping.arch import ArchSpec
from mapping.timing import DMA_SETUP, dma_cycles
from sim import cocotb_lib
from sim.cocotb_lib import (
    ExternalMemoryModel,
    burst_word_cycle,
    element_writes,
    masked_write,
    struct_fields,
)
from sim.runner import run_cocotb
from sim.tools import SimulatorNotFoundError, find_simulator

TB = Path(__file__).parent / "cocotb_tests"
sys.path.insert(0, str(TB))
import designs  # noqa: E402

SIMS = ["verilator", "icarus"]
IN_BITS, OUT_BITS = 8, 12  # a 12-bit running sum of 8-bit inputs wraps: exercises two's complement


def need(simulator: str) -> None:
    try:
        find_simulator(simulator)
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def acc_verilog() -> str:
    return designs.to_verilog(designs.StreamAccumulator(IN_BITS, OUT_BITS), "stream_acc")


@pytest.fixture(scope="session")
def dma_verilog() -> str:
    return designs.to_verilog(designs.DmaReader(), "dma_reader")


def golden_running_sum(values: list[int]) -> list[int]:
    """numpy reference: cumulative sum wrapped to a signed OUT_BITS-bit integer."""
    sums = np.cumsum(np.asarray(values, dtype=np.int64)) % (1 << OUT_BITS)
    return np.where(sums >= 1 << (OUT_BITS - 1), sums - (1 << OUT_BITS), sums).tolist()


# ---- streams --------------------------------------------------------------------------------------
@pytest.mark.parametrize("simulator", SIMS)
@pytest.mark.parametrize("idle_prob, backpressure", [(0.0, 0.0), (0.5, 0.0), (0.3, 0.4)])
def test_stream_accumulator_bit_exact(simulator, idle_prob, backpressure, acc_verilog):
    need(simulator)
    # extremes first, then a positive drift so the 12-bit sum wraps (twice)
    values = [127, -128, -128, 127] + np.random.default_rng(11).integers(-64, 128, 296).tolist()
    expected = golden_running_sum(values)
    assert max(np.cumsum(values)) > 2 * (1 << OUT_BITS)
    r = run_cocotb(acc_verilog, "stream_acc", TB / "tb_stream.py",
                   {"values": values, "idle_prob": idle_prob, "backpressure": backpressure,
                    "seed": 3}, simulator=simulator)
    assert r["outputs"] == expected
    ins, outs = r["in_cycles"], r["out_cycles"]
    assert all(o > i for i, o in zip(ins, outs, strict=True))
    if idle_prob == 0 and backpressure == 0:  # full throughput: one value per cycle, 1 cycle later
        assert ins == list(range(ins[0], ins[0] + len(values)))
        assert outs == [c + 1 for c in ins]
    else:  # random stalls really happened
        assert ins[-1] - ins[0] > len(values) and np.diff(outs).max() > 1
    if backpressure == 0:  # the design never waits for ready: each sum leaves 1 cycle later
        assert outs == [c + 1 for c in ins]
    for cycle, counter in r["counter_checks"]:  # hardware counter vs testbench edge numbering
        assert counter == cycle - r["reset_cycles"]
    assert set(r["counters"]) == {"cycles"}


# ---- external memory ------------------------------------------------------------------------------
MEMORY = [(7919 * i + 13) % (1 << 32) for i in range(600)]
CASES = [  # latency, bandwidth, addr, words
    (0, 1.0, 0, 1), (0, 1.0, 5, 16), (1, 1.0, 40, 9), (8, 1.0, 100, 33),
    (0, 0.5, 7, 1), (3, 0.5, 200, 12), (8, 0.5, 300, 17),
    (0, 0.25, 1, 5), (5, 0.25, 400, 11),
    (2, 0.75, 500, 10), (4, 0.375, 50, 13),
]


@pytest.mark.parametrize("simulator", SIMS)
def test_external_memory_timing_equals_closed_form(simulator, dma_verilog):
    need(simulator)
    cases = [{"latency": lat, "bandwidth": bw, "addr": a, "words": w} for lat, bw, a, w in CASES]
    r = run_cocotb(dma_verilog, "dma_reader", TB / "tb_dma.py",
                   {"memory": MEMORY, "cases": cases}, simulator=simulator)
    assert len(r["cases"]) == len(CASES)
    for (lat, bw, addr, words), got in zip(CASES, r["cases"], strict=True):
        t = got["request_cycle"]
        b = Fraction(bw)  # exact: these bandwidths are binary fractions
        expected_words = [t + lat + math.ceil((i + 1) / b) for i in range(words)]
        assert got["word_cycles"] == expected_words, (lat, bw, words)
        # the whole burst: ext_latency + ceil(words / ext_bandwidth) after the request handshake,
        # which is mapping.timing's DMA row without the DMA engine's own set-up
        arch = ArchSpec(weight_store="external", ext_latency=lat, ext_bandwidth=bw)
        assert got["word_cycles"][-1] - t == dma_cycles(words, arch) - DMA_SETUP
        # the design requests one cycle after start and counts start .. last word
        assert t == got["start_cycle"] + 1
        assert got["hw_cycles"] == 1 + lat + math.ceil(words / b)
        assert got["sum"] == sum(MEMORY[addr:addr + words]) % (1 << 32)
        assert (got["addr"], got["words"]) == (addr, words)


# ---- pure helpers (no simulator) ------------------------------------------------------------------
def test_burst_word_schedule_formula():
    assert [burst_word_cycle(10, i, 3, 1.0) for i in range(3)] == [14, 15, 16]
    assert [burst_word_cycle(10, i, 0, 0.5) for i in range(3)] == [12, 14, 16]
    assert [burst_word_cycle(0, i, 0, 0.25) for i in range(2)] == [4, 8]
    assert [burst_word_cycle(0, i, 0, 0.75) for i in range(4)] == [2, 3, 4, 6]


def test_struct_fields_of_request_layout():
    assert struct_fields(designs.REQ_LAYOUT) == {"addr": (0, 16), "words": (16, 16)}


@pytest.mark.parametrize("kwargs, message", [
    ({"latency": -1, "bandwidth": 1.0}, "latency"),
    ({"latency": 2.5, "bandwidth": 1.0}, "latency"),
    ({"latency": 0, "bandwidth": 0.0}, "bandwidth"),
    ({"latency": 0, "bandwidth": 1.5}, r"\(0, 1\]"),
])
def test_memory_model_rejects_bad_timing(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExternalMemoryModel(None, None, None, [], addr_field=(0, 8), words_field=(8, 8), **kwargs)


def test_memory_model_write_flag_needs_word_bits():
    with pytest.raises(ValueError, match="word_bits"):
        ExternalMemoryModel(None, None, None, [], latency=0, bandwidth=1.0, addr_field=(0, 8),
                            words_field=(8, 8), write_bit=16)


# ---- writes and the host's input write (pure Python parts) ----------------------------------------
def bitwise_merge(old: int, data: int, mask: int, width: int) -> int:
    """Closed form of a masked write, bit by bit: bit j from data where mask bit j is set."""
    return sum(((data if (mask >> j) & 1 else old) >> j & 1) << j for j in range(width))


def test_masked_write_equals_bitwise_merge():
    rng = np.random.default_rng(5)
    for width in (1, 8, 32, 64, 100):
        for _ in range(20):
            old, data, mask = (int.from_bytes(rng.bytes(13), "little") % (1 << width)
                               for _ in range(3))
            assert masked_write(old, data, mask) == bitwise_merge(old, data, mask, width)
    assert masked_write(0xFFFF, 0x0000, 0x0F0F) == 0xF0F0
    assert masked_write(0x1234, 0xABCD, 0) == 0x1234
    assert masked_write(0x1234, 0xABCD, 0xFFFF) == 0xABCD


def packed_reference(memory: list[int], addr: int, apw: int, bits: int, values, word_bits: int):
    """Independent closed form of the host input write (docs/timing.md): words as bit lists,
    element e's two's-complement bits (LSB first) at bit (e % apw)*bits of word addr + e//apw."""
    words = [[(w >> j) & 1 for j in range(word_bits)] for w in memory]
    for e, v in enumerate(values):
        twos = format(v % (1 << bits), f"0{bits}b")[::-1]  # LSB first
        for j, bit in enumerate(twos):
            words[addr + e // apw][(e % apw) * bits + j] = int(bit)
    return [sum(b << j for j, b in enumerate(w)) for w in words]


@pytest.mark.parametrize("word_bits, apw, bits, addr, count", [
    (32, 4, 8, 3, 10),     # tiny-4x4-like: 4 lanes of 8 bits, last word partly filled
    (64, 8, 8, 0, 16),     # full words
    (32, 3, 10, 5, 7),     # lanes not filling the word (2 spare bits stay untouched)
    (128, 16, 8, 1, 33),   # wider than a machine word
    (16, 1, 4, 2, 5),      # one element per word
])
def test_write_elements_equals_closed_form(word_bits, apw, bits, addr, count):
    rng = np.random.default_rng(word_bits + count)
    words = addr + -(-count // apw) + 2
    old = [int.from_bytes(rng.bytes(16), "little") % (1 << word_bits) for _ in range(words)]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = [lo, hi, -1, 0] + rng.integers(lo, hi + 1, count - 4).tolist()
    model = ExternalMemoryModel(None, None, None, list(old), latency=0, bandwidth=1.0,
                                addr_field=(0, 8), words_field=(8, 8), write_bit=16,
                                word_bits=word_bits)
    model.write_elements(addr, apw, bits, values)
    assert model.memory == packed_reference(old, addr, apw, bits, values, word_bits)
    # one masked write per element, each touching only its own lane
    writes = element_writes(addr, apw, bits, values)
    assert [a for a, _, _ in writes] == [addr + e // apw for e in range(count)]
    assert all(d & ~m == 0 and m == ((1 << bits) - 1) << (e % apw) * bits
               for e, (_, d, m) in enumerate(writes))


def test_write_elements_and_words_errors():
    model = ExternalMemoryModel(None, None, None, [0] * 4, latency=0, bandwidth=1.0,
                                addr_field=(0, 8), words_field=(8, 8), write_bit=16,
                                word_bits=32)
    with pytest.raises(ValueError, match="do not fit a 32-bit word"):
        model.write_elements(0, 5, 8, [1])
    with pytest.raises(ValueError, match="element 8 goes to address 4, outside"):
        model.write_elements(2, 4, 8, range(9))
    with pytest.raises(ValueError, match="burst writes address 7, outside"):
        model.write_word(7, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        element_writes(0, 0, 8, [1])
    sparse = ExternalMemoryModel(None, None, None, {}, latency=0, bandwidth=1.0,
                                 addr_field=(0, 8), words_field=(8, 8))
    sparse.write_word(1000, 0xAB, 0xF0)  # a mapping memory: unwritten words read as 0
    assert sparse.memory == {1000: 0xA0}


def test_offered_write_word_splits_data_and_mask():
    """wdata payload: data in bits [0, W), mask in [W, 2W); X/Z allowed only where unmasked."""
    from types import SimpleNamespace

    from cocotb.types import LogicArray

    def offered(text: str):
        model = ExternalMemoryModel(SimpleNamespace(cycle=lambda: 41), None, None, [0],
                                    latency=0, bandwidth=1.0, addr_field=(0, 8),
                                    words_field=(8, 8), write_bit=16, word_bits=8,
                                    wdata=SimpleNamespace(payload=SimpleNamespace(
                                        value=LogicArray(text))))
        return model._take_word()

    assert offered("00001111" "10100101") == (0b10100101, 0b00001111)
    assert offered("00001111" "XXXZ0101") == (0b0101, 0b00001111)  # X only in unmasked bits
    with pytest.raises(ValueError, match="cycle 42 holds X/Z"):
        offered("00011111" "XXXZ0101")
    with pytest.raises(ValueError, match="X/Z"):
        offered("0000111X" "00000101")


def test_stream_helpers_reject_bad_probabilities():
    with pytest.raises(ValueError, match="idle_prob"):
        cocotb_lib.StreamDriver(None, None, idle_prob=1.0)
    with pytest.raises(ValueError, match="backpressure"):
        cocotb_lib.StreamMonitor(None, None, backpressure=-0.1)
    with pytest.raises(ValueError, match="period_ns"):
        cocotb_lib.SimClock(None, period_ns=7)


def test_params_and_results_files(monkeypatch, tmp_path):
    params, results = tmp_path / "p.json", tmp_path / "r.json"
    params.write_text(json.dumps({"a": [1, 2]}))
    monkeypatch.setenv(cocotb_lib.PARAMS_ENV, str(params))
    monkeypatch.setenv(cocotb_lib.RESULTS_ENV, str(results))
    assert cocotb_lib.load_params() == {"a": [1, 2]}
    cocotb_lib.write_results({"x": np.int64(3)})
    cocotb_lib.write_results(y=[1])
    assert json.loads(results.read_text()) == {"x": 3, "y": [1]}
    with pytest.raises(ValueError, match="reserved"):
        cocotb_lib.write_results(_run=1)
    monkeypatch.delenv(cocotb_lib.PARAMS_ENV)
    with pytest.raises(RuntimeError, match="run_cocotb"):
        cocotb_lib.load_params()
