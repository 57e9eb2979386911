"""The cocotb engine runs a spilled program (docs/timing.md, activations in external memory):
the testbench writes the input into external memory before start, streams nothing in, and
its ExternalMemoryModel serves the activation DMA's write bursts (masked, posted) with the
fast harness's schedule, so the outputs equal sim.golden and every layer's counter (loads +
bands + stores) equals mapping.timing's prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hwgen import api
from mapping.arch import preset
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[2]


def test_spilled_se_block_on_cocotb_bit_exact_and_cycle_exact(tmp_path, verilator):
    mod = import_file(ROOT / "examples" / "se_block.py")
    torch.manual_seed(0)
    m = mod.SEBlock().eval()
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    # act_words too small for the live tensors: spilled; external weights share the port
    arch = preset("tiny-4x4").replace(act_words=1100, weight_store="external",
                                      ext_bandwidth=0.5, ext_latency=3)
    cm = api.compile(m, torch.zeros(1, 3, 8, 8), arch=arch, calib=x, out_dir=tmp_path / "b")
    assert cm.program.spilled and cm.program.input_count == 0
    sim = api.simulate(cm, x, engine="cocotb")
    assert sim.result.engine == "cocotb"
    assert sim.bit_exact, sim.result.mismatch_detail(0)
    assert sim.cycles_as_predicted, (sim.cycles, sim.predicted_cycles, sim.layer_cycles,
                                     sim.result.predicted)
