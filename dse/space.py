"""The design space: discrete choices over ``ArchSpec`` fields, bit widths and the mapper objective.

A :class:`Space` is a list of :class:`Param` (each a name and a tuple of
choices) plus the ``ArchSpec`` fields that stay fixed. Parameter names:

- any ``ArchSpec`` field (``rows``, ``cols``, ``dataflow``, ``act_words``,
  ``w_words``, ``acc_words``, ``*_banks``, ``double_buffer``, ``weight_store``,
  ``ext_word_bits``, ``clock_mhz``, ...);
- ``bits``: the model-wide quantisation width (activations = weights = ``bits``;
  the hardware's ``in_bits``/``w_bits``);
- ``bits.<layer>``: a per-layer width for that compute layer (the hardware is
  as wide as the widest layer);
- ``objective``: the mapper objective (``latency``, ``energy``, ``edp``).

Declared in Python (``Space(params=[Param("rows", (4, 8))], base={...})``) or
TOML (:meth:`Space.from_toml`)::

    [base]            # fixed ArchSpec fields
    acc_bits = 32
    [choices]         # one list per parameter
    rows = [4, 8, 16]
    dataflow = ["ws", "os"]
    bits = [4, 8]
    objective = ["latency", "edp"]

Every point is a dict name -> choice; :meth:`Space.point` gives the ``i``-th point of
the full grid (mixed radix, last parameter fastest), :meth:`Space.arch` its ``ArchSpec``.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mapping.arch import ArchSpec, ArchSpecError
from mapping.cost import OBJECTIVES

ARCH_FIELDS = tuple(f.name for f in fields(ArchSpec) if f.name != "name")
SPECIAL = ("bits", "objective")


class SpaceError(ValueError):
    """A malformed space: the message names the parameter and what is allowed."""


@dataclass(frozen=True)
class Param:
    """One searched parameter: ``name`` and its ``choices`` (ints, floats, bools or strings)."""

    name: str
    choices: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not (
            self.name in ARCH_FIELDS or self.name in SPECIAL or self.name.startswith("bits.")
        ):
            raise SpaceError(
                f"unknown parameter {self.name!r}; allowed: {', '.join(SPECIAL)}, "
                f"'bits.<layer>', or an ArchSpec field ({', '.join(ARCH_FIELDS)})")
        ch = tuple(self.choices)
        if not ch:
            raise SpaceError(f"parameter {self.name!r} has no choices")
        if len(set(ch)) != len(ch):
            raise SpaceError(f"parameter {self.name!r} has repeated choices {list(ch)}")
        for c in ch:
            if not isinstance(c, (bool, int, float, str)):
                raise SpaceError(f"parameter {self.name!r}: choice {c!r} must be a bool, "
                                 "int, float or string")
        if self.name == "objective":
            bad = [c for c in ch if c not in OBJECTIVES]
            if bad:
                raise SpaceError(f"objective choices {bad} are invalid; allowed: "
                                 f"{', '.join(OBJECTIVES)}")
        if self.name == "bits" or self.name.startswith("bits."):
            bad = [c for c in ch if isinstance(c, bool) or not isinstance(c, int)
                   or not 2 <= c <= 16]
            if bad:
                raise SpaceError(f"{self.name} choices {bad} are invalid: integers from 2 to 16")
        object.__setattr__(self, "choices", ch)


@dataclass(frozen=True)
class Space:
    """Discrete search space (see module docstring). ``base``: fixed ArchSpec fields."""

    params: tuple[Param, ...]
    base: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = tuple(self.params)
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpaceError(f"parameter(s) {', '.join(dup)} declared twice")
        if not params:
            raise SpaceError("the space has no parameters")
        if "bits" in names and any(n in ("in_bits", "w_bits") for n in names):
            raise SpaceError("declare either 'bits' or in_bits/w_bits, not both")
        unknown = sorted(set(self.base) - set(ARCH_FIELDS))
        if unknown:
            raise SpaceError(f"unknown base field(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(ARCH_FIELDS)}")
        clash = sorted(set(self.base) & set(names))
        if clash:
            raise SpaceError(f"field(s) {', '.join(clash)} are both fixed (base) and searched")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "base", dict(self.base))
        defaults = {**ArchSpec().to_dict(), **self.base}
        defaults.pop("name", None)
        object.__setattr__(self, "_defaults", defaults)
        object.__setattr__(self, "_arch_cache", {})

    def __reduce__(self):  # pickle without the memo (sent to Dask workers)
        return (Space, (self.params, self.base))

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Space:
        """From ``{"base": {...}, "choices": {name: [..]}}`` (the TOML layout)."""
        extra = sorted(set(data) - {"base", "choices"})
        if extra:
            raise SpaceError(f"unknown space section(s) {', '.join(extra)}; allowed: base, choices")
        choices = data.get("choices")
        if not isinstance(choices, dict) or not choices:
            raise SpaceError("the space needs a [choices] table with at least one parameter")
        for k, v in choices.items():
            if not isinstance(v, list):
                raise SpaceError(f"choices of {k!r} must be a list, got {type(v).__name__}")
        return cls(tuple(Param(k, tuple(v)) for k, v in choices.items()),
                   dict(data.get("base", {})))

    @classmethod
    def from_toml(cls, path: str | Path) -> Space:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SpaceError(f"space file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpaceError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return {"base": dict(self.base), "choices": {p.name: list(p.choices) for p in self.params}}

    # ------------------------------------------------------------ queries
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def size(self) -> int:
        return math.prod(len(p.choices) for p in self.params)

    def digest(self) -> str:
        """Stable short hash of the space (names, choices, base)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def point(self, index: int) -> dict[str, Any]:
        """The ``index``-th grid point (mixed radix, last parameter varies fastest)."""
        if not isinstance(index, int) or not 0 <= index < self.size:
            raise SpaceError(f"grid index {index!r} out of range 0..{self.size - 1}")
        out: dict[str, Any] = {}
        for p in reversed(self.params):
            index, r = divmod(index, len(p.choices))
            out[p.name] = p.choices[r]
        return {n: out[n] for n in self.names}

    def check_point(self, point: dict[str, Any]) -> None:
        if set(point) != set(self.names):
            raise SpaceError(f"point has parameters {sorted(point)}; the space has "
                             f"{sorted(self.names)}")
        for p in self.params:
            if point[p.name] not in p.choices:
                raise SpaceError(f"{p.name} = {point[p.name]!r} is not a choice "
                                 f"({list(p.choices)})")

    def layer_bits(self, point: dict[str, Any]) -> dict[str, int]:
        """Per-layer widths named by ``bits.<layer>`` parameters."""
        return {k[5:]: int(v) for k, v in point.items() if k.startswith("bits.")}

    def model_bits(self, point: dict[str, Any]) -> int:
        """The model-wide width (``bits``, else ``in_bits``, else the base/default)."""
        if "bits" in point:
            return int(point["bits"])
        return int(point.get("in_bits", self.base.get("in_bits", ArchSpec.in_bits)))

    def quant_key(self, point: dict[str, Any]) -> tuple:
        """What the accuracy depends on: (model bits, sorted per-layer bits)."""
        return (self.model_bits(point), tuple(sorted(self.layer_bits(point).items())))

    def objective(self, point: dict[str, Any]) -> str:
        return str(point.get("objective", "latency"))

    def arch_fields(self, point: dict[str, Any]) -> dict[str, Any]:
        """ArchSpec fields of a point (not validated)."""
        d = dict(self._defaults)
        for k, v in point.items():
            if k in ARCH_FIELDS:
                d[k] = v
        if "bits" in point or self.layer_bits(point):
            width = max([self.model_bits(point), *self.layer_bits(point).values()])
            d["in_bits"] = d["w_bits"] = width
        return d

    def arch(self, point: dict[str, Any], name: str = "dse") -> ArchSpec:
        """The point's ``ArchSpec`` (raises ``ArchSpecError`` if the combination is invalid)."""
        return ArchSpec(name=name, **self.arch_fields(point))

    def arch_or_error(self, point: dict[str, Any]) -> tuple[ArchSpec | None, str]:
        """``(ArchSpec, "")`` or ``(None, why it is invalid)``; memoised per field values."""
        fields_ = self.arch_fields(point)
        key = tuple(fields_.values())
        cache = self._arch_cache
        hit = cache.get(key)
        if hit is None:
            if len(cache) > 200_000:
                cache.clear()
            try:
                hit = (ArchSpec(name="dse", **fields_), "")
            except ArchSpecError as exc:
                hit = (None, str(exc))
            cache[key] = hit
        return hit


