"""models.nets: MLPs and the digits CNN against numpy reference forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from models.nets import MLP, CnnDigits, JscMlp, MlpDigits


def mlp_ref(npref, model, x, n_layers):
    p = npref.params(model)
    h = x
    for i in range(1, n_layers + 1):
        h = npref.linear(h, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
        if i < n_layers:
            h = npref.relu(h)
    return h


@pytest.mark.parametrize(
    ("cls", "sizes"), [(MlpDigits, (64, 64, 32, 10)), (JscMlp, (16, 64, 32, 32, 5))]
)
def test_mlp_layer_shapes_and_forward(npref, cls, sizes):
    torch.manual_seed(3)
    model = cls().eval()
    n = len(sizes) - 1
    for i in range(n):
        fc = getattr(model, f"fc{i + 1}")
        assert (fc.in_features, fc.out_features) == (sizes[i], sizes[i + 1])
    assert [f"relu{i}" for i in range(1, n)] == [
        k for k, _ in model.named_children() if k.startswith("relu")
    ]
    x = np.random.default_rng(0).normal(size=(5, sizes[0]))
    got = model(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(got, mlp_ref(npref, model, x, n), rtol=1e-4, atol=1e-5)


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="sizes"):
        MLP((64,))
    with pytest.raises(ValueError, match="sizes"):
        MLP((64, 0, 10))


def test_cnn_forward_matches_numpy(npref):
    torch.manual_seed(1)
    model = CnnDigits().eval()
    x = np.random.default_rng(1).uniform(0, 1, size=(3, 1, 8, 8))
    p = npref.params(model)
    h = npref.relu(npref.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1))
    assert h.shape == (3, 8, 8, 8)
    h = npref.relu(npref.conv2d(h, p["conv2.weight"], p["conv2.bias"], padding=1))
    h = npref.maxpool2d(h, 2)
    assert h.shape == (3, 16, 4, 4)
    ref = npref.linear(h.reshape(3, 256), p["fc.weight"], p["fc.bias"])
    got = model(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_trained_mlp_matches_numpy_on_real_digits(npref):
    entry = models.get("mlp-digits")
    model = entry.load()
    x = np.asarray(entry.dataset().x_test[:20], dtype=np.float64)
    got = model(torch.from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(got, mlp_ref(npref, model, x, 3), rtol=1e-4, atol=1e-4)
