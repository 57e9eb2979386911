"""Independent numpy reference implementations of the zoo's layers (float64).

Exposed through the ``npref`` fixture so the tests work under any pytest
import mode. Each function follows the textbook definition, not PyTorch code.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import erf


def params(model) -> dict[str, np.ndarray]:
    """The model's state_dict as float64 numpy arrays."""
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


def linear(x, w, b=None):
    y = x @ w.T
    return y if b is None else y + b


def relu(x):
    return np.maximum(x, 0.0)


def conv2d(x, w, b=None, stride=1, padding=0):
    """NCHW cross-correlation by explicit patch extraction."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    r, s = w.shape[2], w.shape[3]
    patches = sliding_window_view(xp, (r, s), axis=(2, 3))  # N C P' Q' R S
    patches = patches[:, :, ::stride, ::stride]
    y = np.einsum("ncpqrs,kcrs->nkpq", patches, w)
    return y if b is None else y + b[None, :, None, None]


def batchnorm(x, gamma, beta, mean, var, eps=1e-5):
    c = (None, slice(None), None, None)
    return (x - mean[c]) / np.sqrt(var[c] + eps) * gamma[c] + beta[c]


def maxpool2d(x, k):
    n, c, h, w = x.shape
    return x[:, :, : h - h % k, : w - w % k].reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layernorm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


@pytest.fixture(scope="session")
def npref() -> SimpleNamespace:
    return SimpleNamespace(
        params=params,
        linear=linear,
        relu=relu,
        conv2d=conv2d,
        batchnorm=batchnorm,
        maxpool2d=maxpool2d,
        softmax=softmax,
        layernorm=layernorm,
        gelu=gelu,
    )
