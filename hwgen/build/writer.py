"""The one writer of build directories: stage beside the destination, hash, move into place.

::

    with BuildDir(out) as b:            # b.path: a fresh folder beside `out`
        ...write files into b.path...
        man = b.finish(manifest)        # hashes every file, writes manifest.json
    # here `out` holds the complete build (replacing a previous one)

If anything raises inside the ``with``, the staging folder is deleted and ``out``
is untouched: it does not exist or still holds the previous complete build. A
destination that exists but is not a build directory (a non-empty folder without
``manifest.json``) is refused before anything is written, so a build never replaces
unrelated files. The staging folder is ``.<name>.partial-<pid>-<random>`` beside
``out`` (same file system: the move is a rename); one left by a killed process can be
deleted.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from pathlib import Path

from hwgen.build.manifest import MANIFEST_FILE, BuildError, Manifest, hash_tree


def check_destination(dest: Path) -> None:
    """BuildError unless ``dest`` is absent, an empty folder or a build directory."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BuildError(f"{dest} exists and is not a directory; choose another output "
                         "directory")
    if dest.is_dir() and not (dest / MANIFEST_FILE).is_file() and any(dest.iterdir()):
        raise BuildError(f"{dest} is not empty and not a build directory (no {MANIFEST_FILE}); "
                         "choose a new or empty output directory")


class BuildDir:
    """Context manager staging one build directory (module docstring)."""

    def __init__(self, dest: str | Path):
        self.dest = Path(dest)
        self.path: Path | None = None
        self.manifest: Manifest | None = None

    def __enter__(self) -> BuildDir:
        check_destination(self.dest)
        parent = self.dest.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self.path = parent / f".{self.dest.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()  # honours the umask, unlike mkdtemp's 0700
        return self

    def finish(self, manifest: Manifest) -> Manifest:
        """:func:`seal` the staged folder; the final manifest (the build moves into place
        when the ``with`` block ends)."""
        assert self.path is not None, "finish() outside the with block"
        self.manifest = seal(self.path, manifest)
        return self.manifest

    def __exit__(self, exc_type, exc, tb) -> None:
        staged, self.path = self.path, None
        if exc_type is not None or self.manifest is None:
            shutil.rmtree(staged, ignore_errors=True)
            if exc_type is None:
                raise RuntimeError("BuildDir: finish(manifest) was not called; nothing written")
            return
        try:
            move_into_place(staged, self.dest)
        finally:
            shutil.rmtree(staged, ignore_errors=True)  # gone after a successful move


def seal(directory: Path, manifest: Manifest) -> Manifest:
    """Hash every file under ``directory`` into ``manifest.files`` and write its
    ``manifest.json`` (a staged build, or a kernel's design folder inside one)."""
    sealed = dataclasses.replace(manifest, files=hash_tree(Path(directory)))
    problem = sealed.problem()
    if problem:
        raise BuildError(f"{directory}: incomplete {manifest.kind!r} build: {problem}")
    sealed.save(directory)
    return sealed


def move_into_place(staged: Path, dest: Path) -> None:
    """Rename ``staged`` to ``dest``; a previous ``dest`` is moved aside first and deleted
    after (a rename cannot replace a non-empty folder)."""
    if not dest.exists():
        os.replace(staged, dest)
        return
    check_destination(dest)  # still a build (or empty) when we got here
    old = dest.absolute().parent / f".{dest.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.replace(dest, old)
    try:
        os.replace(staged, dest)
    except OSError:
        os.replace(old, dest)  # put the previous build back
        raise
    shutil.rmtree(old, ignore_errors=True)
