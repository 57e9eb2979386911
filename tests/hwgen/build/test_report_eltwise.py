"""report.md of a build with depthwise and lookup-table layers: the memory table lists the
depthwise weight / parameter ROMs and the lookup ROM, the summary counts the depthwise MACs
(run on the element-wise lanes); ``Accelerator.check`` counts the depthwise ROMs against
``rom_budget_bits``.

References, in closed form from the torch model: depthwise ROM rows = ceil(C / rows) x taps
(weights) and ceil(C / rows) (parameters), MACs = output pixels x C x taps, a parameter entry
= acc_bits + 15 + 6 bits (bias, multiplier, shift)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.build.flow import compile_model
from hwgen.rtl.accelerator import Accelerator, GenerationError
from mapping.arch import preset
from mapping.passes import prepare

PARAM_BITS = 32 + 15 + 6  # acc_bits 32: bias, requantisation multiplier, shift


class DwSigmoid(nn.Module):
    """conv 3->6 -> depthwise 3x3/2 (9x9 -> 5x5) -> sigmoid -> pointwise -> linear."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, 2, 1, groups=6)
        self.act = nn.Sigmoid()
        self.pw = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        y = self.act(self.dw(torch.relu(self.c0(x))))
        return self.fc(torch.flatten(torch.relu(self.pw(y)), 1))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.manual_seed(0)
    g = prepare(DwSigmoid().eval(), torch.zeros(1, 3, 9, 9), torch.randn(32, 3, 9, 9))
    arch = preset("tiny-4x4")
    out = tmp_path_factory.mktemp("dwreport") / "b"
    cm = compile_model(g, arch, out, model="dw-sigmoid")
    return cm, arch, (out / "report.md").read_text()


def _row(report: str, name: str) -> list[str]:
    line = next(ln for ln in report.splitlines() if ln.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_memory_table_lists_depthwise_and_lookup_roms(built):
    _, arch, report = built
    groups = math.ceil(6 / arch.rows)
    w_rows, p_rows = groups * 9, groups
    _, shape, bits, _ = _row(report, "depthwise weight ROM")
    assert shape == f"{w_rows} x {arch.w_bits} b x {arch.rows} lanes"
    assert bits == f"{w_rows * arch.w_bits * arch.rows:,}"
    _, shape, bits, _ = _row(report, "depthwise parameter ROM")
    assert shape == f"{p_rows} x {PARAM_BITS} b x {arch.rows} lanes"
    assert bits == f"{p_rows * PARAM_BITS * arch.rows:,}"
    _, shape, bits, _ = _row(report, "activation lookup ROM")
    entries = 1 << 8  # one 8-bit sigmoid table
    assert shape == f"{entries} x {arch.in_bits} b x {arch.rows} lanes"


def test_summary_counts_depthwise_macs_on_the_lanes(built):
    cm, arch, report = built
    dw_macs = 1 * 5 * 5 * 6 * 9  # output pixels x channels x taps
    array_macs = 9 * 9 * 6 * 3 * 9 + 5 * 5 * 4 * 6 + 100 * 3
    assert f"{array_macs:,} MACs on the array" in report
    m = re.search(r"Plus ([\d,]+) depthwise MACs in 1 layer\(s\), run on the element-wise "
                  r"lanes \((\d+) lanes, not the array\) in ([\d,]+) cycles: lane MAC "
                  r"utilisation ([\d.]+)%", report)
    assert m, report
    assert int(m[1].replace(",", "")) == dw_macs and int(m[2]) == arch.rows
    (li,) = [li for li in cm.program.layers if li.kind == "dwconv"]
    assert int(m[3].replace(",", "")) == li.predicted_cycles
    assert float(m[4]) == pytest.approx(100 * dw_macs / (arch.rows * li.predicted_cycles),
                                        abs=0.05)
    assert f"{array_macs + dw_macs:,} MACs in all" in report


def test_rom_budget_counts_the_depthwise_roms():
    """A program of one depthwise layer (10 channels, 3x2 kernel): no weight image, no
    lookup table, so the depthwise ROMs are what the budget refuses."""
    from hwgen.compiler.program import DwLayer, compile_program

    arch = preset("tiny-4x4")
    rng = np.random.default_rng(0)
    C = 10  # noqa: N806
    x = DwLayer("dw", H=5, W=6, C=C, weights=rng.integers(-128, 128, (C, 1, 3, 2)),
                bias=rng.integers(-999, 999, C), mult=np.full(C, 1 << 14),
                shift=np.full(C, 20))
    prog = compile_program(arch, [x])
    groups = math.ceil(C / arch.rows)
    dw_bits = arch.rows * (groups * 6 * arch.w_bits + groups * PARAM_BITS)
    assert not prog.weight_image and not prog.luts
    Accelerator.check(arch, prog, rom_budget_bits=dw_bits)
    with pytest.raises(GenerationError) as exc:
        Accelerator.check(arch, prog, rom_budget_bits=dw_bits - 1)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"depthwise weights and parameters need {dw_bits} "
                                              "ROM bits")
    assert f"({groups * 6} weight rows x {arch.rows} x {arch.w_bits} bits + {groups} " \
        f"parameter rows x {arch.rows} x {PARAM_BITS} bits)" in msg
    assert f"ROM budget of {dw_bits - 1} bits" in msg
