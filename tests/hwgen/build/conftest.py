"""A compiled build shared by the build-directory tests (copy it before changing it)."""

from __future__ import annotations

import shutil

import pytest

import models
from hwgen.build.flow import compile_model
from mapping.arch import preset
from mapping.passes import prepare_entry


@pytest.fixture(scope="session")
def mlp_graph():
    return prepare_entry(models.get("mlp-digits"))


@pytest.fixture(scope="session")
def mlp_build_dir(mlp_graph, tmp_path_factory):
    """mlp-digits on tiny-4x4, as ``hwgen compile`` writes it (read-only: use ``build_copy``)."""
    out = tmp_path_factory.mktemp("contract") / "mlp"
    compile_model(mlp_graph, preset("tiny-4x4"), out, model="mlp-digits", settings={"bits": 8})
    return out


@pytest.fixture
def build_copy(mlp_build_dir, tmp_path):
    """A private copy of :func:`mlp_build_dir` to edit."""
    return shutil.copytree(mlp_build_dir, tmp_path / "copy")


@pytest.fixture
def matches_golden_and_torch():
    """``check(module, q, x, cm, sim)``: the RTL outputs ``sim`` of build ``cm`` equal
    ``sim.golden`` on the quantised graph ``q`` for the float batch ``x``, and, scaled back,
    stay near what the float ``module`` computes."""
    import numpy as np
    import torch

    from sim import golden

    def check(module, q, x, cm, sim) -> None:
        b = x.shape[0]
        xi = golden.quantize_input(q, x)
        assert np.array_equal(golden.run(q, xi).reshape(b, -1), sim.outputs.reshape(b, -1))
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = sim.outputs.reshape(want.shape) * cm.manifest.output.scale
        assert np.abs(got - want).max() <= 0.1 * np.abs(want).max() + 0.05

    return check
