"""The quantised graph of a build as ``graph.json`` + ``graph.npz``: no pickle.

``graph.json`` holds every :class:`mapping.graph.Node` (in topological order) with
its fields as JSON; numpy arrays (parameters, ``QuantSpec`` multipliers and scales)
are references ``{"$array": "a3"}`` into ``graph.npz``, written member by member with
``numpy.lib.format.write_array(allow_pickle=False)`` (fixed time stamps: the same
graph gives the same bytes) and read with ``numpy.load(allow_pickle=False)``. Other
tags: ``{"$tuple": [...]}``, ``{"$scalar": "a4"}`` (a numpy scalar, kept as a 0-d
array), ``{"$dict": [[k, v], ...]}`` (a dict with non-string or ``$`` keys) and
``{"$dataclass": "QuantSpec" | "LoopNest" | "Node", "fields": {...}}``: only these
three classes are ever constructed, so loading runs no code from the files. A value
of any other type is refused when saving (:class:`GraphStoreError` naming the node
and field): nothing is silently dropped. Edges are rebuilt from ``Node.inputs``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hwgen.build.manifest import (
    ARRAYS_FILE,
    GRAPH_FILE,
    RECOMPILE,
    BuildError,
    Manifest,
    sha256_bytes,
)
from mapping.graph import DataflowGraph, GraphError, Node
from mapping.loopnest import LoopNest, LoopNestError
from mapping.quant import QuantSpec

GRAPH_FORMAT = "hwgen-graph/1"
CLASSES = {"Node": Node, "QuantSpec": QuantSpec, "LoopNest": LoopNest}
_STAMP = (1980, 1, 1, 0, 0, 0)


class GraphStoreError(ValueError):
    """The graph holds a value the store cannot represent (the message names it)."""


# ------------------------------------------------------------------ encode
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray, where: str) -> str:
        if a.dtype.hasobject:
            raise GraphStoreError(f"{where}: an object array cannot be stored without pickle")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return key

    def value(self, v: Any, where: str) -> Any:
        t = type(v)
        if v is None or t in (bool, int, float, str):
            return v
        if t is np.ndarray:
            return {"$array": self.array(v, where)}
        if isinstance(v, np.generic):
            return {"$scalar": self.array(np.asarray(v), where)}
        if t is tuple:
            return {"$tuple": [self.value(x, where) for x in v]}
        if t is list:
            return [self.value(x, where) for x in v]
        if t is dict:
            if all(type(k) is str and not k.startswith("$") for k in v):
                return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
            return {"$dict": [[self.value(k, where), self.value(x, f"{where}[{k!r}]")]
                              for k, x in v.items()]}
        if t.__name__ in CLASSES and CLASSES[t.__name__] is t:
            return {"$dataclass": t.__name__, "fields": {
                f.name: self.value(getattr(v, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(v) if f.init}}
        raise GraphStoreError(f"{where}: a {t.__module__}.{t.__qualname__} cannot be stored "
                              "in a build (JSON values, tuples, numpy arrays, QuantSpec and "
                              "LoopNest can)")


def graph_to_data(graph: DataflowGraph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(graph.json document, arrays)`` of ``graph``."""
    if not isinstance(graph, DataflowGraph):
        raise GraphStoreError(f"a mapping.graph.DataflowGraph is expected, got "
                              f"{type(graph).__name__}")
    extra = sorted(set(vars(graph)) - {"nx", "_order"})
    if extra or graph.nx.graph:
        raise GraphStoreError(f"the graph has state the store does not know: "
                              f"{', '.join(extra) or sorted(graph.nx.graph)}")
    enc = _Encoder()
    nodes = []
    for n in graph.nodes():
        data = graph.nx.nodes[n.name]
        if set(data) != {"node"}:
            raise GraphStoreError(f"node {n.name!r}: unknown networkx attributes "
                                  f"{sorted(set(data) - {'node'})}")
        nodes.append(enc.value(n, f"node {n.name!r}"))
    return {"format": GRAPH_FORMAT, "arrays": ARRAYS_FILE, "nodes": nodes}, enc.arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` of ``arrays`` (uncompressed, fixed time stamps: deterministic bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, a in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_STAMP)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)
    return buf.getvalue()


def save_graph(graph: DataflowGraph, directory: str | Path) -> list[str]:
    """Write ``graph.json`` and ``graph.npz`` into ``directory``; their names."""
    doc, arrays = graph_to_data(graph)
    out = Path(directory)
    (out / GRAPH_FILE).write_text(json.dumps(doc, indent=1) + "\n")
    (out / ARRAYS_FILE).write_bytes(npz_bytes(arrays))
    return [GRAPH_FILE, ARRAYS_FILE]


# ------------------------------------------------------------------ decode
class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[str] = set()

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"array {key!r} is not in {ARRAYS_FILE}")
        self.used.add(key)
        return self.arrays[key]

    def value(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1 and next(iter(v)).startswith("$"):
            (tag, body), = v.items()
            if tag == "$array":
                return self.array(body)
            if tag == "$scalar":
                return self.array(body)[()]
            if tag == "$tuple":
                return tuple(self.value(x) for x in body)
            if tag == "$dict":
                return {_hashable(self.value(k)): self.value(x) for k, x in body}
            raise ValueError(f"unknown tag {tag!r}")
        if set(v) == {"$dataclass", "fields"}:
            cls = CLASSES.get(v["$dataclass"])
            if cls is None:
                raise ValueError(f"class {v['$dataclass']!r} is not one the store builds")
            return cls(**{k: self.value(x) for k, x in v["fields"].items()})
        return {k: self.value(x) for k, x in v.items()}


def _hashable(k: Any) -> Any:
    if isinstance(k, list):
        raise ValueError("a dict key cannot be a list")
    return k


def graph_from_data(doc: Any, arrays: dict[str, np.ndarray]) -> DataflowGraph:
    """Inverse of :func:`graph_to_data` (ValueError/TypeError/GraphError if malformed)."""
    if not isinstance(doc, dict) or doc.get("format") != GRAPH_FORMAT:
        raise ValueError(f"not a {GRAPH_FORMAT} document")
    dec = _Decoder(arrays)
    nodes = [dec.value(x) for x in doc["nodes"]]
    if not all(isinstance(n, Node) for n in nodes):
        raise ValueError("every entry of nodes must be a Node")
    unused = sorted(set(arrays) - dec.used)
    if unused:
        raise ValueError(f"{ARRAYS_FILE} holds arrays no node uses: {', '.join(unused[:5])}")
    return DataflowGraph(nodes)


def load_graph(directory: str | Path, manifest: Manifest) -> DataflowGraph:
    """The graph of a build directory; each file's bytes are checked against the manifest's
    SHA-256 before they are parsed (BuildError naming the file if anything is off)."""
    path = Path(directory)
    blobs = {}
    for name in (GRAPH_FILE, ARRAYS_FILE):
        f = path / name
        try:
            blobs[name] = f.read_bytes()
        except FileNotFoundError:
            raise BuildError(f"{path} is incomplete: {name} is missing; {RECOMPILE}") from None
        if manifest.files.get(name) != sha256_bytes(blobs[name]):
            raise BuildError(f"{f} does not match the SHA-256 in manifest.json (edited?); "
                             f"{RECOMPILE}")
    try:
        with np.load(io.BytesIO(blobs[ARRAYS_FILE]), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"{path / ARRAYS_FILE} is not a plain numpy archive "
                         f"({str(exc).splitlines()[0]}); {RECOMPILE}") from None
    try:
        return graph_from_data(json.loads(blobs[GRAPH_FILE]), arrays)
    except (ValueError, TypeError, KeyError, GraphError, LoopNestError) as exc:
        raise BuildError(f"{path / GRAPH_FILE} is malformed ({str(exc).splitlines()[0]}); "
                         f"{RECOMPILE}") from None
