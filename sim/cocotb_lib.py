"""Reusable cocotb 2.x pieces for hwgen testbenches.

- :func:`load_params` / :func:`write_results`: the JSON hand-over with
  :func:`sim.runner.run_cocotb`.
- :class:`SimClock`, :func:`clock_and_reset`: a free-running clock whose
  rising edges are numbered (cycle 1 is the first rising edge), and reset.
- :func:`read_counter` / :func:`read_counters`: read hardware cycle counters.
- :class:`StreamPort`, :class:`StreamDriver`, :class:`StreamMonitor`:
  ``amaranth.lib.stream``-style ``<name>__valid`` / ``__ready`` /
  ``__payload`` ports. A transfer happens at the rising edge where valid and
  ready are both high; it is recorded with that edge's cycle number.
- :class:`ExternalMemoryModel`: serves an external-memory request/response
  (and write data) port with the latency and bandwidth of ``docs/timing.md``
  (schedule below); :meth:`ExternalMemoryModel.write_elements` is the host writing a
  tensor (a spilled program's input) into it.

Drivers write signals just after a rising edge and sample in the ``ReadOnly``
phase of the same cycle, so what they see is what the next edge will latch.
Per-cycle Python work dominates simulation time (Verilator runs ~150k
cycles/s free-running but ~5k cycles/s with a coroutine acting every cycle),
so the monitor (without backpressure) and the memory model sleep through idle
cycles instead of polling; start them from a normal (not ``ReadOnly``) phase.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import convert, get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

PARAMS_ENV = "HWGEN_SIM_PARAMS"   # same names as sim.runner (kept free of its imports)
RESULTS_ENV = "HWGEN_SIM_RESULTS"


def load_params() -> dict:
    """The ``params`` dict given to :func:`sim.runner.run_cocotb`."""
    path = os.environ.get(PARAMS_ENV)
    if not path:
        raise RuntimeError(f"{PARAMS_ENV} is not set: run this test through sim.runner.run_cocotb")
    with open(path) as handle:
        return json.load(handle)


def write_results(values: Mapping | None = None, **more) -> None:
    """Merge ``values`` (and keyword values) into the results ``run_cocotb`` returns.

    Keys starting with ``_`` are reserved for the runner. Values must be
    JSON-serialisable (numpy integers are converted).
    """
    update = {**(values or {}), **more}
    bad = [key for key in update if str(key).startswith("_")]
    if bad:
        raise ValueError(f"result keys starting with '_' are reserved: {bad}")
    path = os.environ.get(RESULTS_ENV)
    if not path:
        raise RuntimeError(f"{RESULTS_ENV} is not set: run this test through sim.runner.run_cocotb")
    current = {}
    if os.path.exists(path):
        with open(path) as handle:
            current = json.load(handle)
    current.update(update)
    with open(path, "w") as handle:
        json.dump(current, handle, default=int)


def read_int(handle, signed: bool = False) -> int:
    """The integer value of a signal; raises ValueError if it holds X or Z bits."""
    value = handle.value
    if not value.is_resolvable:
        raise ValueError(f"signal {handle._path} holds {value} (X/Z bits), not a number")
    raw = int(value)
    width = len(handle)
    if signed and raw >= 1 << (width - 1):
        raw -= 1 << width
    return raw


def write_int(handle, value: int) -> None:
    """Drive ``value`` (two's complement, truncated to the signal's width)."""
    handle.value = int(value) & ((1 << len(handle)) - 1)


class SimClock:
    """A clock on ``clk`` with numbered rising edges (race-free, from simulation time).

    ``cycle()`` is the number of rising edges at or before now: right after
    ``await RisingEdge(clk)`` it is that edge's number (the first edge is 1).
    """

    def __init__(self, clk, period_ns: int = 10):
        if period_ns <= 0 or period_ns % 2:
            raise ValueError(f"period_ns must be a positive even number, got {period_ns}")
        self.clk = clk
        self.period_ns = period_ns
        self._period = convert(period_ns, "ns", to="step")
        self._first_edge: int | None = None

    def start(self) -> SimClock:
        """Start driving the clock: low for half a period, then the first rising edge."""
        Clock(self.clk, self.period_ns, unit="ns").start(start_high=False)
        self._first_edge = get_sim_time("step") + self._period // 2
        return self

    def cycle(self) -> int:
        """Rising edges so far (0 before the first)."""
        if self._first_edge is None:
            raise RuntimeError("SimClock.cycle() called before start()")
        now = get_sim_time("step")
        return 0 if now < self._first_edge else (now - self._first_edge) // self._period + 1

    async def edges(self, count: int = 1) -> None:
        """Wait for ``count`` rising edges."""
        for _ in range(count):
            await RisingEdge(self.clk)


async def clock_and_reset(dut, *, clk: str = "clk", rst: str | None = "rst", period_ns: int = 10,
                          reset_cycles: int = 2) -> SimClock:
    """Start the clock on ``dut.<clk>`` and hold ``dut.<rst>`` high for ``reset_cycles`` edges.

    Returns when reset has been released (just after a rising edge).
    """
    if rst is not None:
        getattr(dut, rst).value = 1
    clock = SimClock(getattr(dut, clk), period_ns).start()
    await clock.edges(max(1, reset_cycles))
    if rst is not None:
        getattr(dut, rst).value = 0
    return clock


def read_counter(dut, name: str) -> int:
    """Read the hardware counter ``dut.<name>`` (unsigned); clear error if absent or X."""
    try:
        handle = getattr(dut, name)
    except AttributeError:
        raise ValueError(f"the design has no counter signal {name!r}") from None
    return read_int(handle)


def read_counters(dut, names: Iterable[str] | None = None, prefix: str = "cycles") -> dict:
    """Read several counters: the given ``names``, or every top-level signal named ``prefix*``."""
    if names is None:
        names = sorted(h._name for h in dut if h._name.startswith(prefix))
    return {name: read_counter(dut, name) for name in names}


@dataclass
class StreamPort:
    """Handles of one stream: ``valid`` and ``payload`` required, ``ready`` optional."""

    valid: object
    payload: object
    ready: object = None

    @classmethod
    def of(cls, dut, name: str) -> StreamPort:
        """The ``<name>__valid/__ready/__payload`` ports Amaranth emits for a stream member."""
        def get(suffix, required=True):
            try:
                return getattr(dut, f"{name}__{suffix}")
            except AttributeError:
                if required:
                    raise ValueError(f"the design has no stream port {name}__{suffix}") from None
                return None
        return cls(valid=get("valid"), payload=get("payload"), ready=get("ready", False))


class StreamDriver:
    """Send values into a stream the design consumes.

    ``idle_prob``: chance of an idle cycle (valid low) before each value
    (0 by default); ``seed`` makes it reproducible. ``cycles[i]`` is the edge
    at which value i was transferred.
    """

    def __init__(self, port: StreamPort, clock: SimClock, *, idle_prob: float = 0.0,
                 seed: int = 0):
        if not 0 <= idle_prob < 1:
            raise ValueError(f"idle_prob must be in [0, 1), got {idle_prob}")
        self.port, self.clock, self.idle_prob = port, clock, idle_prob
        self.rng = random.Random(seed)
        self.cycles: list[int] = []
        port.valid.value = 0

    async def send(self, values: Iterable[int]) -> None:
        """Transfer every value in order; returns just after the last transfer's edge."""
        port = self.port
        for value in values:
            while self.idle_prob and self.rng.random() < self.idle_prob:
                port.valid.value = 0
                await RisingEdge(self.clock.clk)
            port.valid.value = 1
            write_int(port.payload, value)
            while True:
                await ReadOnly()
                fire = port.ready is None or read_int(port.ready) == 1
                await RisingEdge(self.clock.clk)
                if fire:
                    self.cycles.append(self.clock.cycle())
                    break
        port.valid.value = 0


