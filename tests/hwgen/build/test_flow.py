"""hwgen.build.flow: planning (what runs where), program layers, the build directory, determinism,
and the transformer's kernels run bit-exactly against sim.golden (Amaranth simulation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import models
from hwgen.build import flow
from hwgen.compiler.program import AddLayer, ComputeLayer, FlattenLayer, PoolLayer, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping import timing
from mapping.arch import preset
from mapping.mapper import map_graph
from mapping.passes import prepare_entry
from sim import golden

TINY = preset("tiny-4x4")


@pytest.fixture(scope="module")
def graphs():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = prepare_entry(models.get(name))
        return cache[name]

    return get


def test_plan_chain_models(graphs):
    kind, places = flow.plan(graphs("cnn-digits"))
    assert kind == "chain"
    where = {p.name: p.where for p in places}
    assert where == {"x": "io", "conv1": "accelerator", "conv2": "accelerator",
                     "pool": "accelerator", "flatten": "layout", "fc": "accelerator",
                     "output": "io"}
    assert [p.layer for p in places if p.where == "accelerator"] == [0, 1, 2, 3]
    kind, places = flow.plan(graphs("resnet-block"))
    assert kind == "chain" and {p.name for p in places if p.where == "accelerator"} == {
        "conv1", "conv2", "add"}


def test_plan_transformer_lists_host_ops(graphs):
    g = graphs("tiny-transformer")
    kind, places = flow.plan(g)
    assert kind == "kernels"
    host = {p.name: p.op for p in places if p.where == "host"}
    # the three host ops; the residual adds run on the host between kernels
    assert {op for op in host.values()} == {"softmax", "layernorm", "gelu", "add"}
    assert sorted(n for n, op in host.items() if op in ("softmax", "layernorm", "gelu")) == [
        "gelu", "norm1", "norm2", "softmax"]
    on_array = {p.name for p in places if p.where == "accelerator"}
    assert on_array == {n.name for n in g.nodes() if n.op in ("linear", "matmul")}


def test_program_layers_of_cnn_and_resnet(graphs):
    g = graphs("cnn-digits")
    layers = flow.program_layers(g, map_graph(g, TINY))
    assert [type(x) for x in layers] == [ComputeLayer, ComputeLayer, PoolLayer, FlattenLayer,
                                         ComputeLayer]
    pool = layers[2]
    assert (pool.kind, pool.H, pool.W, pool.C, pool.kernel, pool.src) == (
        "max", 8, 8, 16, (2, 2), "conv2")
    g = graphs("resnet-block")
    layers = flow.program_layers(g, map_graph(g, TINY))
    add = layers[-1]
    assert isinstance(add, AddLayer) and (add.src, add.src2, add.relu) == ("conv2", "input", True)
    q = g.node("add").quant
    assert (add.ma, add.mb, add.shift) == (q.mult[0], q.mult[1], q.shift[0])


def test_stream_layout_round_trip():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # NCHW
    s = flow.to_stream(x, flow.stream_layout(x.shape))
    assert s.shape == (2, 60)
    np.testing.assert_array_equal(s[1].reshape(4, 5, 3), x[1].transpose(1, 2, 0))
    y = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(flow.to_stream(y, flow.stream_layout(y.shape)), y)


@pytest.fixture(scope="module")
def mlp_build(graphs, tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "mlp"
    return flow.compile_model(graphs("mlp-digits"), TINY, out, model="mlp-digits",
                              settings={"bits": 8})


def test_build_directory(mlp_build):
    out = mlp_build.out_dir
    for name in ("hwgen_accel.v", "weights.hex", "program.hex", "params.hex", "manifest.json",
                 "schedule.json", "report.md", "graph.json", "graph.npz"):
        assert (out / name).is_file(), name
    man = json.loads((out / "manifest.json").read_text())
    assert man["format_version"] == flow.FORMAT_VERSION and man["kind"] == "chain"
    assert man["model"] == "mlp-digits" and man["settings"] == {"bits": 8}
    assert man["input"] == {"shape": [1, 64], "layout": "row-major", "bits": 8,
                            "scale": man["input"]["scale"]}
    assert man["output"]["shape"] == [1, 10]
    assert set(man["files"]) >= {"hwgen_accel.v", "schedule.json", "graph.json", "graph.npz",
                                 "report.md"}
    # predicted cycles are the timing contract of each scheduled layer
    sched = json.loads((out / "schedule.json").read_text())
    from mapping.schedule import Schedule

    s = Schedule.from_dict(sched)
    assert [x["predicted_cycles"] for x in man["layers"]] == [
        timing.layer_cycles(lm, TINY).cycles for lm in s.layers]


def test_report_contents(mlp_build):
    text = (mlp_build.out_dir / "report.md").read_text()
    for part in ("# mlp-digits on tiny-4x4", "## What runs where", "## Per-layer mapping",
                 "## On-chip memory", "estimated", "| fc1 | gemm | 1x64x64"):
        assert part in text, part
    prog = mlp_build.program
    total = sum(li.predicted_cycles for li in prog.layers) + 64 + 10
    assert f"**{total:,} cycles**" in text
    assert "host-executed" not in text.lower()
    # no throughput at the unverified clock target (the board's Fmax is measured by pnr)
    assert "inferences/s at" in text and "--pnr" in text
    assert f"at {TINY.clock_mhz:g} MHz" not in text and " us " not in text


def test_compile_is_deterministic(graphs, mlp_build, tmp_path):
    again = flow.compile_model(graphs("mlp-digits"), TINY, tmp_path / "again",
                               model="mlp-digits", settings={"bits": 8})
    for f in sorted(p.name for p in mlp_build.out_dir.iterdir()):
        assert (mlp_build.out_dir / f).read_bytes() == (again.out_dir / f).read_bytes(), f


def test_flow_errors(graphs, tmp_path):
    g = graphs("mlp-digits")
    with pytest.raises(flow.FlowError, match="in_bits=4"):
        flow.compile_model(g, TINY.replace(in_bits=4, w_bits=4, acc_bits=16), tmp_path)
    with pytest.raises(flow.FlowError, match="not quantised"):
        flow.compile_model(models.get("mlp-digits") and _unquantised(), TINY, tmp_path)
    with pytest.raises(flow.FlowError, match="ArchSpec"):
        flow.compile_model(g, "tiny-4x4", tmp_path)


def _unquantised():
    from mapping.graph import trace

    e = models.get("mlp-digits")
    return trace(e.load(), e.example_input())


# ------------------------------------------------------------------ transformer kernels
def test_transformer_kernels_bit_exact(graphs):
    """An attention-head matmul kernel (second operand from the host through the external
    port) runs on the generated top and equals the golden model's tensor, in the predicted
    cycles; the placeholder program's instructions equal those with the real operand."""
    from test_rtl_accelerator import run_accelerator

    g = graphs("tiny-transformer")
    sched = map_graph(g, TINY)
    kernels = {k["name"]: k for k in flow.kernel_layers(g, sched, TINY)}
    assert sorted(kernels) == ["fc1", "fc2", "k_proj", "matmul.0", "matmul.1", "matmul_1.0",
                               "matmul_1.1", "out_proj", "q_proj", "v_proj"]
    e = models.get("tiny-transformer")
    x = golden.quantize_input(g, e.example_input(3).numpy())
    env = golden.run(g, x, trace=True)

    k = kernels["matmul.1"]
    assert k["arch"].weight_store == "external"
    head = 1
    a, b = env["transpose"][0, head], env["transpose_3"][0, head]  # q (16x16), k^T (16x16)
    placeholder = compile_program(k["arch"], [k["layer"]])
    real = ComputeLayer(k["layer"].mapping, b, k["layer"].bias, k["layer"].mult,
                        k["layer"].shift, out_bits=k["layer"].out_bits, relu=k["layer"].relu)
    image = compile_program(k["arch"], [real]).weight_image
    assert compile_program(k["arch"], [real]).instructions == placeholder.instructions
    acc = Accelerator(k["arch"], placeholder, weights=image)
    out, layers, _ = run_accelerator(acc, a.reshape(-1))
    np.testing.assert_array_equal(out, env["matmul"][0, head].reshape(-1))
    assert layers == [placeholder.layers[0].predicted_cycles]


