"""What a zoo compile or trace depends on, as one digest: cached results of the CLI (the
demo build, the mapper's traced nests) are reused only while it is unchanged."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

SOURCE_PACKAGES = ("models", "mapping", "hwgen")
SOURCE_SUFFIXES = (".py", ".pt", ".json", ".toml")


def source_digest() -> str:
    """SHA-256 (16 hex digits) of what a zoo compile depends on: the files of
    ``SOURCE_PACKAGES`` with ``SOURCE_SUFFIXES`` (sources, checkpoints), by relative path."""
    h = hashlib.sha256()
    for pkg in SOURCE_PACKAGES:
        root = Path(importlib.util.find_spec(pkg).origin).parent
        for f in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES
                        and "__pycache__" not in p.parts and p.is_file()):
            rel = f.relative_to(root.parent).as_posix().encode()
            data = f.read_bytes()
            h.update(len(rel).to_bytes(8, "little") + rel + len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()[:16]