class StreamMonitor:
    """Receive every value a design sends on a stream (driving its ``ready``).

    ``backpressure``: chance that ready is low in a cycle (0 by default).
    ``values`` and ``cycles`` grow as transfers happen; call :meth:`start`.
    """

    def __init__(self, port: StreamPort, clock: SimClock, *, signed: bool = False,
                 backpressure: float = 0.0, seed: int = 0,
                 describe: Callable[[int], str] | None = None):
        if not 0 <= backpressure < 1:
            raise ValueError(f"backpressure must be in [0, 1), got {backpressure}")
        self.port, self.clock, self.signed, self.backpressure = port, clock, signed, backpressure
        # names value n of the stream in errors (e.g. "sample 3, output element 1")
        self.describe = describe or (lambda n: f"value {n} of the stream")
        self.rng = random.Random(seed)
        self.values: list[int] = []
        self.cycles: list[int] = []

    def start(self) -> StreamMonitor:
        cocotb.start_soon(self._run())
        return self

    async def _run(self) -> None:
        port = self.port
        while True:
            ready = not (self.backpressure and self.rng.random() < self.backpressure)
            if port.ready is not None:
                port.ready.value = int(ready)
            await ReadOnly()
            valid = read_int(port.valid) == 1
            if not valid and not self.backpressure:
                await RisingEdge(port.valid)  # idle: ready stays high, nothing to do per cycle
                continue
            fire = ready and valid
            try:
                value = read_int(port.payload, self.signed) if fire else None
            except ValueError as exc:  # X/Z on the output: name the value and the cycle
                raise ValueError(f"{self.describe(len(self.values))}, cycle "
                                 f"{self.clock.cycle() + 1}: {exc}") from None
            await RisingEdge(self.clock.clk)
            if fire:
                self.values.append(value)
                self.cycles.append(self.clock.cycle())

    async def wait_for(self, count: int, timeout_cycles: int = 100_000) -> list[int]:
        """Wait until ``count`` values arrived; TimeoutError after ``timeout_cycles`` edges."""
        for _ in range(timeout_cycles):
            if len(self.values) >= count:
                return self.values[:count]
            await RisingEdge(self.clock.clk)
        raise TimeoutError(f"stream received {len(self.values)} of {count} values "
                           f"within {timeout_cycles} cycles")


