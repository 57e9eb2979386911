"""The four course labs (docs/labs/) run in fast mode and measure what they claim.

Each lab's ``main(fast=True)`` runs once per module (fixtures); the tests
check its outcomes against references computed here, independently of the
code path the lab uses: hand-counted MACs and sizes, a from-scratch numpy
integer MLP, the torch executor ``mapping.fakequant`` (a second
implementation of the integer semantics), brute-force Pareto fronts, numpy's
``A @ B`` for the hardware.
"""

from __future__ import annotations

import importlib
import sys
from math import floor
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from mapping import fakequant
from mapping import quant as Q
from mapping.passes import calibration_inputs, prepare, prune_channels
from models.finetune import finetune

LABS = Path(__file__).resolve().parents[2] / "docs" / "labs"


def lab(name: str):
    if str(LABS) not in sys.path:
        sys.path.insert(0, str(LABS))
    return importlib.import_module(name)


def mlp_macs(widths) -> int:
    return sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def int_mlp_predict(graph, x: np.ndarray) -> np.ndarray:
    """A from-scratch integer MLP forward from the graph's quantised parameters."""
    q_in = graph.node(graph.inputs[0]).quant
    h = np.clip(np.floor(x.astype(np.float64) / q_in.scale + 0.5),
                -(1 << (q_in.bits - 1)), (1 << (q_in.bits - 1)) - 1).astype(np.int64)
    for n in graph.nodes():
        if n.op != "linear":
            continue
        q = n.quant
        acc = h @ n.params["qweight"].T + n.params["qbias"]
        y = (acc * q.mult + (1 << (q.shift - 1))) >> q.shift  # no overflow: |acc| << 2**47
        lo = 0 if q.relu else -(1 << (q.bits - 1))
        h = np.clip(y, lo, (1 << (q.bits - 1)) - 1)
    return h.argmax(-1)


def fakequant_accuracy(graph, ds) -> float:
    pred = fakequant.run(graph, fakequant.quantize_input(graph, ds.x_test)).argmax(-1)
    return float(np.mean(pred == ds.y_test))


# ------------------------------------------------------------------------------ lab 1
@pytest.fixture(scope="module")
def lab1():
    return lab("lab1_graph").main(fast=True)


def test_lab1_graph_shapes_and_macs(lab1):
    mlp, cnn = lab1["models"]["mlp-digits"], lab1["models"]["cnn-digits"]
    assert mlp["total_macs"] == mlp_macs([64, 64, 32, 10]) == 6464
    assert mlp["macs"] == {"fc1": 64 * 64, "fc2": 64 * 32, "fc3": 32 * 10}
    assert mlp["parameters"] == 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert mlp["order"] == ["x", "fc1", "relu1", "fc2", "relu2", "fc3", "output"]
    # conv MACs = output pixels x in-channels x 3 x 3 per output channel
    conv1, conv2, fc = 8 * 8 * 8 * 1 * 9, 16 * 8 * 8 * 8 * 9, 256 * 10
    assert cnn["macs"] == {"conv1": conv1, "conv2": conv2, "fc": fc}
    assert cnn["total_macs"] == conv1 + conv2 + fc
    assert cnn["out_shapes"]["pool"] == [1, 16, 4, 4] and cnn["out_shapes"]["flatten"] == [1, 256]
    assert cnn["ops"] == {"input": 1, "conv2d": 2, "relu": 2, "maxpool2d": 1, "flatten": 1,
                          "linear": 1, "output": 1}
    assert mlp["edges"] == mlp["nodes"] - 1  # a chain


