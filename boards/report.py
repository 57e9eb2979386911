"""Typed synthesis and place-and-route reports, and fitting a report onto a device.

Every figure here is *measured* (it comes out of Yosys or nextpnr); reports
say so in their ``source`` field so that printed tables can label them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from boards.catalogue import Board, Device, device_of

FIT_RESOURCES = ("lut", "ff", "dsp", "bram", "spram")


@dataclass(frozen=True)
class Port:
    """A top-level port of a synthesised design."""

    name: str
    direction: str  # "input" | "output" | "inout"
    width: int


@dataclass(frozen=True)
class SynthReport:
    """Resources of one design after Yosys synthesis for one family (measured).

    ``lut``/``ff``/``carry``/``dsp``/``bram``/``spram``/``io`` follow
    ``boards.cells``; ``cells`` is the raw cell-type -> count table.
    ``netlist`` is the path of the synthesised JSON netlist (input to nextpnr).
    """

    top: str
    family: str
    lut: int
    ff: int
    carry: int
    dsp: int
    bram: float
    spram: int
    io: int
    cells: dict[str, int]
    ports: tuple[Port, ...]
    tool_version: str
    script: str
    seconds: float
    netlist: str
    cached: bool = False
    source: str = "measured (yosys synthesis)"

    def resources(self) -> dict[str, float]:
        return {"lut": self.lut, "ff": self.ff, "carry": self.carry, "dsp": self.dsp,
                "bram": self.bram, "spram": self.spram, "io": self.io}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SynthReport:
        data = json.loads(text)
        data["ports"] = tuple(Port(**p) for p in data["ports"])
        return cls(**data)


@dataclass(frozen=True)
class PathStep:
    """One step of a critical path: a cell pin-to-pin (logic) or a net (routing)."""

    kind: str  # "clk-to-q" | "logic" | "routing" | "setup" | ...
    delay_ns: float
    src: str
    dst: str
    net: str = ""


@dataclass(frozen=True)
class CriticalPath:
    """A clock-to-clock path reported by nextpnr."""

    src_clock: str
    dst_clock: str
    delay_ns: float
    logic_ns: float
    routing_ns: float
    steps: tuple[PathStep, ...]

    def summary(self) -> str:
        """One line: clocks, delay split, logic levels, start and end cells."""
        levels = sum(1 for s in self.steps if s.kind == "logic")
        ends = ""
        if self.steps:
            ends = f", {_short(self.steps[0].src)} -> {_short(self.steps[-1].dst)}"
        return (f"{self.src_clock} -> {self.dst_clock}: {self.delay_ns:.2f} ns "
                f"({self.logic_ns:.2f} logic, {self.routing_ns:.2f} routing, "
                f"{levels} logic steps{ends})")


@dataclass(frozen=True)
class PnrReport:
    """Result of nextpnr on one device (measured): Fmax per clock and critical paths."""

    device: str
    family: str
    fmax_mhz: dict[str, float]
    target_mhz: float
    critical_paths: tuple[CriticalPath, ...]
    utilization: dict[str, tuple[int, int]]  # nextpnr bel type -> (used, available)
    io_mode: str
    seconds: float
    tool_version: str
    bitstream: str | None = None
    source: str = "measured (nextpnr place-and-route)"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fmax(self) -> float:
        """The slowest clock's Fmax (MHz): the clock the whole design can run at."""
        if not self.fmax_mhz:
            raise ValueError("nextpnr reported no clock (a purely combinational design?)")
        return min(self.fmax_mhz.values())


class DoesNotFitError(ValueError):
    """A design needs more of some resource than the device has."""

    def __init__(self, device: str, overflows: dict[str, tuple[float, int]]):
        self.device = device
        self.overflows = overflows
        parts = [f"{res}: needs {_fmt(used)}, has {avail} ({_fmt(used - avail)} too many, "
                 f"{100 * used / avail if avail else float('inf'):.0f}%)"
                 for res, (used, avail) in overflows.items()]
        super().__init__(f"design does not fit {device}: " + "; ".join(parts))


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class FitReport:
    """Per-resource use against a device budget."""

    device: str
    used: dict[str, float]
    available: dict[str, int]

    def utilisation(self) -> dict[str, float]:
        """Resource -> percent used (inf when used > 0 and the device has none)."""
        out = {}
        for res, avail in self.available.items():
            used = self.used.get(res, 0)
            out[res] = 100.0 * used / avail if avail else (0.0 if not used else float("inf"))
        return out

    @property
    def fits(self) -> bool:
        return not self.overflows()

    def overflows(self) -> dict[str, tuple[float, int]]:
        return {r: (self.used.get(r, 0), a) for r, a in self.available.items()
                if self.used.get(r, 0) > a}


def fit(report: SynthReport, device: str | Board | Device, *, strict: bool = True) -> FitReport:
    """Compare ``report`` with ``device``'s budget; with ``strict`` raise ``DoesNotFitError``."""
    dev = device_of(device)
    if dev.family != report.family:
        raise ValueError(f"report is for family {report.family!r} but {dev.name} is "
                         f"{dev.family!r}: synthesise for {dev.family} first")
    budget = {"lut": dev.luts, "ff": dev.ffs, "dsp": dev.dsps, "bram": dev.bram_blocks,
              "spram": dev.spram_blocks}
    used = {r: report.resources()[r] for r in FIT_RESOURCES}
    result = FitReport(dev.name, used, budget)
    if strict and not result.fits:
        raise DoesNotFitError(dev.name, result.overflows())
    return result


def load_synth_report(path: str | Path) -> SynthReport:
    return SynthReport.from_json(Path(path).read_text())
