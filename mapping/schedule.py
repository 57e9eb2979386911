"""``LayerMapping`` and ``Schedule``: how each compute layer runs on the array.

A mapping is stated in the layer's GEMM view (``mapping.loopnest``): ``M``
output pixels, ``K`` reduction, ``N`` output channels.

Levels (outermost first):

1. weight store (ROM or external memory) -> weight scratchpad: the weights of
   one *tile* ``(tile_k x tile_n)`` are moved by one DMA burst;
2. scratchpads -> PE array: a tile ``(tile_m, tile_n, tile_k)`` is executed as
   *passes*, each one ``rows x cols`` block on the array (see docs/timing.md);
3. PE registers: the stationary operand (weights for ``ws``, partial sums for
   ``os``).

``order`` is the loop order of the tile loops, outermost first, a permutation
of ``("m", "n", "k")``. Partial sums of every output tile visited inside the
``k`` loop stay in the accumulator buffer until their last ``k`` tile.

Spatial unrolling is fixed by the dataflow (it is what the hardware has):
``ws`` puts K on rows and N on columns, ``os`` puts M on rows and N on columns.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mapping.arch import DATAFLOWS
from mapping.loopnest import LoopNest

ORDERS: tuple[tuple[str, str, str], ...] = (
    ("m", "n", "k"),
    ("n", "m", "k"),
    ("m", "k", "n"),
    ("n", "k", "m"),
    ("k", "m", "n"),
    ("k", "n", "m"),
)

SPATIAL = {"ws": ("k", "n"), "os": ("m", "n")}


class MappingError(ValueError):
    """A mapping that the hardware cannot run; the message says which limit it breaks."""


@dataclass(frozen=True)
class LayerMapping:
    """One layer's mapping: tile sizes, tile loop order, dataflow.

    ``tile_*`` may be any size from 1 to the dimension (non-divisors give a
    smaller edge tile at the end of that loop).
    """

    layer: str
    nest: LoopNest
    dataflow: str
    tile_m: int
    tile_n: int
    tile_k: int
    order: tuple[str, str, str] = ("n", "m", "k")

    def __post_init__(self) -> None:
        # shape checks that need no ArchSpec; mapping.timing.check adds the buffer limits
        if self.dataflow not in DATAFLOWS:
            raise MappingError(f"{self.layer}: dataflow {self.dataflow!r} is invalid; allowed: "
                               f"{', '.join(DATAFLOWS)}")
        if tuple(self.order) not in ORDERS:
            raise MappingError(f"{self.layer}: order {self.order!r} must be a permutation of "
                               "('m', 'n', 'k'), e.g. ('n', 'm', 'k')")
        for d, full in (("m", self.nest.gemm_m), ("n", self.nest.gemm_n), ("k", self.nest.gemm_k)):
            t = getattr(self, f"tile_{d}")
            if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= full:
                raise MappingError(f"{self.layer}: tile_{d} = {t!r} must be an integer from 1 "
                                   f"to gemm_{d} = {full}")

    @property
    def spatial(self) -> tuple[str, str]:
        return SPATIAL[self.dataflow]

    @property
    def tiles(self) -> dict[str, int]:
        """Number of tiles along each GEMM dimension."""
        return {
            "m": math.ceil(self.nest.gemm_m / self.tile_m),
            "n": math.ceil(self.nest.gemm_n / self.tile_n),
            "k": math.ceil(self.nest.gemm_k / self.tile_k),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nest"] = asdict(self.nest)
        d["order"] = list(self.order)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerMapping:
        d = dict(d)
        d["nest"] = LoopNest(**d["nest"])
        d["order"] = tuple(d["order"])
        return cls(**d)


@dataclass(frozen=True)
class LayerCost:
    """Predicted cost of one layer (``mapping.cost``): all figures are estimates
    of the analytic model, which the RTL simulation checks cycle by cycle."""

    cycles: int
    macs: int
    utilization: float
    energy_pj: float
    accesses: dict[str, int] = field(default_factory=dict)  # "level.operand.read|write" -> count
    breakdown: dict[str, int] = field(default_factory=dict)  # cycles by phase

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerCost:
        return cls(**d)


@dataclass
class Schedule:
    """Per compute layer, its mapping and predicted cost, in execution order."""

    arch_name: str
    layers: list[LayerMapping]
    costs: list[LayerCost]

    @property
    def total_cycles(self) -> int:
        return sum(c.cycles for c in self.costs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch_name,
            "layers": [
                {"mapping": m.to_dict(), "cost": asdict(c)}
                for m, c in zip(self.layers, self.costs, strict=True)
            ],
            "total_cycles": self.total_cycles,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        try:
            return cls(
                arch_name=d["arch"],
                layers=[LayerMapping.from_dict(x["mapping"]) for x in d["layers"]],
                costs=[LayerCost.from_dict(x["cost"]) for x in d["layers"]],
            )
        except (KeyError, TypeError) as exc:
            raise MappingError(f"not a Schedule dict (missing or bad field: {exc})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        return cls.from_dict(json.loads(text))
