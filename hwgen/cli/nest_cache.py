"""The traced compute nests of a model, cached for ``hwgen map``.

Mapping needs each compute layer's loop nest (shapes and operand widths), not the model: the
first ``hwgen map`` of a model traces it (``import torch`` alone takes longer than mapping
resnet18) and stores ``[(layer, LoopNest)]`` as JSON; later runs read it back and never
import torch. The key covers everything the nests depend on: the model (a zoo name, or
the bytes of a ``.pt2`` / ``.onnx`` file; a ``file.py:NAME`` model may import other files
and is not cached), ``--input-shape``, ``--bits``, the installed torch and the sources of
``models``, ``mapping`` and ``hwgen`` (:func:`hwgen.cli.sources.source_digest`). A missing
or unreadable entry is a miss, never an error. The folder is ``$HWGEN_NEST_CACHE``, else
``$XDG_CACHE_HOME/hwgen/nests``, else ``~/.cache/hwgen/nests``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

from mapping.loopnest import LoopNest

FORMAT = 1


def cache_dir() -> Path:
    env = os.environ.get("HWGEN_NEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hwgen" / "nests"


def cache_key(spec: str, input_shape: str | None, bits: int) -> str | None:
    """The key of a model's nests, or None when they are not cached (``file.py:NAME``)."""
    from hwgen.cli.sources import source_digest

    parts = [f"format {FORMAT}", f"bits {bits}", f"input {input_shape}", f"spec {spec}"]
    if spec.endswith((".pt2", ".onnx")):
        try:
            parts.append(hashlib.sha256(Path(spec).read_bytes()).hexdigest())
        except OSError:
            return None
    elif spec.endswith(".py") or ".py:" in spec:
        return None
    try:
        parts.append(f"torch {metadata.version('torch')}")
    except metadata.PackageNotFoundError:
        parts.append("torch none")
    parts.append(source_digest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def load(key: str) -> list[tuple[str, LoopNest]] | None:
    """The cached nests of ``key``, or None (missing, unreadable or of another format)."""
    try:
        data = json.loads((cache_dir() / f"{key}.json").read_text())
        if data.get("format") != FORMAT:
            return None
        return [(str(name), LoopNest(**nest)) for name, nest in data["nests"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def store(key: str, nests: list[tuple[str, LoopNest]]) -> None:
    """Write the nests of ``key`` (atomically: a reader never sees half a file); a cache
    that cannot be written is skipped."""
    from dataclasses import asdict

    text = json.dumps({"format": FORMAT, "nests": [[n, asdict(x)] for n, x in nests]})
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, d / f"{key}.json")
    except OSError:
        return
