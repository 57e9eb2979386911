"""models.train: shipped checkpoints reach their recorded accuracy; training is reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models
from models.train import (
    TRAIN_CONFIGS,
    TrainConfig,
    deterministic_torch,
    fit,
    main,
    train,
    train_model,
    weights_sha256,
)

TRAINED = ["cnn-digits", "jsc-mlp", "mlp-digits"]


def numpy_logits(npref, name, model, x):
    """Float64 numpy forward of a trained zoo model (independent of torch)."""
    p = npref.params(model)
    if name == "cnn-digits":
        h = npref.relu(npref.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1))
        h = npref.relu(npref.conv2d(h, p["conv2.weight"], p["conv2.bias"], padding=1))
        h = npref.maxpool2d(h, 2).reshape(len(x), -1)
        return npref.linear(h, p["fc.weight"], p["fc.bias"])
    n = sum(1 for k in p if k.endswith(".weight"))
    for i in range(1, n + 1):
        x = npref.linear(x, p[f"fc{i}.weight"], p[f"fc{i}.bias"])
        x = npref.relu(x) if i < n else x
    return x


def test_trained_set_matches_registry():
    assert sorted(TRAIN_CONFIGS) == TRAINED == [n for n in models.names() if models.get(n).trained]


@pytest.mark.parametrize("name", TRAINED)
def test_checkpoint_reaches_recorded_accuracy(npref, name):
    entry = models.get(name)
    meta = json.loads(entry.metadata_path.read_text())
    assert meta["name"] == name and meta["seed"] == 0 and meta["optimizer"] == "Adam"
    assert meta["torch_version"] and meta["epochs"] == TRAIN_CONFIGS[name].epochs
    model = entry.load()
    assert weights_sha256(model) == meta["weights_sha256"]
    ds = entry.dataset()
    assert meta["n_test"] == len(ds.y_test) and meta["dataset"] == ds.name
    logits = numpy_logits(npref, name, model, np.asarray(ds.x_test, dtype=np.float64))
    correct = int(np.sum(logits.argmax(axis=1) == ds.y_test))
    # float64 numpy vs float32 torch: allow one near-tie to flip
    assert abs(correct - round(meta["test_accuracy"] * len(ds.y_test))) <= 1
    assert models.evaluate(model, ds) == pytest.approx(meta["test_accuracy"], abs=1e-12)
    floor = 0.95 if name.endswith("digits") else 0.75
    assert meta["test_accuracy"] >= floor


def test_training_reproducible_fast_mode():
    a, rec_a = train("mlp-digits", seed=0, epochs=2, out_dir=None)
    b, rec_b = train("mlp-digits", seed=0, epochs=2, out_dir=None)
    c, _ = train("mlp-digits", seed=1, epochs=2, out_dir=None)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert rec_a == rec_b
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    # two epochs already learn something: far above 10% chance
    assert rec_a["test_accuracy"] > 0.5 and rec_a["epochs"] == 2


def test_train_writes_checkpoint_and_record(tmp_path):
    model, rec = train("jsc-mlp", seed=3, epochs=1, out_dir=tmp_path)
    state = torch.load(tmp_path / "jsc-mlp.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    on_disk = json.loads((tmp_path / "jsc-mlp.json").read_text())
    assert on_disk == rec and rec["seed"] == 3 and rec["n_train"] == 8000
    assert rec["parameters"] == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5


def test_deterministic_torch_restores_global_state():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with deterministic_torch():
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det


def test_one_loop_in_models_and_mapping():
    """Pruning's fine-tuning (models.finetune) runs this module's loop: without masks it
    gives the weights train_model gives, and the accuracy models.evaluate measures."""
    from models.finetune import finetune

    entry = models.get("mlp-digits")
    ds = entry.dataset()
    config = TrainConfig(epochs=2, lr=3e-3, batch_size=48, weight_decay=1e-4)
    a = train_model(entry.build(seed=1), ds, config, seed=7)
    x = torch.from_numpy(np.array(ds.x_train, dtype=np.float32))
    y = torch.from_numpy(np.array(ds.y_train, dtype=np.int64))
    b = fit(entry.build(seed=1), x, y, epochs=2, lr=3e-3, batch_size=48, weight_decay=1e-4,
            seed=7)
    assert weights_sha256(a) == weights_sha256(b)
    res = finetune(entry.build(seed=1), ds, epochs=2, lr=3e-3, batch_size=48,
                   weight_decay=1e-4, seed=7)
    assert weights_sha256(res.model) == weights_sha256(a)
    assert res.acc_after == models.evaluate(a, ds)


def test_fit_masks_hold_and_epochs_zero_is_a_no_op():
    entry = models.get("jsc-mlp")
    ds = entry.dataset()
    x = torch.from_numpy(np.array(ds.x_train[:256], dtype=np.float32))
    y = torch.from_numpy(np.array(ds.y_train[:256], dtype=np.int64))
    net = entry.build(seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert fit(net, x, y, epochs=0, lr=1e-3, batch_size=32) is net and not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    w = dict(net.named_parameters())["fc1.weight"]
    mask = (torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) < 0.5).to(w.dtype)
    with torch.no_grad():
        w.mul_(mask)
    fit(net, x, y, epochs=1, lr=1e-2, batch_size=32, masks={"fc1.weight": mask})
    assert torch.all(w[mask == 0] == 0) and not torch.equal(w, before["fc1.weight"] * mask)


def test_errors_name_the_trainable_models(capsys):
    with pytest.raises(ValueError, match="trainable models: cnn-digits, jsc-mlp, mlp-digits"):
        train("resnet18")
    with pytest.raises(SystemExit):
        main(["tiny-transformer"])
    assert "cannot train 'tiny-transformer'" in capsys.readouterr().err


def test_main_cli(tmp_path, capsys):
    assert main(["mlp-digits", "--epochs", "1", "--seed", "2", "--out", str(tmp_path)]) == 0
    assert "mlp-digits: 1 epochs" in capsys.readouterr().out
    assert json.loads((tmp_path / "mlp-digits.json").read_text())["seed"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED)
def test_full_training_reproduces_shipped_checkpoint(name):
    """Re-training with the shipped recipe gives bit-identical weights (same torch build)."""
    meta = models.get(name).metadata()
    _, rec = train(name, seed=meta["seed"], out_dir=None)
    assert rec["test_accuracy"] == meta["test_accuracy"]
    if rec["torch_version"] == meta["torch_version"]:
        assert rec["weights_sha256"] == meta["weights_sha256"]
