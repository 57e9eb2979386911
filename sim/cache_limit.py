"""A size bound for the simulator build caches: least recently used builds go first.

Every design simulated adds a build to the cache (a Verilator harness of a corpus model
is 75-160 MB); without a bound a day of DSE verification or fuzzing fills the disk (it
did: 75 GB). After each new build, :func:`prune` removes finished builds of the same cache
folder, the least recently used first, until the folder is within the limit:
``$HWGEN_SIM_CACHE_GB`` gigabytes (default :data:`DEFAULT_GB`; ``0`` turns the bound off).

A build is a folder holding the runner's marker file (``hwgen_build.json``, written when
the build finished; its modification time is the build's last use, touched on every cache
hit, and it records the build's size in bytes). Folders without a marker are builds in
progress or failed ones: never touched here. A build whose lock another process holds
(it is being built or checked) is skipped, as is the build just made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

LIMIT_ENV = "HWGEN_SIM_CACHE_GB"
DEFAULT_GB = 10.0


def limit_bytes() -> int:
    """The bound from ``$HWGEN_SIM_CACHE_GB`` (0: none); a value that is not a number >= 0
    raises ValueError naming the variable."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return int(DEFAULT_GB * 1e9)
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise ValueError(f"${LIMIT_ENV} = {raw!r} is invalid: give the simulator build cache "
                         "limit in gigabytes (a number >= 0; 0 = no limit)")
    return int(gb * 1e9)


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (symbolic links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _builds(root: Path, marker: str) -> list[tuple[float, int, Path]]:
    """``(last use, bytes, folder)`` of every finished build directly under ``root``."""
    out = []
    for d in root.iterdir() if root.is_dir() else ():
        m = d / marker
        try:
            used = m.stat().st_mtime
        except OSError:
            continue  # not a finished build
        try:
            size = int(json.loads(m.read_text()).get("bytes", -1))
        except (OSError, ValueError, AttributeError):
            size = -1
        out.append((used, size if size >= 0 else folder_bytes(d), d))
    return sorted(out, key=lambda t: (t[0], t[2].name))


def prune(root: Path, marker: str, keep: Path | None = None,
          limit: int | None = None) -> list[Path]:
    """Remove the least recently used finished builds under ``root`` until they total at most
    ``limit`` bytes (default :func:`limit_bytes`; 0: no bound); ``keep`` and builds locked by
    another process stay. Returns the folders removed (one line on stderr says so)."""
    limit = limit_bytes() if limit is None else limit
    if limit <= 0:
        return []
    builds = _builds(Path(root), marker)
    total = sum(b for _, b, _ in builds)
    removed, freed = [], 0
    for _, size, d in builds:
        if total <= limit:
            break
        if keep is not None and d.resolve() == Path(keep).resolve():
            continue
        lock = d.with_name(f"{d.name}.lock")
        try:
            handle = open(lock, "a")  # noqa: SIM115 - held across the removal below
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use by another process
            try:
                shutil.rmtree(d, ignore_errors=True)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        total -= size
        freed += size
        removed.append(d)
    if removed:
        print(f"hwgen: simulator build cache {root}: removed {len(removed)} least recently "
              f"used build(s), {freed / 1e9:.2f} GB, to stay within {limit / 1e9:g} GB "
              f"(${LIMIT_ENV})", file=sys.stderr)
    return removed
