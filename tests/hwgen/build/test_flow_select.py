"""Channel selects on the accelerator: ShuffleNetV2's unit (``examples/shuffle_unit.py``:
chunk, depthwise and grouped convs, concat, channel shuffle, a channel slice) is one
program whose shuffle is no copy (stored permuted: ``mapping.passes.channel_layout``); in Verilog its outputs equal ``sim.golden`` and every layer's cycles equal
``mapping.timing``, and they equal the golden model of the graph whose grouped conv is not
split (``sim.golden`` computes grouped convs directly). The copies a select becomes are its
runs of consecutive channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwgen import api
from hwgen.build import flow, movement
from mapping.graph import Node
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[3]


def _unit():
    mod = import_file(ROOT / "examples" / "shuffle_unit.py")
    torch.manual_seed(0)
    return mod.ShuffleUnit().eval()


def test_channel_runs_and_copy_layers():
    assert movement.channel_runs((4, 5, 6, 0, 1, 3)) == [(0, 4, 3), (3, 0, 2), (5, 3, 1)]
    assert movement.channel_runs(np.arange(8).reshape(2, 4).T.ravel()) == [
        (k, c, 1) for k, c in enumerate((0, 4, 1, 5, 2, 6, 3, 7))]
    n = Node("s", "select", ["x"], [(1, 8, 3, 2)], (1, 3, 3, 2), {"index": (5, 6, 1)})
    n.quant = type("Q", (), {"bits": 8})()
    a, b = movement.select_layers(n, "x")
    assert (a.pixels, a.channels, a.src_offset, a.src_stride, a.dst_offset, a.dst_stride) == \
        (6, 2, 5, 8, 0, 3)
    assert (b.channels, b.src_offset, b.dst_offset) == (1, 1, 2)
    assert a.dst_elements == b.dst_elements == 18 and a.src_elements == 48


def test_shuffle_unit_runs_bit_exact_in_rtl(tmp_path, verilator, matches_golden_and_torch):
    m = _unit()
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6)).astype(np.float32)
    cm = api.compile(m, torch.zeros(1, 2, 6, 6), arch="tiny-4x4", calib=x,
                     out_dir=tmp_path / "b")
    assert cm.manifest.kind == "chain"
    from mapping.graph import trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower, quantize

    # the same quantisation, grouped conv whole: sim.golden computes it directly
    q = quantize(fuse_activations(fold_batchnorm(trace(m, torch.zeros(1, 2, 6, 6)))), x)
    g = lower(q)
    assert [n.name for n in g.nodes() if n.attrs.get("group_of")] == [
        "b2_g0_in", "b2_g0", "b2_g1_in", "b2_g1"]
    assert [p.name for p in cm.placements if p.where == "accelerator"] == [
        p.name for p in flow.plan(g)[1] if p.where == "accelerator"]
    notes = {p.name: p.note for p in cm.placements}
    assert "view_1" not in notes  # the shuffle: stored permuted (mapping.passes.channel_layout)
    assert "6 of 8 channels in 1 strided copy" in notes["getitem_6"]  # x[:, 1:7] of it
    assert "6 of 6 channels in 6 strided copies" in notes["getitem_6_logical"]  # for flatten
    sim = api.simulate(cm, x)
    assert sim.bit_exact and sim.cycles_as_predicted
    matches_golden_and_torch(m, q, x, cm, sim)
