"""hwgen models (hwgen/cli/models_cmd.py): table, JSON output and errors."""

from __future__ import annotations

import json

import pytest

import models
from hwgen.cli import main


def test_json_listing_matches_registry_and_checkpoints(capsys):
    assert main(["models", "--json", "mlp-digits", "resnet-block"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mlp-digits", "resnet-block"]
    mlp, block = rows
    assert mlp["input_shape"] == [1, 64] and mlp["output_shape"] == [1, 10]
    assert mlp["parameters"] == 6570 and mlp["macs"] == 6464
    recorded = models.get("mlp-digits").metadata()["test_accuracy"]
    assert mlp["test_accuracy_measured"] == pytest.approx(recorded)
    assert mlp["test_accuracy_recorded"] == recorded
    assert block["trained"] is False and block["test_accuracy_measured"] is None


def test_table_lists_every_model(capsys):
    assert main(["models", "--no-eval"]) == 0
    out = capsys.readouterr().out
    for name in models.names():
        assert name in out
    assert "1x3x224x224" in out and "1.81G" in out and "(recorded)" in out


def test_unknown_model_is_a_user_error(capsys):
    assert main(["models", "vgg16"]) == 2
    err = capsys.readouterr().err
    assert "unknown model(s) vgg16" in err and "mlp-digits" in err
