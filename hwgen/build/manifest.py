"""The build-directory contract: one typed :class:`Manifest` in ``manifest.json``.

A build directory is written by one writer (:mod:`hwgen.build.writer`, used by
:func:`hwgen.build.emit.emit` and :func:`hwgen.build.flow.compile_model`) and read
by ``sim/``, ``dse/`` and the CLI only through :meth:`Manifest.load`, which refuses,
each with a one-line :class:`BuildError` naming the file and what to do:

- a directory that is missing or holds no ``manifest.json``;
- a manifest that is not JSON or not of this layout (wrong types, missing fields);
- a build of another layout (``format_version``; a format-1 build holds
  ``graph.pkl``) or another hwgen version: recompile;
- a listed file that is missing, or whose SHA-256 differs from the manifest (edited).

``files`` lists every file of the directory (``kernels/<name>/...`` included) but
``manifest.json`` itself, with its SHA-256. Nothing in a build is a pickle: the
quantised graph is JSON + ``.npz`` (:mod:`hwgen.build.graph_store`), so loading a
build never executes code.

Kinds: ``"design"`` (:func:`~hwgen.build.emit.emit` alone: one accelerator, no
model), ``"chain"`` (one program runs the whole model) and ``"kernels"`` (one
single-layer design per array op in ``kernels/<name>/``, each with its own
``"design"`` manifest). A :class:`Manifest` is also a read-only mapping of its JSON
(``man["program"]["input_count"]``) for readers written against the dict.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import hwgen
from mapping.arch import ArchSpec, ArchSpecError

FORMAT_VERSION = 3
"""Layout version of a build directory. 1: the graph was ``graph.pkl`` (a pickle);
2: ``graph.json`` + ``graph.npz``, hashes of every file, ``kind: "design"``;
3: per-axis convolution geometry in ``schedule.json`` (``stride_h``/``stride_w``,
``pad_h``/``pad_w``, ``dil_h``/``dil_w``) and its LAYER instruction fields."""

MANIFEST_FILE = "manifest.json"
SCHEDULE_FILE = "schedule.json"
REPORT_FILE = "report.md"
GRAPH_FILE = "graph.json"
ARRAYS_FILE = "graph.npz"
OLD_GRAPH_FILE = "graph.pkl"  # format 1: never read

KINDS = ("design", "chain", "kernels")
RECOMPILE = "recompile it with `hwgen compile`"


class BuildError(ValueError):
    """A build directory that cannot be used; the message is one line naming the file and
    saying what to do."""


# ----------------------------------------------------------------- parts
@dataclass(frozen=True)
class StreamInfo:
    """The input or output tensor: torch ``shape`` (batch first), stream ``layout``
    (``"nchw->nhwc"`` or ``"row-major"``), ``bits`` and quantisation ``scale``."""

    shape: tuple[int, ...]
    layout: str
    bits: int
    scale: float


@dataclass(frozen=True)
class LayerInfo:
    """One program layer and its estimated cycles (``mapping.timing``)."""

    name: str
    kind: str
    predicted_cycles: int


@dataclass(frozen=True)
class Placement:
    """Where one graph node runs: ``accelerator`` (program layer ``layer``), ``host``
    (float64 on the host, see ``mapping.quant.host_op``), ``layout`` (data movement, no
    instruction) or ``io`` (the input/output streams)."""

    name: str
    op: str
    where: str
    layer: int | None = None
    note: str = ""


@dataclass(frozen=True)
class KernelInfo:
    """One kernel of a ``"kernels"`` build: its design directory (relative) and sizes."""

    name: str
    node: str
    dir: str
    weights: str
    weight_store: str
    predicted_cycles: int
    input_count: int
    output_count: int
    weight_words: int


_PARTS = {"input": StreamInfo, "output": StreamInfo, "layers": LayerInfo,
          "placements": Placement, "kernels": KernelInfo}
PROGRAM_KEYS = ("input_count", "output_count", "weight_words", "param_entries")
"""Keys of ``program`` (``hwgen.compiler.program.Program.summary()``) readers rely on."""


# ----------------------------------------------------------------- manifest
@dataclass(frozen=True, eq=False)
class Manifest(Mapping):
    """The typed ``manifest.json`` (module docstring). ``eq``: as mappings (JSON views)."""

    format_version: int
    hwgen_version: str
    kind: str
    arch: ArchSpec
    files: dict[str, str] = field(default_factory=dict)  # relative path -> SHA-256
    # the model (chain, kernels)
    model: str | None = None
    objective: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    input: StreamInfo | None = None
    output: StreamInfo | None = None
    placements: tuple[Placement, ...] = ()
    kernels: tuple[KernelInfo, ...] = ()
    # the accelerator design (design, chain)
    top_module: str | None = None
    verilog: str | None = None
    rtlil: str | None = None
    weight_store: str | None = None
    program: dict[str, int] | None = None
    layers: tuple[LayerInfo, ...] = ()
    predicted_cycles_total: int | None = None
    predicted_cycles_note: str | None = None
    timing_constants: dict[str, int] | None = None
    array_latency: int | None = None
    postproc_latency: int | None = None
    ports: dict[str, Any] | None = None

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``None`` fields left out); a fresh copy."""
        return json.loads(json.dumps(self._json))

    @cached_property
    def _json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.name == "arch":
                v = v.to_dict()
            elif f.name in ("input", "output"):
                v = dataclasses.asdict(v)
                v["shape"] = list(v["shape"])
            elif f.name in _PARTS:
                v = [dataclasses.asdict(x) for x in v]
            out[f.name] = v
        return json.loads(json.dumps(out, sort_keys=True))

    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self._json[key])  # a view: editing it does not edit the manifest

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    def __repr__(self) -> str:
        return (f"Manifest(kind={self.kind!r}, model={self.model!r}, arch={self.arch.name!r}, "
                f"format_version={self.format_version}, {len(self.files)} files)")

    @property
    def synth_source(self) -> str | None:
        """What synthesis reads: the RTLIL if the design has one, else the Verilog."""
        return self.rtlil or self.verilog

    # ------------------------------------------------------------ JSON
    def to_json(self) -> str:
        return json.dumps(self._json, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = MANIFEST_FILE) -> Manifest:
        """Parse and type-check a manifest object (BuildError naming ``source`` if malformed)."""
        def bad(what: str) -> BuildError:
            return BuildError(f"{source}: {what}; {RECOMPILE}")

        if not isinstance(d, dict):
            raise bad(f"a JSON object is expected, not {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise bad(f"unknown field(s) {', '.join(unknown)}")
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            try:
                kw[f.name] = _parse(f.name, v)
            except (TypeError, ValueError, ArchSpecError) as exc:
                raise bad(f"field {f.name!r} is malformed ({str(exc).splitlines()[0]})") from None
        for need in ("format_version", "hwgen_version", "kind", "arch"):
            if need not in kw:
                raise bad(f"field {need!r} is missing")
        man = cls(**kw)
        problem = man.problem()
        if problem:
            raise bad(problem)
        return man

    def problem(self) -> str | None:
        """What is missing for this ``kind`` (None if complete)."""
        if self.kind not in KINDS:
            return f"kind {self.kind!r} is not one of {', '.join(KINDS)}"
        need: list[str] = []
        if self.kind in ("design", "chain"):
            need += ["top_module", "verilog", "program", "predicted_cycles_total"]
        if self.kind in ("chain", "kernels"):
            need += ["model", "objective"]
        if self.kind == "chain":
            need += ["input", "output"]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            return f"a {self.kind!r} manifest needs field(s) {', '.join(missing)}"
        if self.program is not None:
            lacking = [k for k in PROGRAM_KEYS if not isinstance(self.program.get(k), int)]
            if lacking:
                return f"program lacks integer {', '.join(lacking)}"
        files = list(self.required_files())
        unlisted = [f for f in files if f not in self.files]
        if unlisted:
            return f"files does not list {', '.join(unlisted)}"
        return None

    def required_files(self) -> Iterator[str]:
        """The files the readers of this kind open."""
        for name in (self.verilog, self.rtlil):
            if name:
                yield name
        if self.kind in ("chain", "kernels"):
            yield from (GRAPH_FILE, ARRAYS_FILE, SCHEDULE_FILE)

    def save(self, directory: str | Path) -> Path:
        """Write ``manifest.json`` into ``directory`` (use :mod:`hwgen.build.writer`, which
        hashes the files first)."""
        path = Path(directory) / MANIFEST_FILE
        path.write_text(self.to_json())
        return path

    # ------------------------------------------------------------ reading
    @classmethod
    def load(cls, directory: str | Path, *, verify: bool = True) -> Manifest:
        """Read and check the build directory ``directory`` (module docstring); ``verify``
        also checks that every listed file exists and matches its SHA-256."""
        path = Path(directory)
        raw = read_raw(path)
        check_version(path, raw)
        man = cls.from_dict(raw, str(path / MANIFEST_FILE))
        if verify:
            man.verify(path)
        return man

    def verify(self, directory: str | Path) -> None:
        """Every listed file exists and has the manifest's SHA-256 (BuildError if not)."""
        path = Path(directory)
        for name, digest in sorted(self.files.items()):
            f = path / name
            if not f.is_file():
                raise BuildError(f"{path} is incomplete: {name} is missing; {RECOMPILE}")
            if sha256_file(f) != digest:
                raise BuildError(f"{f} does not match the SHA-256 in {MANIFEST_FILE} "
                                 f"(edited?); {RECOMPILE}")


def _parse(name: str, v: Any) -> Any:
    """One manifest field from JSON (TypeError/ValueError if malformed)."""
    if v is None:
        return None
    if name == "arch":
        if not isinstance(v, dict):
            raise TypeError("an object is expected")
        return ArchSpec.from_dict(v)
    if name in ("input", "output"):
        s = _part(StreamInfo, v)
        return dataclasses.replace(s, shape=tuple(int(x) for x in s.shape))
    if name in _PARTS:
        if not isinstance(v, list):
            raise TypeError("a list is expected")
        return tuple(_part(_PARTS[name], x) for x in v)
    want = {"format_version": int, "hwgen_version": str, "kind": str, "files": dict,
            "settings": dict, "program": dict, "timing_constants": dict, "ports": dict,
            "predicted_cycles_total": int, "array_latency": int, "postproc_latency": int}
    t = want.get(name, str)
    if not isinstance(v, t) or (t is int and isinstance(v, bool)):
        raise TypeError(f"{t.__name__} expected, got {type(v).__name__}")
    if name == "files" and not all(isinstance(k, str) and isinstance(h, str)
                                   for k, h in v.items()):
        raise TypeError("file name -> SHA-256 strings expected")
    return v


def _part(cls, v: Any):
    """A part (``StreamInfo``, ``LayerInfo``, ...) from JSON, its scalar types checked."""
    if not isinstance(v, dict):
        raise TypeError(f"{cls.__name__}: an object is expected")
    hints = typing.get_type_hints(cls)
    if set(v) - set(hints):
        raise ValueError(f"{cls.__name__}: unknown key(s) {', '.join(sorted(set(v) - set(hints)))}")
    for key, x in v.items():
        ok = _SCALARS.get(hints[key])
        if ok is not None and not ok(x):
            raise TypeError(f"{cls.__name__}.{key} = {x!r} has the wrong type")
    return cls(**v)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_SCALARS = {
    int: _is_int, str: lambda x: isinstance(x, str),
    float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
    int | None: lambda x: x is None or _is_int(x),
    tuple[int, ...]: lambda x: isinstance(x, list) and all(_is_int(d) for d in x),
}


# ----------------------------------------------------------------- helpers
def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_tree(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` but its ``manifest.json`` (POSIX relative
    paths, sorted)."""
    out = {}
    for f in sorted(directory.rglob("*")):
        rel = f.relative_to(directory).as_posix()
        if f.is_file() and rel != MANIFEST_FILE:
            out[rel] = sha256_file(f)
    return out


def read_raw(path: Path) -> Any:
    """The JSON of ``path/manifest.json`` (BuildError if the directory or file is missing, or
    the file is not JSON)."""
    if not path.is_dir():
        raise BuildError(f"build directory {path} does not exist; create it with "
                         f"`hwgen compile MODEL -o {path}`")
    man_file = path / MANIFEST_FILE
    if not man_file.is_file():
        raise BuildError(f"{path} is not a build directory (no {MANIFEST_FILE}); create it with "
                         f"`hwgen compile MODEL -o {path}`")
    try:
        return json.loads(man_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) \
            else ""
        raise BuildError(f"{man_file} is not valid JSON{where}; {RECOMPILE}") from None


def check_version(path: Path, raw: Any) -> None:
    """Refuse a manifest of another build format or hwgen version (one line: recompile)."""
    man_file = path / MANIFEST_FILE
    if not isinstance(raw, dict):
        raise BuildError(f"{man_file}: a JSON object is expected; {RECOMPILE}")
    version, fmt = raw.get("hwgen_version"), raw.get("format_version")
    this = f"this is hwgen {hwgen.__version__} (build format {FORMAT_VERSION})"
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < FORMAT_VERSION:
        pkl = (f", with the graph as a pickle ({OLD_GRAPH_FILE}), which is not loaded"
               if (path / OLD_GRAPH_FILE).exists() else "")
        raise BuildError(f"{man_file}: {path} was built by an older hwgen ({version}, build "
                         f"format {fmt}{pkl}); {this}: {RECOMPILE}")
    if fmt > FORMAT_VERSION:
        raise BuildError(f"{man_file}: {path} was built by a newer hwgen ({version}, build "
                         f"format {fmt}); {this}: {RECOMPILE} or update hwgen")
    if version != hwgen.__version__:
        raise BuildError(f"{man_file}: {path} was built by hwgen {version} (build format "
                         f"{fmt}); {this}: {RECOMPILE}")