# ------------------------------------------------------------------ per-layer cycles sweep
SWEEP_ARCHS = {"tiny-4x4": preset("tiny-4x4"), "edge-8x8": preset("edge-8x8")}


def _run_model_amaranth(graph, arch, seed=0):
    """One input through the flow's program on the Amaranth top: (out, golden, layers, pred)."""
    from test_rtl_accelerator import run_accelerator

    sched = map_graph(graph, arch)
    x_name = graph.inputs[0]
    out_name = graph.node(graph.outputs[0]).inputs[0]
    prog = compile_program(arch, flow.program_layers(graph, sched), output=out_name)
    shape = graph.node(x_name).out_shape
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << 7), (1 << 7) - 1
    x = rng.integers(0 if len(shape) == 4 else lo, hi + 1, size=shape)  # resnet input is ReLU'd
    y_shape = graph.node(out_name).out_shape
    ref = flow.to_stream(golden.run(graph, x), flow.stream_layout(y_shape))
    out, layers, _ = run_accelerator(Accelerator(arch, prog),
                                     flow.to_stream(x, flow.stream_layout(shape))[0],
                                     max_cycles=400_000)
    return out, ref[0], layers, [li.predicted_cycles for li in prog.layers]


def _sweep_arch(name, arch_name, dataflow):
    arch = SWEEP_ARCHS[arch_name].replace(dataflow=dataflow)
    if name == "resnet-block" and arch.act_words < 12288:
        arch = arch.replace(act_words=12288)  # input + conv1 + conv2 (input live for the add)
    return arch


