"""``ArchSpec``: the one input of the hardware generator.

A frozen, self-validating description of the accelerator: PE array shape and
dataflow, operand widths, on-chip scratchpads, the weight store and the
external-memory port. Loads from and saves to TOML. Capacities are counted in
*elements* (one activation, one weight, one accumulator), not bytes, so the
mapper and the generator agree without unit conversions.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

DATAFLOWS = ("ws", "os")
ACT_GATHERS = ("lanes", "runs")
WEIGHT_STORES = ("rom", "external")

MAX_ARRAY_DIM = 64
BITS_RANGE = (2, 16)
ACC_BITS_RANGE = (8, 48)


class ArchSpecError(ValueError):
    """An ArchSpec field is out of range; the message names the field and what is allowed."""


@dataclass(frozen=True)
class ArchSpec:
    """Accelerator parameters (see docs/timing.md for how each one costs cycles).

    - ``rows`` x ``cols`` PE array; ``dataflow`` ``"ws"`` (weight-stationary: K on
      rows, N on cols) or ``"os"`` (output-stationary: M on rows, N on cols).
    - ``in_bits``/``w_bits``: signed activation and weight widths; ``acc_bits``:
      accumulator width (wraps modulo 2**acc_bits, like the hardware).
    - ``act_words``: activation scratchpad capacity in elements (holds a layer's
      input and output, and a residual operand when one is live).
    - ``w_words``: weight scratchpad capacity in elements (both halves together
      when ``double_buffer``); ``acc_words``: accumulator buffer entries.
    - ``*_banks``: banks of each scratchpad (parallel ports towards the array).
    - ``act_gather``: how the array's ``rows`` activation lanes read the scratchpad.
      ``"lanes"``: every lane any address (the scratchpad is built as ``rows`` copies:
      ``rows x act_words`` elements of memory); ``"runs"`` (``ws`` only): one run of
      consecutive addresses per cycle (one copy), so a block of reduction lanes that
      crosses a kernel row streams once per row (docs/timing.md, "Gather by runs").
    - ``weight_store``: where weights live before the weight scratchpad:
      ``"rom"`` (baked into the bitstream) or ``"external"`` (the external port).
      Both are reached through the same DMA engine with the same timing.
    - ``ext_word_bits``: width of one external-memory word; ``ext_bandwidth``:
      words per cycle the memory sustains (0 < b <= 1); ``ext_latency``: cycles
      from request to first response word.
    - ``clock_mhz``: clock target (for throughput in samples/s and synthesis).
    """

    rows: int = 8
    cols: int = 8
    dataflow: str = "ws"
    in_bits: int = 8
    w_bits: int = 8
    acc_bits: int = 32
    act_words: int = 16384
    act_banks: int = 1
    act_gather: str = "lanes"
    w_words: int = 8192
    w_banks: int = 1
    acc_words: int = 2048
    acc_banks: int = 1
    double_buffer: bool = True
    weight_store: str = "rom"
    ext_word_bits: int = 64
    ext_bandwidth: float = 1.0
    ext_latency: int = 8
    clock_mhz: float = 100.0
    name: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        def need(cond: bool, field: str, allowed: str) -> None:
            if not cond:
                value = getattr(self, field)
                raise ArchSpecError(f"ArchSpec.{field} = {value!r} is invalid: {allowed}")

        for f in ("rows", "cols"):
            v = getattr(self, f)
            need(isinstance(v, int) and not isinstance(v, bool), f, "must be an integer")
            need(1 <= v <= MAX_ARRAY_DIM, f, f"must be between 1 and {MAX_ARRAY_DIM}")
        need(self.dataflow in DATAFLOWS, "dataflow", f"must be one of {', '.join(DATAFLOWS)}")
        need(self.act_gather in ACT_GATHERS, "act_gather",
             f"must be one of {', '.join(ACT_GATHERS)}")
        need(self.act_gather == "lanes" or self.dataflow == "ws", "act_gather",
             "'runs' needs dataflow 'ws' (an output-stationary pass reads rows pixels, "
             "not consecutive addresses)")
        lo, hi = BITS_RANGE
        for f in ("in_bits", "w_bits"):
            v = getattr(self, f)
            need(isinstance(v, int) and lo <= v <= hi, f, f"must be an integer from {lo} to {hi}")
        lo, hi = ACC_BITS_RANGE
        need(
            isinstance(self.acc_bits, int) and lo <= self.acc_bits <= hi,
            "acc_bits",
            f"must be an integer from {lo} to {hi}",
        )
        need(
            self.acc_bits >= self.in_bits + self.w_bits,
            "acc_bits",
            f"must be at least in_bits + w_bits = {self.in_bits + self.w_bits} "
            "so one product fits the accumulator",
        )
        for f in ("act_words", "w_words", "acc_words", "act_banks", "w_banks", "acc_banks"):
            v = getattr(self, f)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f,
                 "must be a positive integer")
        need(self.w_words >= self.rows * self.cols * (2 if self.double_buffer else 1), "w_words",
             "must hold at least one rows x cols weight block"
             + (" per buffer half (double_buffer is on)" if self.double_buffer else ""))
        need(self.acc_words >= self.cols, "acc_words", "must hold at least one row of cols outputs")
        need(self.weight_store in WEIGHT_STORES, "weight_store",
             f"must be one of {', '.join(WEIGHT_STORES)}")
        ewb = self.ext_word_bits
        need(isinstance(ewb, int) and max(8, self.w_bits, self.in_bits) <= ewb <= 1024,
             "ext_word_bits", "must be an integer from max(8, w_bits, in_bits) to 1024")
        need(isinstance(self.ext_bandwidth, (int, float)) and 0 < self.ext_bandwidth <= 1,
             "ext_bandwidth", "must be in (0, 1] words per cycle")
        need(isinstance(self.ext_latency, int) and 0 <= self.ext_latency <= 10_000,
             "ext_latency", "must be an integer number of cycles from 0 to 10000")
        need(isinstance(self.clock_mhz, (int, float)) and 0 < self.clock_mhz <= 2000,
             "clock_mhz", "must be in (0, 2000]")

    # --------------------------------------------------------------- derived
    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def weights_per_ext_word(self) -> int:
        return self.ext_word_bits // self.w_bits

    def replace(self, **changes: Any) -> ArchSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------- TOML
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchSpecError(
                f"unknown ArchSpec field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def to_toml(self) -> str:
        return tomli_w.dumps({"arch": self.to_dict()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ArchSpecError(f"architecture file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ArchSpecError(f"{path} is not valid TOML: {exc}") from None
        if "arch" not in data or not isinstance(data["arch"], dict):
            raise ArchSpecError(f"{path} needs an [arch] table")
        return cls.from_dict(data["arch"])


PRESETS: dict[str, ArchSpec] = {
    "tiny-4x4": ArchSpec(
        name="tiny-4x4", rows=4, cols=4, act_words=8192, w_words=512, acc_words=512,
        ext_word_bits=32, ext_latency=4, clock_mhz=50.0,
    ),
    "edge-8x8": ArchSpec(
        name="edge-8x8", rows=8, cols=8, act_words=16384, w_words=8192, acc_words=2048,
        ext_word_bits=64, ext_latency=8, clock_mhz=100.0,
    ),
    "mid-16x16": ArchSpec(
        name="mid-16x16", rows=16, cols=16, act_words=65536, w_words=32768, acc_words=8192,
        ext_word_bits=128, ext_latency=16, clock_mhz=150.0,
    ),
}


def preset(name: str) -> ArchSpec:
    """A named preset; the error lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ArchSpecError(
            f"unknown architecture preset {name!r}; presets: {', '.join(PRESETS)}"
        ) from None


def resolve(spec: str) -> ArchSpec:
    """A preset name or a path to a TOML file (as given on the command line)."""
    if spec in PRESETS:
        return PRESETS[spec]
    if spec.endswith(".toml") or Path(spec).exists():
        return ArchSpec.load(spec)
    return preset(spec)