def struct_fields(layout) -> dict[str, tuple[int, int]]:
    """``{name: (offset, width)}`` of an ``amaranth.lib.data.StructLayout`` (bit 0 = LSB)."""
    return {name: (fld.offset, fld.width) for name, fld in layout}


def _field(value: int, offset_width: tuple[int, int]) -> int:
    offset, width = offset_width
    return (value >> offset) & ((1 << width) - 1)


def burst_word_cycle(t: int, i: int, latency: int, bandwidth: float) -> int:
    """Edge at which word ``i`` (0-based) of a burst requested at edge ``t`` transfers."""
    return t + latency + math.ceil((i + 1) / bandwidth)


@dataclass
class Burst:
    """One served burst: request edge, address, length, direction and the edge of each word
    (read: delivered; write: taken)."""

    request_cycle: int
    addr: int
    words: int
    word_cycles: list[int] = field(default_factory=list)
    write: bool = False


def masked_write(old: int, data: int, mask: int) -> int:
    """A memory word after a masked write: the bits set in ``mask`` from ``data``, the rest
    from ``old`` (``old & ~mask | data & mask``; all non-negative)."""
    return (old & ~mask) | (data & mask)


def element_writes(addr: int, apw: int, bits: int,
                   values: Iterable[int]) -> list[tuple[int, int, int]]:
    """The masked word writes ``(address, data, mask)`` that store ``values`` from word
    ``addr``, ``apw`` elements per word: element ``e`` (``bits``-bit two's complement) in
    bits ``[(e % apw)*bits, ...)`` of word ``addr + e // apw`` (docs/timing.md, spilled
    programs); one write per element, the other bits of its word untouched."""
    if apw <= 0 or bits <= 0:
        raise ValueError(f"apw and bits must be positive, got apw={apw}, bits={bits}")
    lane = (1 << bits) - 1
    return [(addr + e // apw, (int(v) & lane) << (e % apw) * bits, lane << (e % apw) * bits)
            for e, v in enumerate(values)]


def _bits_and_unknown(handle) -> tuple[int, int]:
    """A signal's value with X/Z bits read as 0, and the mask of its X/Z bits."""
    text = str(handle.value)  # most significant bit first
    value = unknown = 0
    for char in text:
        value, unknown = value << 1, unknown << 1
        if char == "1":
            value |= 1
        elif char != "0":
            unknown |= 1
    return value, unknown


class ExternalMemoryModel:
    """External memory behind a request stream, a response stream and (optionally) a write
    data stream.

    The request payload carries ``addr`` and ``words`` (bit fields given as
    ``(offset, width)``, e.g. from :func:`struct_fields`) and, when ``write_bit >= 0``, a
    write flag at that bit; the response payload carries one memory word
    (``memory[addr + i]``); the write data payload (``wdata``) carries a word's data in bits
    ``[0, word_bits)`` and its bit mask in ``[word_bits, 2*word_bits)``.

    **Schedule.** A read burst whose request transfers at edge ``t`` delivers word
    ``i`` (0-based) at edge ``t + latency + ceil((i + 1) / bandwidth)``
    (:func:`burst_word_cycle`), so its last word lands at ``t + latency +
    ceil(words / bandwidth)``, the DMA row of docs/timing.md minus the DMA's
    own set-up. ``bandwidth`` is in words per cycle, ``0 < bandwidth <= 1``
    (0.5: a word every 2 cycles). A word is never earlier than the edge after
    the previous one; if the design holds response ready low, words wait (and
    later ones are no earlier than one edge after each other). A write burst takes word
    ``i`` (``wdata`` ready high, while the design holds valid high) at edge
    ``t + ceil((i + 1) / bandwidth)`` or later (no latency: writes are posted, nothing is
    acknowledged) and writes the bits set in its mask (:func:`masked_write`). Request ready
    is high while no burst is in flight: the earliest next request is the edge after a
    burst's last word (read or write). Same schedule as ``sim/fast_harness.cpp``.

    ``memory`` is changed in place by writes (and by :meth:`write_elements`).
    """

    def __init__(self, clock: SimClock, req: StreamPort, rsp: StreamPort,
                 memory: Sequence[int] | Mapping[int, int], *, latency: int, bandwidth: float,
                 addr_field: tuple[int, int], words_field: tuple[int, int],
                 wdata: StreamPort | None = None, write_bit: int = -1, word_bits: int = 0):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer of cycles, got {latency!r}")
        if not 0 < bandwidth <= 1:
            raise ValueError(f"bandwidth must be in (0, 1] words per cycle, got {bandwidth!r}")
        if write_bit >= 0 and word_bits <= 0:
            raise ValueError(f"a write flag (write_bit={write_bit}) needs word_bits > 0, "
                             f"got {word_bits}")
        self.clock, self.req, self.rsp, self.memory = clock, req, rsp, memory
        self.wdata = wdata
        self.latency, self.bandwidth = latency, bandwidth
        self.addr_field, self.words_field = addr_field, words_field
        self.write_bit, self.word_bits = write_bit, word_bits
        self.bursts: list[Burst] = []

    def start(self) -> ExternalMemoryModel:
        cocotb.start_soon(self._run())
        return self

    def _word(self, addr: int) -> int:
        try:
            return int(self.memory[addr])
        except (IndexError, KeyError):
            raise ValueError(f"burst reads address {addr}, outside the external memory "
                             f"({len(self.memory)} words)") from None

    def write_word(self, addr: int, data: int, mask: int) -> None:
        """Commit one written word: the bits of ``data`` set in ``mask`` (:func:`masked_write`)."""
        if isinstance(self.memory, Mapping):
            old = int(self.memory.get(addr, 0))
        elif 0 <= addr < len(self.memory):
            old = int(self.memory[addr])
        else:
            raise ValueError(f"burst writes address {addr}, outside the external memory "
                             f"({len(self.memory)} words)")
        self.memory[addr] = masked_write(old, data, mask)

    def write_elements(self, addr: int, apw: int, bits: int, values: Iterable[int]) -> None:
        """Host write of a tensor (a spilled program's input) from word ``addr``
        (:func:`element_writes`) into this memory (``apw * bits`` must fit ``word_bits`` when
        that is known)."""
        if self.word_bits and apw * bits > self.word_bits:
            raise ValueError(f"{apw} elements of {bits} bits do not fit a "
                             f"{self.word_bits}-bit word")
        for e, (a, data, mask) in enumerate(element_writes(addr, apw, bits, values)):
            if not isinstance(self.memory, Mapping) and not 0 <= a < len(self.memory):
                raise ValueError(f"element {e} goes to address {a}, outside the external "
                                 f"memory ({len(self.memory)} words)")
            self.write_word(a, data, mask)

    def _take_word(self) -> tuple[int, int]:
        """The offered ``wdata`` word: (data, mask); X/Z only allowed in unmasked data bits."""
        bits = self.word_bits
        payload, unknown = _bits_and_unknown(self.wdata.payload)
        full = (1 << bits) - 1
        data, mask = payload & full, (payload >> bits) & full
        if (unknown >> bits) & full or unknown & mask:
            raise ValueError(f"write data at cycle {self.clock.cycle() + 1} holds X/Z bits in "
                             f"its mask or in masked data ({self.wdata.payload.value})")
        return data, mask

    async def _run(self) -> None:
        req, rsp, wdata, clock = self.req, self.rsp, self.wdata, self.clock
        wready = wdata.ready if wdata is not None else None
        if wready is not None:
            wready.value = 0
        burst: Burst | None = None
        while True:
            if req.ready is not None:
                req.ready.value = int(burst is None)
            index = len(burst.word_cycles) if burst else 0
            due = 0 if burst is None else burst_word_cycle(
                burst.request_cycle, index, 0 if burst.write else self.latency, self.bandwidth)
            present = burst is not None and clock.cycle() + 1 >= due
            reading = present and not burst.write
            taking = present and burst.write
            rsp.valid.value = int(reading)
            if reading:
                write_int(rsp.payload, self._word(burst.addr + index))
            if wready is not None:
                wready.value = int(taking)
            await ReadOnly()
            request = None
            if burst is None and read_int(req.valid) == 1:
                payload = read_int(req.payload)
                write = self.write_bit >= 0 and bool((payload >> self.write_bit) & 1)
                request = (_field(payload, self.addr_field), _field(payload, self.words_field),
                           write)
            delivered = reading and (rsp.ready is None or read_int(rsp.ready) == 1)
            written = None
            if taking and read_int(wdata.valid) == 1:
                written = self._take_word()
            if burst is None and request is None:
                await RisingEdge(req.valid)  # idle until a request: no per-cycle work
                continue
            if burst is not None and not present:  # skip to the cycle before the next word
                await ClockCycles(clock.clk, max(1, due - 1 - clock.cycle()))
                continue
            await RisingEdge(clock.clk)
            now = clock.cycle()
            if written is not None:
                self.write_word(burst.addr + index, *written)
            if delivered or written is not None:
                burst.word_cycles.append(now)
                if len(burst.word_cycles) == burst.words:
                    burst = None
            if request is not None:
                addr, words, write = request
                if words == 0:
                    raise ValueError(f"burst request at cycle {now} asks for 0 words")
                if write and (wdata is None or wready is None):
                    raise ValueError(f"write burst request at cycle {now}, but the memory "
                                     "model has no write data stream (wdata with ready)")
                burst = Burst(now, addr, words, write=write)
                self.bursts.append(burst)