def default_space(compute_layers: list[str] | None = None, per_layer_bits: bool = False) -> Space:
    """The default space (259,200 points): array shape, dataflow, scratchpads, banks,
    double buffering, bits 4/6/8 and the mapper objective; with ``per_layer_bits`` one
    ``bits.<layer>`` parameter per compute layer replaces ``bits``."""
    params = [
        Param("rows", (2, 4, 8, 12, 16)),
        Param("cols", (2, 4, 8, 12, 16)),
        Param("dataflow", ("ws", "os")),
        Param("act_words", (1024, 2048, 4096)),
        Param("w_words", (512, 1024, 2048, 4096)),
        Param("acc_words", (256, 512, 1024)),
        Param("act_banks", (1, 2, 4)),
        Param("w_banks", (1, 2)),
        Param("acc_banks", (1, 2)),
        Param("double_buffer", (True, False)),
    ]
    if per_layer_bits:
        if not compute_layers:
            raise SpaceError("per-layer bits need the model's compute layer names")
        params += [Param(f"bits.{n}", (4, 6, 8)) for n in compute_layers]
    else:
        params.append(Param("bits", (4, 6, 8)))
    params.append(Param("objective", ("latency", "edp")))
    return Space(tuple(params), {"acc_bits": 32, "ext_word_bits": 64})
