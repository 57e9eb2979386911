"""Data movement in RTL (fast engine): a SqueezeNet-style Fire module (squeeze 1x1 ->
expand 1x1 and 3x3 -> channel concat) after a ceil_mode MaxPool2d(3, 2), and a VGG-style
head (AdaptiveAvgPool2d((7, 7)) of a 1x1 map, a broadcast, then Linear) at 32x32 input:
bit-exact against sim.golden, every layer's measured cycles equal to mapping.timing
(``copy_cycles`` for the copies: docs/timing.md)."""

from __future__ import annotations

import pytest
import torch
from test_accelerator import check_run, need
from torch import nn

from hwgen.build.flow import compile_model
from mapping import timing
from mapping.arch import preset
from mapping.passes import prepare
from sim.accelerator import load_build, quantize_inputs, simulate


class Fire(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)  # 8x8 -> 4x4 (3x3 without ceil)
        self.sq = nn.Conv2d(8, 4, 1)
        self.e1 = nn.Conv2d(4, 6, 1)
        self.e3 = nn.Conv2d(4, 5, 3, padding=1)
        self.head = nn.Linear(11 * 4 * 4, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.c0(x)))
        x = torch.relu(self.sq(x))
        x = torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)
        return self.head(torch.flatten(x, 1))


class VggHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(4, 4), nn.Conv2d(4, 6, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(8, 8))  # 32x32 -> 1x1
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Linear(6 * 7 * 7, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# (id, model, input shape, arch, changes, expected copy layers as (pixels, channels))
DESIGNS = [
    ("fire-ceil-maxpool", Fire, (1, 3, 10, 10), "tiny-4x4", {"dataflow": "ws"},
     [(16, 6), (16, 5)]),
    ("vgg-head-broadcast", VggHead, (1, 3, 32, 32), "edge-8x8", {"dataflow": "os"},
     [(49, 6)]),
]


def _data(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("design", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_copy_models_bit_and_cycle_exact(design, tmp_path):
    need("verilator")
    name, make, shape, arch_name, changes, copies = design
    torch.manual_seed(0)
    g = prepare(make().eval(), torch.zeros(shape), _data((32,) + shape[1:], 1))
    arch = preset(arch_name).replace(**changes)
    cm = compile_model(g, arch, tmp_path / name, model=name)
    layers = cm.program.layers
    got = [li for li in layers if li.kind == "copy"]
    assert len(got) == len(copies)
    for li, (pixels, ch) in zip(got, copies, strict=True):  # the contract, closed form
        assert li.predicted_cycles == timing.copy_cycles(pixels, ch, arch)
        assert li.predicted_cycles == (timing.LAYER_SETUP + pixels * -(-ch // arch.rows)
                                       + timing.ELT_LATENCY)
    if name.startswith("fire"):  # ceil_mode: 4x4 windows (3x3 with floor)
        pool = next(li for li in layers if li.kind == "maxpool")
        assert pool.out_elements == 8 * 4 * 4
        assert pool.predicted_cycles == timing.pool_cycles(16, 8, 9, arch)
    report = (tmp_path / name / "report.md").read_text()
    assert "copy" in report
    build = load_build(tmp_path / name)
    x_int = quantize_inputs(build, _data((4,) + shape[1:], 7).numpy())
    res = simulate(build, x_int, engine="fast")
    check_run(build, res, x_int)  # bit-exact vs golden, measured == mapping.timing per layer
    idx = [i for i, li in enumerate(layers) if li.kind == "copy"]
    assert (res.layer_cycles[:, idx] == [li.predicted_cycles for li in got]).all()
