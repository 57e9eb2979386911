"""benchmarks/optimisation_stack.py --fast on mlp-digits: the figures obey what each level
must do (int8 halves the weight bits, pruning halves the MACs, the mapper beats the naive
schedule, the 8x8 array beats 1x1), checked against closed forms from the model's shapes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import optimisation_stack as O  # noqa: E402


@pytest.fixture(scope="module")
def mlp():
    results, facts = O.run(("mlp-digits",), fast=True, samples=1, epochs=1, synth=set(),
                           build_root=Path("unused"), max_instructions=0)
    return results["mlp-digits"], facts["mlp-digits"]


def test_software_level(mlp):
    by, _ = mlp
    # mlp-digits: 64x64, 64x32, 32x10 weights
    assert by["base"].weight_bits == 16 * (64 * 64 + 64 * 32 + 32 * 10)
    assert by["int8"].weight_bits * 2 == by["base"].weight_bits
    assert by["base"].macs == 64 * 64 + 64 * 32 + 32 * 10
    assert by["prune"].macs <= 0.5 * by["base"].macs
    assert by["prune"].cycles < by["int8"].cycles
    assert by["prune"].acc > 0.9 and by["base"].acc > 0.95


def test_compiler_and_hardware_levels(mlp):
    by, _ = mlp
    assert by["mapper"].cycles < by["prune"].cycles  # same model, mapper vs naive
    assert by["mapper16"].cycles < by["base"].cycles
    assert by["hw-ws"].cycles < by["mapper"].cycles
    # naive on 1x1: one instruction per tile (one MAC per tile), plus the END/layer words
    assert by["base"].instructions > by["base"].macs
    assert by["hw-ws"].res["dsp"] > by["mapper"].res["dsp"]
    assert all(r.cycles_src == "e" and r.res_src == "e" for r in by.values())


def test_tables_render(mlp):
    by, _ = mlp
    text = O.stack_table(by, O.STACK)
    overall = [line for line in text.splitlines() if "**overall** base -> hw-ws" in line]
    assert len(overall) == 1
    assert f"{by['base'].cycles / by['hw-ws'].cycles:.2f}x" in overall[0]
    assert overall[0].split(" | ")[1] == "4.13x"  # 103,424 / 25,056 weight bits
    assert O.config_table(list(by.values())).count("\n") == len(O.CONFIGS) + 1
