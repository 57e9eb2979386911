"""hwgen.build.graph_store: the quantised graph as JSON + npz. A stored and reloaded zoo graph
has the same nodes (every field, types and dtypes included) and gives the same sim.golden
outputs; no pickle anywhere; values the store cannot represent are refused by name."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

import models
from hwgen.build import graph_store as gs
from hwgen.build.manifest import BuildError, Manifest, hash_tree
from mapping.graph import DataflowGraph, Node
from mapping.passes import prepare_entry
from sim import golden


def store_and_load(graph, directory):
    gs.save_graph(graph, directory)
    return gs.load_graph(directory, SimpleNamespace(files=hash_tree(directory)))


def same(a, b, where="") -> None:
    """Exact equality: same types, numpy dtypes/shapes/values, recursively."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def golden_inputs(name, graph, n=8):
    e = models.get(name)
    ds = e.dataset()
    x = (np.asarray(ds.x_test[:n], dtype=np.float64) if ds is not None
         else np.concatenate([e.example_input(i).numpy() for i in range(n)]))
    shape = tuple(graph.node(graph.inputs[0]).out_shape[1:])
    return golden.quantize_input(graph, x.reshape((-1,) + shape))


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits", "resnet-block"])
def test_zoo_graph_round_trip_same_nodes_and_golden(name, tmp_path):
    g = prepare_entry(models.get(name))
    back = store_and_load(g, tmp_path)
    assert [n.name for n in back.nodes()] == [n.name for n in g.nodes()]
    for a, b in zip(g.nodes(), back.nodes(), strict=True):
        same(a, b, a.name)
    assert sorted(back.nx.edges(data=True)) == sorted(g.nx.edges(data=True))
    x = golden_inputs(name, g)
    ref, out = golden.run(g, x), golden.run(back, x)
    assert ref.dtype == out.dtype
    np.testing.assert_array_equal(out, ref)
    env_ref, env_out = golden.run(g, x, trace=True), golden.run(back, x, trace=True)
    for k in env_ref:  # every intermediate tensor too
        np.testing.assert_array_equal(env_out[k], env_ref[k], err_msg=k)


def test_compiled_build_graph_is_the_compiled_graph(mlp_graph, mlp_build_dir):
    from sim.accelerator import load_build

    build = load_build(mlp_build_dir)
    for a, b in zip(mlp_graph.nodes(), build.graph.nodes(), strict=True):
        same(a, b, a.name)
    x = golden_inputs("mlp-digits", mlp_graph, 32)
    np.testing.assert_array_equal(golden.run(build.graph, x), golden.run(mlp_graph, x))


def test_build_directory_holds_no_pickle(mlp_build_dir):
    assert not [p for p in mlp_build_dir.rglob("*.pkl")]
    for p in mlp_build_dir.rglob("*"):
        if p.is_file():
            head = p.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:] in (b"\x02", b"\x03", b"\x04",
                                                              b"\x05")), p  # pickle header
    with zipfile.ZipFile(mlp_build_dir / "graph.npz") as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    with np.load(mlp_build_dir / "graph.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}  # would raise on an object array
    assert arrays and not any(a.dtype.hasobject for a in arrays.values())
    doc = json.loads((mlp_build_dir / "graph.json").read_text())
    assert doc["format"] == gs.GRAPH_FORMAT and len(doc["nodes"]) == 5
    Manifest.load(mlp_build_dir)  # and the manifest agrees with every file


def test_unusual_values_survive(tmp_path):
    w = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    attrs = {"kernel": (3, 3), "pads": [(1, 2), (0, 0)], "eps": 1e-5, "nan": float("nan"),
             "inf": float("-inf"), "scalar": np.float32(0.5), "n": np.int64(7),
             "by_int": {1: "a", 2: (4,)}, "dollar": {"$tuple": 1}, "none": None, "flag": True,
             "empty": (), "nested": {"x": [np.arange(2)]}}
    g = DataflowGraph([Node("x", "input", out_shape=(1, 3)),
                       Node("y", "relu", inputs=["x", "x"], in_shapes=[(1, 3)], out_shape=(1, 3),
                            attrs=attrs, params={"w": w, "empty": np.zeros((0, 4))})])
    back = store_and_load(g, tmp_path)
    for a, b in zip(g.nodes(), back.nodes(), strict=True):
        same(a, b, a.name)
    assert back.node("y").params["w"].flags.f_contiguous
    assert back.nx.edges["x", "y"]["args"] == [0, 1]


def test_same_graph_same_bytes(mlp_graph, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    gs.save_graph(mlp_graph, a)
    gs.save_graph(mlp_graph.copy(), b)
    for name in ("graph.json", "graph.npz"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_values_the_store_cannot_hold_are_refused(tmp_path):
    g = DataflowGraph([Node("x", "input", out_shape=(1, 3), attrs={"fn": print})])
    with pytest.raises(gs.GraphStoreError, match=r"node 'x'\.attrs\.fn: a builtins\."
                                                 r"builtin_function_or_method cannot be stored"):
        gs.save_graph(g, tmp_path)
    g = DataflowGraph([Node("x", "input", params={"o": np.array([1, "a"], dtype=object)})])
    with pytest.raises(gs.GraphStoreError, match="object array"):
        gs.save_graph(g, tmp_path)
    g = DataflowGraph([Node("x", "input")])
    g.nx.graph["note"] = "graph-level state"
    with pytest.raises(gs.GraphStoreError, match="state the store does not know"):
        gs.save_graph(g, tmp_path)


def test_loading_builds_only_known_classes(tmp_path):
    """A graph.json naming any other class (with a matching hash) is refused, not built."""
    g = DataflowGraph([Node("x", "input", out_shape=(1, 3))])
    gs.save_graph(g, tmp_path)
    doc = json.loads((tmp_path / "graph.json").read_text())
    doc["nodes"][0]["fields"]["attrs"] = {"$dataclass": "subprocess.Popen",
                                          "fields": {"args": "touch x"}}
    (tmp_path / "graph.json").write_text(json.dumps(doc))
    with pytest.raises(BuildError, match=r"graph\.json is malformed \(class 'subprocess.Popen' "
                                         r"is not one the store builds\)"):
        gs.load_graph(tmp_path, SimpleNamespace(files=hash_tree(tmp_path)))
    with pytest.raises(BuildError, match="does not match the SHA-256"):
        gs.load_graph(tmp_path, SimpleNamespace(files={"graph.json": "0", "graph.npz": "0"}))
