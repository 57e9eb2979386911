"""Bad inputs across the flow: each a one-line error naming what was wrong and what is
allowed (the build-directory cases: tests/hwgen/build/test_manifest.py, test_writer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.build.flow import FlowError, compile_model
from mapping.arch import preset
from mapping.graph import GraphError
from mapping.passes import prepare
from mapping.quant import QuantError
from sim import golden


class One(nn.Module):
    def __init__(self, n_in: int = 4):
        super().__init__()
        self.fc = nn.Linear(n_in, 3)

    def forward(self, x):
        return self.fc(x)


class Two(One):
    def forward(self, x):
        y = self.fc(x)
        return y, torch.relu(y)


def _one_line(info) -> str:
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_calibration_data(value):
    torch.manual_seed(0)
    calib = torch.randn(8, 4)
    calib[5, 2] = value
    with pytest.raises(QuantError) as info:
        prepare(One(), torch.randn(1, 4), calib)
    msg = _one_line(info)
    assert "1 NaN/inf value(s) (first at index (5, 2))" in msg and "finite" in msg


def test_non_finite_or_non_numeric_inputs():
    torch.manual_seed(0)
    g = prepare(One(), torch.randn(1, 4), torch.randn(8, 4))
    with pytest.raises(golden.GoldenError) as info:
        golden.quantize_input(g, np.array([[0.5, np.nan, 0.0, 1.0], [0, 0, np.inf, 0]]))
    assert "2 NaN/inf value(s) (first at index (0, 1))" in _one_line(info)
    with pytest.raises(golden.GoldenError, match="real numbers, got dtype <U1"):
        golden.quantize_input(g, np.array([["a", "b", "c", "d"]]))
    assert golden.quantize_input(g, np.zeros((2, 4))).shape == (2, 4)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_zero_size_dimension():
    with pytest.raises(GraphError) as info:
        prepare(One(0), torch.randn(1, 0), torch.randn(8, 0))
    assert "shape (1, 0) has a zero-size dimension" in _one_line(info)


def test_model_with_more_than_one_output(tmp_path):
    torch.manual_seed(0)
    g = prepare(Two(), torch.randn(1, 4), torch.randn(8, 4))
    with pytest.raises(FlowError) as info:
        compile_model(g, preset("tiny-4x4"), tmp_path / "b")
    assert "returns 2 output(s)" in _one_line(info)
    assert not (tmp_path / "b").exists()
