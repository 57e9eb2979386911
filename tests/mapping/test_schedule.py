"""LayerMapping validation and the Schedule JSON round trip."""

from __future__ import annotations

import json

import pytest

from mapping.arch import ArchSpec
from mapping.cost import evaluate
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping, MappingError, Schedule


def _schedule() -> Schedule:
    arch = ArchSpec(rows=4, cols=4)
    lms = [LayerMapping("conv", LoopNest.conv(1, 8, 3, 6, 6, 3, 3, padding=1, in_bits=4),
                        "ws", 7, 8, 9, ("k", "n", "m")),
           LayerMapping("fc", LoopNest.gemm(2, 10, 288), "ws", 2, 5, 100)]
    return Schedule("custom", lms, [evaluate(lm, arch) for lm in lms])


def test_json_round_trip_is_exact():
    s = _schedule()
    text = s.to_json()
    back = Schedule.from_json(text)
    assert back == s
    assert back.to_json() == text
    assert json.loads(text)["total_cycles"] == s.total_cycles == sum(c.cycles for c in s.costs)
    assert back.layers[0].order == ("k", "n", "m") and back.layers[0].nest.in_bits == 4


def test_from_dict_rejects_non_schedules():
    with pytest.raises(MappingError, match="not a Schedule dict"):
        Schedule.from_dict({"layers": []})


@pytest.mark.parametrize("kw, msg", [
    ({"dataflow": "wss"}, "dataflow 'wss' is invalid; allowed: ws, os"),
    ({"order": ("m", "m", "k")}, r"must be a permutation of \('m', 'n', 'k'\)"),
    ({"tile_m": 0}, "tile_m = 0 must be an integer from 1 to gemm_m = 5"),
    ({"tile_k": 8}, "tile_k = 8 must be an integer from 1 to gemm_k = 7"),
    ({"tile_n": 2.0}, "tile_n = 2.0 must be an integer"),
])
def test_layer_mapping_validation(kw, msg):
    base = {"layer": "l", "nest": LoopNest.gemm(5, 6, 7), "dataflow": "ws", "tile_m": 1,
            "tile_n": 1, "tile_k": 1}
    with pytest.raises(MappingError, match=msg):
        LayerMapping(**{**base, **kw})


def test_tiles_and_spatial():
    lm = LayerMapping("l", LoopNest.gemm(5, 6, 7), "os", 2, 6, 3)
    assert lm.tiles == {"m": 3, "n": 1, "k": 3}
    assert lm.spatial == ("m", "n")
