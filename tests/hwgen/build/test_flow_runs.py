"""Gathering activations by runs (``act_gather = "runs"``: the activation scratchpad built
once, not once per array row): zoo models in Verilog (fast engine) bit-exact against
``sim.golden`` and every layer's measured cycles equal to ``mapping.timing``; a layer whose
channels are a multiple of ``rows`` keeps its "lanes" cycles, a 1-channel first layer
streams each reduction block once per kernel row it spans (counted by hand below)."""

from __future__ import annotations

import numpy as np
import pytest

import models
from hwgen import api
from mapping import timing
from mapping.arch import preset
from mapping.passes import calibration_inputs

RUNS = preset("edge-8x8").replace(act_gather="runs")


@pytest.mark.parametrize("name", ["cnn-digits", "resnet-block"])
def test_runs_model_bit_exact_and_cycle_exact(name, tmp_path, verilator):
    entry = models.get(name)
    calib = calibration_inputs(entry)
    arch = RUNS if name == "cnn-digits" else RUNS.replace(act_words=12288)
    cm = api.compile(entry.load(), entry.example_input(), arch=arch, calib=calib,
                     out_dir=tmp_path / "b")
    x = np.asarray(calib[:6], np.float32)
    sim = api.simulate(cm, x)
    assert sim.bit_exact and sim.cycles_as_predicted
    lanes = {lm.layer: timing.layer_cycles(lm, arch.replace(act_gather="lanes")).cycles
             for lm in cm.schedule.layers}
    runs = {lm.layer: timing.layer_cycles(lm, arch).cycles for lm in cm.schedule.layers}
    for lm in cm.schedule.layers:
        if lm.nest.C % arch.rows == 0:  # every block inside one tap
            assert runs[lm.layer] == lanes[lm.layer], lm.layer
    if name == "cnn-digits":  # conv1, 1 channel 3x3: a run is a kernel row (3 addresses)
        lm = cm.schedule.layers[0]
        assert lm.nest.C == 1 and lm.nest.gemm_k == 9
        extra = 0
        for t in timing.iter_tiles(lm):  # the runs of each block by brute force
            g = [len({k // 3 for k in range(lo, min(lo + 8, t.k0 + t.k))})
                 for lo in range(t.k0, t.k0 + t.k, 8)] * -(-t.n // arch.cols)
            extra += sum(max(x * t.m, 8) - max(t.m, 8) for x in g[:-1]) + (g[-1] - 1) * t.m
        assert extra > 0 and runs[lm.layer] - lanes[lm.layer] == extra
        assert sim.layer_cycles[lm.layer] == runs[lm.layer]