def test_layer_cycles_equal_prediction_jsc_tiny_os(graphs):
    out, ref, layers, pred = _run_model_amaranth(graphs("jsc-mlp"),
                                                 _sweep_arch("jsc-mlp", "tiny-4x4", "os"))
    np.testing.assert_array_equal(out, ref)
    assert layers == pred


@pytest.mark.slow
@pytest.mark.parametrize("arch_name", list(SWEEP_ARCHS))
@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits", "jsc-mlp", "resnet-block"])
def test_layer_cycles_equal_prediction_sweep(graphs, name, arch_name, dataflow):
    """Every model x {tiny-4x4, edge-8x8} x {ws, os}: bit-exact on one input and every
    layer's hardware counter equal to mapping.timing (the 0.5% bound, met exactly)."""
    out, ref, layers, pred = _run_model_amaranth(graphs(name), _sweep_arch(name, arch_name,
                                                                           dataflow))
    np.testing.assert_array_equal(out, ref)
    assert layers == pred


# ------------------------------------------------------------------ given schedule
def test_given_naive_schedule_compiles_and_runs_bit_exact(graphs, tmp_path):
    """compile_model(schedule=naive) builds that schedule (manifest, schedule.json, predicted
    cycles) and the hardware runs it bit-exactly in exactly mapping.timing's cycles."""
    from test_rtl_accelerator import run_accelerator

    from mapping.naive import naive_schedule
    from mapping.schedule import Schedule

    g = graphs("mlp-digits")
    naive = naive_schedule(g, TINY)
    cm = flow.compile_model(g, TINY, tmp_path / "naive", model="mlp-digits", schedule=naive)
    assert cm.manifest["objective"] == "given schedule"
    s = Schedule.from_json((tmp_path / "naive" / "schedule.json").read_text())
    assert s.layers == naive.layers
    assert [(lm.tile_m, lm.tile_n, lm.tile_k) for lm in s.layers] == [(1, 4, 4)] * 3
    naive_pred = [timing.layer_cycles(lm, TINY).cycles for lm in naive.layers]
    assert [x["predicted_cycles"] for x in cm.manifest["layers"]] == naive_pred
    assert sum(naive_pred) > sum(c.cycles for c in map_graph(g, TINY).costs)
    x = np.random.default_rng(3).integers(-128, 128, size=(1, 64))
    out, layers, _ = run_accelerator(Accelerator(TINY, cm.program), x[0],
                                     max_cycles=4 * sum(naive_pred) + 1000)
    np.testing.assert_array_equal(out, golden.run(g, x)[0])
    assert layers == naive_pred


def test_given_schedule_must_match_the_graph(graphs, tmp_path):
    from mapping.naive import naive_schedule

    g, other = graphs("mlp-digits"), graphs("cnn-digits")
    with pytest.raises(flow.FlowError, match=r"schedule does not match the graph: it maps "
                                             r"\['conv1', 'conv2', 'fc'\]"):
        flow.compile_model(g, TINY, tmp_path, schedule=naive_schedule(other, TINY))
    with pytest.raises(flow.FlowError, match="differs from the array's 'ws'"):
        flow.compile_model(g, TINY, tmp_path,
                           schedule=naive_schedule(g, TINY.replace(dataflow="os")))
    with pytest.raises(flow.FlowError, match="must be a mapping.schedule.Schedule"):
        flow.compile_model(g, TINY, tmp_path, schedule={"layers": []})
