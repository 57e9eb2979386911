"""models.transformer: the encoder block against a numpy multi-head attention."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.transformer import TinyTransformer


def encoder_ref(npref, p, x, heads=2):
    s, e = x.shape[1], x.shape[2]
    d = e // heads

    def proj(name, h):
        return npref.linear(h, p[f"{name}.weight"], p[f"{name}.bias"])

    q, k, v = (proj(n, x[0]) for n in ("q_proj", "k_proj", "v_proj"))  # (S, E)
    ctx = np.zeros((s, e))
    for h in range(heads):  # per-head attention, head h uses columns h*d .. (h+1)*d
        cols = slice(h * d, (h + 1) * d)
        att = npref.softmax(q[:, cols] @ k[:, cols].T / np.sqrt(d), axis=-1)
        ctx[:, cols] = att @ v[:, cols]
    y = npref.layernorm(x[0] + proj("out_proj", ctx), p["norm1.weight"], p["norm1.bias"])
    m = proj("fc2", npref.gelu(proj("fc1", y)))
    return npref.layernorm(y + m, p["norm2.weight"], p["norm2.bias"])[None]


def test_tiny_transformer_matches_numpy(npref):
    entry = models.get("tiny-transformer")
    model = entry.load()
    for seed in (0, 1):
        x = entry.example_input(seed)
        got = model(x).detach().double().numpy()
        ref = encoder_ref(npref, npref.params(model), x.double().numpy())
        assert got.shape == (1, 16, 32)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_tiny_transformer_attributes():
    model = TinyTransformer()
    assert model.scale == 0.25 and model.head_dim == 16 and model.heads == 2
    assert [n for n, _ in model.named_children()] == [
        "q_proj", "k_proj", "v_proj", "out_proj", "norm1", "fc1", "gelu", "fc2", "norm2",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="divisible"):
        TinyTransformer(embed=30, heads=4)