def test_lab1_int8_accuracy_matches_independent_executors(lab1):
    for name in ("mlp-digits", "cnn-digits"):
        entry = models.get(name)
        ds = entry.dataset()
        res = lab1["models"][name]["quantised"][8]
        # float accuracy as recorded when the checkpoint was trained
        assert res["float_accuracy"] == pytest.approx(entry.metadata()["test_accuracy"])
        assert "relu" not in res["ops_after_prepare"]  # fused by prepare
        g = prepare(entry.load(), entry.example_input(), calibration_inputs(entry), bits=8)
        pred = np.asarray(res["predictions"])
        if name == "mlp-digits":
            assert np.array_equal(pred, int_mlp_predict(g, np.asarray(ds.x_test)))
        assert res["int_accuracy"] == pytest.approx(fakequant_accuracy(g, ds))
        assert res["int_accuracy"] == pytest.approx(np.mean(pred == ds.y_test))
        assert 0.95 <= res["int_accuracy"] and res["float_accuracy"] - res["int_accuracy"] < 0.01


# ------------------------------------------------------------------------------ lab 2
@pytest.fixture(scope="module")
def lab2():
    return lab("lab2_passes").main(fast=True)


def test_lab2_own_passes(lab2):
    a = lab2["part_a"]
    assert a["input_unchanged"] and a["matches_library"]
    assert (a["nodes_before"], a["nodes_after"]) == (7, 5) and a["fused"] == ["fc1", "fc2"]
    assert a["float_size_bits"] == 32 * (64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10)


def test_lab2_own_pass_does_not_mutate_and_fuses():
    m = lab("lab2_passes")
    entry = models.get("cnn-digits")
    from mapping.graph import trace

    g = trace(entry.load(), entry.example_input())
    names = [n.name for n in g.nodes()]
    fused = m.fuse_relu(g)
    assert [n.name for n in g.nodes()] == names and not any(
        n.attrs.get("fused_relu") for n in g.nodes())
    assert [n.name for n in fused.nodes()] == [n for n in names if not n.startswith("relu")]
    x = entry.example_input(seed=3)
    with torch.no_grad():
        ref = entry.load()(x).numpy()
    from mapping.passes import run_float_graph

    assert np.allclose(run_float_graph(fused, x), ref, atol=1e-4)


def test_lab2_fold_keeps_the_function(lab2):
    f = lab2["fold"]
    assert (f["bn_before"], f["bn_after"]) == (2, 0) and f["nodes_after"] == f["nodes_before"] - 2
    assert f["max_abs_diff"] < 1e-4
    assert f["macs"] == 2 * 16 * 16 * 16 * 16 * 9  # two 3x3 convs, 16 -> 16 ch, 16x16
    assert len(f["folded_into"]) == 2


def test_lab2_quantise_and_prune(lab2):
    entry = models.get("mlp-digits")
    ds = entry.dataset()
    rows = {r["variant"]: r for r in lab2["variants"]["mlp-digits"]}
    weights, biases = 6464, 64 + 32 + 10
    assert rows["float"]["size_bits"] == 32 * (weights + biases)
    assert rows["int8"]["size_bits"] == 8 * weights + 32 * biases
    assert rows["int4"]["size_bits"] == 4 * weights + 32 * biases
    assert rows["int8"]["accuracy"] == pytest.approx(0.9667, abs=0.003)  # README table
    assert rows["int4"]["accuracy"] == pytest.approx(0.9472, abs=0.003)
    tuned = rows["pruned + fine-tuned, int8"]
    h1, h2 = tuned["kept"]["fc1"], tuned["kept"]["fc2"]
    assert tuned["macs"] == mlp_macs([64, h1, h2, 10]) <= 0.5 * 6464
    assert tuned["size_bits"] == 8 * mlp_macs([64, h1, h2, 10]) + 32 * (h1 + h2 + 10)
    assert rows["pruned (no fine-tuning)"]["accuracy"] < rows["pruned + fine-tuned"]["accuracy"]
    assert rows["pruned + fine-tuned"]["accuracy"] >= 0.93
    assert tuned["accuracy"] == pytest.approx(fakequant_accuracy(tuned["graph"], ds))
    assert abs(tuned["accuracy"] - rows["pruned + fine-tuned"]["accuracy"]) <= 0.02


# ------------------------------------------------------------------------------ lab 3
@pytest.fixture(scope="module")
def lab3():
    return lab("lab3_search").main(fast=True)


