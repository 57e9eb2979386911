"""The compile flow's handling of ``act`` nodes: planned onto the accelerator as lookup-table
layers when the graph is one chain (``LutLayer`` with the node's table), the report's note."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "mapping"))
from act_graphs import act_graph, float_act, mlp  # noqa: E402

from hwgen.build import flow  # noqa: E402
from hwgen.compiler.program import LutLayer  # noqa: E402


def test_act_is_a_lut_layer_of_the_chain(monkeypatch):
    float_act(monkeypatch)
    calib = np.random.default_rng(0).standard_normal((32, 12))
    g = act_graph(mlp(), torch.zeros(1, 12), [{"fn": "elu", "alpha": 0.5}], calib, bits=6)
    assert flow.single_program(g)
    kind, places = flow.plan(g)
    act = next(n for n in g.nodes() if n.op == "act")
    p = next(p for p in places if p.name == act.name)
    assert kind == "chain" and (p.where, p.layer) == ("accelerator", 1)
    assert p.note == "elu: lookup table of 64 entries (6-bit input, 6-bit output)"
    layer = flow.lut_layer(act, "x")
    assert isinstance(layer, LutLayer) and layer.elements == 16 and layer.out_bits == 6
    np.testing.assert_array_equal(layer.table, act.params["qtable"])
    assert (layer.src, layer.dst) == ("x", act.name)
