"""A tiny compiler cache for Verilator's design-independent run-time objects.

Every Verilator build compiles the same run-time library (``verilated.cpp``,
``verilated_vpi.cpp``, ``verilated_threads.cpp``, ``verilated_dpi.cpp``, ...)
from the wheel's ``include/`` folder: about 30 s of the ~35 s a small design
takes on a laptop core, for files that never change. Verilator's Makefile puts
``$(OBJCACHE)`` in front of every compile command, so the runner sets
``OBJCACHE`` to this script (see :func:`objcache_environment`).

Only a compile whose one source file lies inside ``VERILATOR_ROOT/include`` is
cached; every other command (the design's own C++, cocotb's ``verilator.cpp``
which includes the design header) runs unchanged. The key hashes the compiler
command (with the output name and build folder taken out), the compiler's
identity and the source text; the wheel's headers belong to its version,
which is part of ``VERILATOR_ROOT``'s contents and so of the source path.
A hit copies the object (and its ``-MMD`` dependency file) into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sim.tools import patched_environ

CACHE_ENV = "HWGEN_SIM_OBJCACHE_DIR"


def _compile_parts(args: list[str]) -> tuple[Path, Path] | None:
    """(source, object) of a single-source ``-c`` compile, or None if not one."""
    if "-c" not in args:
        return None
    sources = [a for a in args if a.endswith((".cpp", ".cc", ".c")) and not a.startswith("-")]
    if len(sources) != 1:
        return None
    source = Path(sources[0])
    if "-o" in args:
        index = args.index("-o")
        if index + 1 >= len(args):
            return None
        obj = Path(args[index + 1])
    else:
        obj = Path(source.stem + ".o")
    return source, obj


def _cacheable(source: Path) -> bool:
    root = os.environ.get("VERILATOR_ROOT")
    if not root:
        return False
    try:
        source.resolve().relative_to((Path(root) / "include").resolve())
    except ValueError:
        return False
    return True


def _key(compiler_args: list[str], source: Path, obj: Path) -> str:
    normalised = [a for a in compiler_args if a not in (str(obj), obj.name)]
    compiler = shutil.which(compiler_args[0]) or compiler_args[0]
    stat = os.stat(compiler)
    blob = json.dumps({"args": normalised, "compiler": [compiler, stat.st_size, stat.st_mtime],
                       "source": hashlib.sha256(source.read_bytes()).hexdigest(),
                       "path": str(source.resolve())})
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def main(argv: list[str]) -> int:
    """Run (or replay) the compile command ``argv``; returns the compiler's exit code."""
    if not argv:
        print("usage: objcache.py COMPILER ARGS...", file=sys.stderr)
        return 2
    parts = _compile_parts(argv)
    cache_dir = os.environ.get(CACHE_ENV)
    if parts is None or cache_dir is None or not _cacheable(parts[0]):
        return subprocess.call(argv)
    source, obj = parts
    dep = obj.with_suffix(".d")
    entry = Path(cache_dir) / _key(argv, source, obj)
    if (entry / "object.o").is_file():
        shutil.copyfile(entry / "object.o", obj)
        if (entry / "deps.d").is_file():
            shutil.copyfile(entry / "deps.d", dep)
        return 0
    code = subprocess.call(argv)
    if code == 0 and obj.is_file():
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
        shutil.copyfile(obj, staging / "object.o")
        if "-MMD" in argv and dep.is_file():
            shutil.copyfile(dep, staging / "deps.d")
        try:
            staging.rename(entry)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(staging, ignore_errors=True)
    return code


@contextlib.contextmanager
def objcache_environment(cache_dir: Path) -> Iterator[None]:
    """Set ``OBJCACHE`` (read by Verilator's Makefile) and the cache folder for the block."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    values = {"OBJCACHE": f"{sys.executable} {Path(__file__).resolve()}",
              CACHE_ENV: str(cache_dir)}
    with patched_environ(values):
        yield


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