def test_lab3_trials_sizes_and_pareto(lab3):
    trials = lab3["trials"]
    assert len(trials) == lab3["n_trials"] == 20 and lab3["sampler"] == "TPESampler"
    for t in trials:
        r = t["prune_ratio"]
        h1, h2 = 64 - floor(r * 64 + 1e-9), 32 - floor(r * 32 + 1e-9)
        assert t["widths"] == [h1, h2, 10]
        assert t["macs"] == mlp_macs([64, h1, h2, 10])
        assert t["size_bits"] == t["w_bits"] * t["macs"] + 32 * (h1 + h2 + 10)
        assert 2 <= t["a_bits"] <= 8 and 2 <= t["w_bits"] <= 8 and 0 <= t["accuracy"] <= 1
    # brute-force Pareto front: sort by size, keep strictly improving accuracy
    best, front = -1.0, []
    for t in sorted(trials, key=lambda t: (t["size_bits"], -t["accuracy"])):
        if t["accuracy"] > best:
            front.append(t["number"])
            best = t["accuracy"]
    assert sorted(t["number"] for t in lab3["pareto"]) == sorted(front)
    full8 = 8 * 6464 + 32 * 106
    assert max(t["accuracy"] for t in trials) >= 0.94
    assert any(t["size_bits"] <= full8 / 2 and t["accuracy"] >= 0.93 for t in lab3["pareto"])


def test_lab3_best_trial_accuracy_reproduces(lab3):
    t = max(lab3["pareto"], key=lambda t: t["accuracy"])
    entry = models.get("mlp-digits")
    model = entry.load()
    if t["prune_ratio"] > 0:
        model = prune_channels(model, entry.example_input(), round(t["prune_ratio"], 2))
        model = finetune(model, entry.dataset(), epochs=3, lr=1e-3, seed=0).model
    g = prepare(model, entry.example_input(), calibration_inputs(entry), bits=t["a_bits"],
                w_bits=t["w_bits"])
    ds = entry.dataset()
    acc = float(np.mean(int_mlp_predict(g, np.asarray(ds.x_test)) == ds.y_test))
    assert acc == pytest.approx(t["accuracy"])


def test_lab3_rejects_unknown_sampler():
    with pytest.raises(ValueError, match="sampler must be 'tpe' or 'nsga2'"):
        lab("lab3_search").main(fast=True, sampler="random")


# ------------------------------------------------------------------------------ lab 4a
@pytest.fixture(scope="module")
def lab4a():
    return lab("lab4a_nas").main(fast=True)


def numpy_mlp_accuracy(weights: dict, ds) -> float:
    h = np.asarray(ds.x_test, np.float64)
    n = len([k for k in weights if k.endswith(".weight")])
    for i in range(1, n + 1):
        h = h @ weights[f"fc{i}.weight"].astype(np.float64).T + weights[f"fc{i}.bias"]
        if i < n:
            h = np.maximum(h, 0)
    return float(np.mean(h.argmax(-1) == ds.y_test))


def test_lab4a_candidates_macs_accuracy_front(lab4a):
    ds = models.get("mlp-digits").dataset()
    rows = lab4a["rows"]
    assert [tuple(r["hidden"]) for r in rows] == [(16,), (16, 8), (32, 16), (64, 32)]
    for r in rows:
        widths = [64, *r["hidden"], 10]
        assert r["macs"] == mlp_macs(widths)
        assert r["params"] == mlp_macs(widths) + sum(widths[1:])
        assert abs(numpy_mlp_accuracy(r["weights"], ds) - r["accuracy"]) <= 1 / len(ds.y_test)
        assert abs(r["int8_accuracy"] - r["accuracy"]) <= 0.03
    by = {tuple(r["hidden"]): r for r in rows}
    assert by[(64, 32)]["accuracy"] >= 0.9 and by[(16,)]["accuracy"] >= 0.85
    best, front = -1.0, []
    for r in sorted(rows, key=lambda r: (r["macs"], -r["accuracy"])):
        if r["accuracy"] > best:
            front.append(tuple(r["hidden"]))
            best = r["accuracy"]
    assert [tuple(r["hidden"]) for r in lab4a["pareto"]] == front


