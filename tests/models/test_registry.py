"""models.registry: names, lookup errors, build/load/example_input contracts, fx tracing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.fx

import models
from models.registry import UnknownModelError

EXPECTED = {
    # name: (input_shape, output_shape, num_classes, trained)
    "cnn-digits": ((1, 1, 8, 8), (1, 10), 10, True),
    "jsc-mlp": ((1, 16), (1, 5), 5, True),
    "mlp-digits": ((1, 64), (1, 10), 10, True),
    "resnet-block": ((1, 16, 16, 16), (1, 16, 16, 16), None, False),
    "resnet18": ((1, 3, 224, 224), (1, 1000), 1000, False),
    "tiny-transformer": ((1, 16, 32), (1, 16, 32), None, False),
}
SMALL = [n for n in EXPECTED if n != "resnet18"]


def test_names_sorted_and_complete():
    assert models.names() == sorted(EXPECTED)


def test_unknown_name_error_lists_known_names():
    with pytest.raises(UnknownModelError) as info:
        models.get("lenet")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    msg = str(err)
    assert "lenet" in msg and all(n in msg for n in EXPECTED)
    with pytest.raises(ValueError):
        models.get("MLP-DIGITS")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_metadata_and_forward_shape(name):
    in_shape, out_shape, num_classes, trained = EXPECTED[name]
    entry = models.get(name)
    assert entry.name == name and entry.description
    assert entry.input_shape == in_shape and entry.num_classes == num_classes
    assert entry.trained is trained
    assert (entry.dataset() is not None) is trained
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "x"
    model = entry.load()
    assert not model.training
    x = entry.example_input()
    assert tuple(x.shape) == in_shape and x.dtype == torch.float32
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == out_shape and torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_symbolically_traceable(name):
    entry = models.get(name)
    model = entry.load()
    gm = torch.fx.symbolic_trace(model)
    x = entry.example_input(1)
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
    ops = {n.op for n in gm.graph.nodes}
    assert ops <= {"placeholder", "call_module", "call_function", "call_method", "output"}


@pytest.mark.parametrize("name", SMALL)
def test_build_is_deterministic_in_seed_and_keeps_global_rng(name):
    entry = models.get(name)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = entry.build(seed=4), entry.build(seed=4), entry.build(seed=5)
    assert torch.equal(torch.rand(3), before)  # global RNG untouched by build()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


@pytest.mark.parametrize("name", ["resnet-block", "tiny-transformer"])
def test_untrained_load_equals_build_seed0(name):
    entry = models.get(name)
    loaded, built = entry.load().state_dict(), entry.build(0).state_dict()
    assert all(torch.equal(loaded[k], built[k]) for k in loaded)


@pytest.mark.parametrize("name", ["resnet-block", "resnet18"])
def test_batchnorm_is_nontrivial(name):
    bns = [m for m in models.get(name).load().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        g, b, mu, var = bn.weight, bn.bias, bn.running_mean, bn.running_var
        assert ((g >= 0.5) & (g <= 1.5)).all() and ((var >= 0.5) & (var <= 2.0)).all()
        assert ((b.abs() <= 0.25) & (mu.abs() <= 0.25)).all()
        # really non-trivial: not the default identity values
        assert (g - 1).abs().max() > 0.1 and (var - 1).abs().max() > 0.1
        assert b.abs().max() > 0.05 and mu.abs().max() > 0.05


def test_example_input_is_a_real_test_sample_and_seeded():
    entry = models.get("cnn-digits")
    ds = entry.dataset()
    for seed in (0, 1, 2):
        idx = int(np.random.default_rng(seed).integers(len(ds.x_test)))
        np.testing.assert_array_equal(entry.example_input(seed).numpy(), ds.x_test[idx : idx + 1])
    assert torch.equal(entry.example_input(7), entry.example_input(7))
    rb = models.get("resnet-block")
    assert (rb.example_input(0) >= 0).all() and (rb.example_input(0) == 0).any()
    assert not torch.equal(rb.example_input(0), rb.example_input(1))
    tt = models.get("tiny-transformer").example_input(0)
    assert (tt < 0).any() and abs(float(tt.std()) - 1.0) < 0.2


def test_missing_checkpoint_error(tmp_path, monkeypatch):
    entry = models.get("jsc-mlp")
    monkeypatch.setattr(models.registry, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m models.train jsc-mlp"):
        entry.load()