def test_lab4a_training_is_seeded():
    m = lab("lab4a_nas")
    a, b = m.build((16,)), m.build((16,))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))


# ------------------------------------------------------------------------------ lab 4b
@pytest.fixture(scope="module")
def lab4b(tmp_path_factory):
    return lab("lab4b_hardware").main(fast=True, out_dir=tmp_path_factory.mktemp("lab4b"))


def test_lab4b_simulation_is_bit_exact(lab4b):
    a, b = np.array(lab4b["a"]), np.array(lab4b["b"])
    assert a.shape == (8, 12) and b.shape == (12, 8)
    assert a.min() == -128 and b.min() == -128 and a.max() <= 127 and b.max() <= 127
    expected = a.astype(np.int64) @ b.astype(np.int64)  # no wrap needed in 32 bits here
    assert np.abs(expected).max() < 2**31
    assert np.array_equal(np.array(lab4b["hw_result"]), expected) and lab4b["mismatches"] == 0


def test_lab4b_cycle_count_closed_form(lab4b):
    R = C = 4
    vectors = (8 // R) * (8 // C) * 12  # tiles x K, back to back (K >= R)
    # last row of the last tile: C + 1 cycles after the last vector, plus R - 1 rows
    assert lab4b["last_row_cycle"] == lab4b["predicted_last_row_cycle"] == \
        (vectors - 1) + (C + 1) + (R - 1)


def test_lab4b_synthesis_dsp_inference(lab4b):
    syn = lab4b["synth"]
    assert syn["dsp"] == 16 == lab4b["predicted_dsp"]  # one MULT18X18D per 8x8 multiplier
    assert abs(syn["ff"] - lab4b["predicted_ff"]) <= 0.05 * lab4b["predicted_ff"]
    assert syn["lut"] > 0 and syn["source"].startswith("measured")
    cmp = lab4b["dsp_comparison"]
    assert cmp["arch"] == [1, 1] and cmp["dsp"]["dsp"] == 1 and cmp["nodsp"]["dsp"] == 0
    assert cmp["nodsp"]["lut"] > cmp["dsp"]["lut"] + 100  # an 8x8 multiplier in LUTs


def test_lab4b_short_k_partial_tiles_bit_exact(lab4b):
    """K < R needs idle cycles between passes; M, N not multiples of the array pad."""
    m = lab("lab4b_hardware")
    from mapping.arch import ArchSpec

    arch = ArchSpec(rows=4, cols=4, dataflow="os", in_bits=8, w_bits=8, acc_bits=32)
    a, b = m.random_operands(9, 2, 7, arch, seed=5)
    res = m.simulate(Path(lab4b["verilog"]).read_text(), arch, a, b)
    assert res["cached_build"]
    assert np.array_equal(res["c"], a @ b)
    R, C, K, tiles = 4, 4, 2, 3 * 2
    last_vector = (K - 1) + (tiles - 1) * R  # consecutive `last` vectors are R cycles apart
    assert res["last_row_cycle"] == res["predicted_last_row_cycle"] == \
        last_vector + (C + 1) + (R - 1)


def test_lab4b_schedule_and_reference_edge_cases():
    m = lab("lab4b_hardware")
    from mapping.arch import ArchSpec

    arch = ArchSpec(rows=2, cols=2, dataflow="os", in_bits=4, w_bits=4, acc_bits=8)
    a = np.full((2, 3), -8)
    b = np.full((3, 2), -8)
    # 3 * 64 = 192 wraps to -64 in an 8-bit accumulator
    assert np.array_equal(m.reference_matmul(a, b, 8), np.full((2, 2), Q.wrap(192, 8)))
    assert Q.wrap(192, 8) == -64
    with pytest.raises(ValueError, match="inner dimensions differ"):
        m.schedule(a, np.zeros((2, 2), int), arch)
    with pytest.raises(ValueError, match="output-stationary"):
        m.MatMulUnit(ArchSpec(rows=2, cols=2, dataflow="ws"))
