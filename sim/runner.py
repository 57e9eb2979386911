"""Build a Verilog design once and run cocotb tests on it (Verilator or Icarus).

The one entry point most callers need is :func:`run_cocotb`::

    results = run_cocotb(verilog_text, "top", "path/to/tb_top.py", {"n": 8})

It builds through ``cocotb_tools.runner.get_runner`` (Verilator by default,
Icarus with ``simulator="icarus"``), runs the cocotb test module and returns
the dict the test wrote with :func:`sim.cocotb_lib.write_results`, plus run
metadata under the reserved key ``"_run"``.

Parameters travel to the test as a JSON file whose path is in the environment
variable ``HWGEN_SIM_PARAMS`` (read with :func:`sim.cocotb_lib.load_params`);
results come back through a JSON file named by ``HWGEN_SIM_RESULTS``.

**Build cache.** A build lives in ``<cache_dir>/<key>/`` where ``key`` hashes
the Verilog text, the toplevel, the simulator, its version, the build
arguments, the timescale and the waveform format. A second run of the same
design reuses the build (``BUILD_COUNT`` counts real builds in this process).
Concurrent processes building the same key serialise on a lock file. The
default cache is ``$HWGEN_SIM_CACHE``, else ``$XDG_CACHE_HOME/hwgen/sim``,
else ``~/.cache/hwgen/sim``. Each cache folder is bounded (``$HWGEN_SIM_CACHE_GB``,
default 10): after a new build the least recently used ones go (:mod:`sim.cache_limit`).

**Timescale.** Amaranth-generated Verilog has no ``timescale``: every build
passes ``timescale`` (default 1 ns / 1 ps) to the runner.

**Verilator warnings.** ``-Wno-fatal`` keeps any warning from failing the
build (it is still printed to the build log), and the classes in
:data:`VERILATOR_WARNINGS_OFF` are silenced because Amaranth/Yosys output
produces them by construction.

**Power-up state.** Verilator builds with ``--x-initial unique`` and runs with
``+verilator+rand+reset+2`` (seeded from ``seed``): every variable without an
explicit initial value starts random instead of zero, as Icarus starts it as
``x``, so a design whose outputs depend on undefined state fails its checks.

**Precompiled headers.** When Verilator splits a large design into several
C++ files (``VM_PARALLEL_BUILDS=1``) its Makefile first compiles a precompiled
header and then reads it with ``$(CFG_CXXFLAGS_PCH_I) Vtop__pch.h.fast``. The
PyPI wheel was configured with ``CFG_CXXFLAGS_PCH_I`` empty, so g++ receives
``Vtop__pch.h.fast`` as an input file and fails ("linker input file not
found"). :data:`VERILATOR_MAKEFLAGS` passes ``CFG_CXXFLAGS_PCH_I=-include`` to
``make`` (through ``MAKEFLAGS``), the value configure picks for GCC, which
keeps parallel compilation of large designs working
(``tests/sim/test_runner.py`` forces a split build to prove it).

**Run-time object cache.** Verilator's run-time library is compiled once per
cache folder and reused (:mod:`sim.objcache`), which takes a small design's
build from ~35 s to a few seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from sim.cache_limit import folder_bytes, prune
from sim.objcache import objcache_environment
from sim.tools import (
    SIMULATORS,
    SimulatorInfo,
    check_verilator_fst,
    find_simulator,
    patched_environ,
    simulator_environment,
)

DEFAULT_TIMESCALE = ("1ns", "1ps")
PARAMS_ENV = "HWGEN_SIM_PARAMS"
RESULTS_ENV = "HWGEN_SIM_RESULTS"
RESERVED_KEY = "_run"

VERILATOR_WARNINGS_OFF = (
    # seen in Amaranth 0.5 output (tests/sim lints the test designs with this list):
    "WIDTHEXPAND",     # Yosys emits operands narrower than the operator; extension is intended
    "UNSIGNED",        # unsigned comparisons with zero (``x >= 0`` on an unsigned signal)
    # patterns of the same generated code that larger designs produce:
    "WIDTHTRUNC",      # wider results assigned to narrower wires; truncation is intended
    "WIDTHCONCAT",     # unsized constants inside concatenations
    "CASEINCOMPLETE",  # casez without default: the preceding default assignment covers it
    "CASEOVERLAP",     # casez arms overlap: Yosys relies on first-match priority
    "UNOPTFLAT",       # bits of one vector feed each other combinationally: speed hint only
    "CMPCONST",        # comparisons against constants that are always true/false
)
"""Verilator lint classes silenced for Amaranth output (``-Wno-<CLASS>`` each).

Every other warning is still printed in ``build.log``; ``-Wno-fatal`` keeps it
from failing the build."""

VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"
"""``make`` variables for Verilator builds (see "Precompiled headers" above)."""

BUILD_COUNT = 0
"""Number of builds actually run (not served from the cache) in this process."""

_MARKER = "hwgen_build.json"


class SimulationError(RuntimeError):
    """A build or a cocotb run failed; the message names what failed and the log to read."""


def default_cache_dir() -> Path:
    """Where builds are cached unless ``cache_dir`` is given (see module docstring)."""
    if os.environ.get("HWGEN_SIM_CACHE"):
        return Path(os.environ["HWGEN_SIM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hwgen" / "sim"


def objcache_dir() -> Path:
    """Run-time object cache (:mod:`sim.objcache`): ``$HWGEN_SIM_OBJCACHE`` or
    ``<default cache>/objcache``; shared by every ``cache_dir`` (content-keyed)."""
    if os.environ.get("HWGEN_SIM_OBJCACHE"):
        return Path(os.environ["HWGEN_SIM_OBJCACHE"])
    return default_cache_dir() / "objcache"


def _waves_format(simulator: str, waves: bool | str) -> str | None:
    if waves is False or waves is None:
        return None
    fmt = "fst" if waves is True else waves
    if fmt not in ("fst", "vcd"):
        raise ValueError(f"waves must be False, True (FST), 'fst' or 'vcd', got {waves!r}")
    return fmt


def _verilog_text(verilog: str | os.PathLike) -> str:
    if isinstance(verilog, os.PathLike):
        return Path(verilog).read_text()
    if not isinstance(verilog, str) or "module" not in verilog:
        raise ValueError("verilog must be Verilog source text (a str containing a module) "
                         "or a pathlib.Path to a Verilog file")
    return verilog


def _build_args(simulator: str, build_args: Sequence[str], waves: str | None) -> list[str]:
    args = list(build_args)
    if simulator == "verilator":
        args = ["-Wno-fatal", *(f"-Wno-{w}" for w in VERILATOR_WARNINGS_OFF),
                "--x-initial", "unique", *args]
        if waves == "fst":
            args.append("--trace-fst")
    return args


def build_key(verilog: str, toplevel: str, info: SimulatorInfo, build_args: Sequence[str],
              timescale: tuple[str, str], waves: str | None) -> str:
    """The cache key of one build: a hash over everything that changes the binary, and the
    folder of the cocotb libraries it links to (another venv's build, whose folder was
    deleted, failed to load ``libcocotbvpi_verilator.so``)."""
    from cocotb_tools import config

    blob = json.dumps({"verilog": verilog, "toplevel": toplevel, "simulator": info.name,
                       "version": info.version, "build_args": list(build_args),
                       "timescale": list(timescale), "waves": waves,
                       "cocotb_libs": str(config.libs_dir)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _artifact(build_dir: Path, simulator: str, toplevel: str) -> Path:
    return build_dir / (toplevel if simulator == "verilator" else "sim.vvp")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(verilog: str | os.PathLike, toplevel: str, *, simulator: str = "verilator",
          build_args: Sequence[str] = (), timescale: tuple[str, str] = DEFAULT_TIMESCALE,
          waves: bool | str = False, cache_dir: str | os.PathLike | None = None) -> dict:
    """Build ``verilog`` for ``simulator`` unless the cache already holds it.

    Returns ``{"build_dir", "key", "cached", "build_seconds", "simulator", "version"}``.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; supported: {', '.join(SIMULATORS)}")
    if not toplevel or not toplevel.isidentifier():
        raise ValueError(f"toplevel must be a Verilog module name, got {toplevel!r}")
    text = _verilog_text(verilog)
    if not re.search(rf"\bmodule\s+\\?{re.escape(toplevel)}\s*[(#;]", text):
        raise ValueError(f"toplevel module {toplevel!r} is not defined in the Verilog text")
    info = find_simulator(simulator)
    fmt = _waves_format(simulator, waves)
    if simulator == "verilator" and fmt == "fst":
        check_verilator_fst()
    args = _build_args(simulator, build_args, fmt)
    key = build_key(text, toplevel, info, args, timescale, fmt)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    build_dir = root / key
    meta = {"build_dir": str(build_dir), "key": key, "simulator": simulator,
            "version": info.version}

    def make(build_dir: Path) -> dict:
        source = build_dir / f"{toplevel}.v"
        source.write_text(text)
        log = build_dir / "build.log"

        from cocotb_tools.runner import get_runner

        with simulator_environment(info), _verilator_make_env(simulator):
            runner = get_runner(simulator)
            try:
                runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                             build_args=args, timescale=timescale, waves=fmt is not None,
                             log_file=log)
            except (RuntimeError, SystemExit) as exc:
                raise SimulationError(f"{simulator} build of {toplevel!r} failed ({exc}); "
                                      f"log {log}:\n{_tail(log)}") from None
        global BUILD_COUNT
        BUILD_COUNT += 1
        return {**meta, "build_args": args, "timescale": list(timescale), "waves": fmt}

    cached, seconds = cached_build(build_dir, _artifact(build_dir, simulator, toplevel), make)
    return {**meta, "cached": cached, "build_seconds": seconds}


def cached_build(build_dir: Path, artifact: Path, make: Callable[[Path], dict]
                 ) -> tuple[bool, float]:
    """``(cached, build_seconds)``: run ``make(build_dir)`` into a fresh ``build_dir`` unless
    a finished build (its marker and ``artifact``) is there. ``build_dir`` is named by a
    content key; a lock beside it lets one process build while the others wait. ``make``
    returns what the marker records besides the build seconds."""
    with _locked(build_dir.with_name(f"{build_dir.name}.lock")):
        marker = build_dir / _MARKER
        if marker.is_file() and artifact.is_file():
            os.utime(marker)  # its last use: the cache bound removes the oldest first
            return True, json.loads(marker.read_text())["build_seconds"]
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        start = time.perf_counter()
        record = make(build_dir)
        seconds = time.perf_counter() - start
        marker.write_text(json.dumps({**record, "build_seconds": seconds,
                                      "bytes": folder_bytes(build_dir)}, indent=1))
    prune(build_dir.parent, _MARKER, keep=build_dir)  # sim.cache_limit: the size bound
    return False, seconds


@contextlib.contextmanager
def _verilator_make_env(simulator: str) -> Iterator[None]:
    if simulator != "verilator":
        yield
        return
    saved = os.environ.get("MAKEFLAGS")
    flags = f"{saved} {VERILATOR_MAKEFLAGS}" if saved else VERILATOR_MAKEFLAGS
    with patched_environ({"MAKEFLAGS": flags}), objcache_environment(objcache_dir()):
        yield


@contextlib.contextmanager
def _test_module_importable(test_module: str | os.PathLike) -> Iterator[str]:
    """Yield the module name; a file path has its folder put on ``sys.path`` meanwhile.

    cocotb's runner hands ``sys.path`` to the simulator as ``PYTHONPATH``.
    """
    as_path = Path(test_module)
    if isinstance(test_module, os.PathLike) or str(test_module).endswith(".py"):
        if not as_path.is_file():
            raise ValueError(f"cocotb test module file {str(as_path)!r} does not exist")
        folder = str(as_path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            yield as_path.stem
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
    else:
        if not str(test_module).replace(".", "_").isidentifier():
            raise ValueError(f"test_module must be a dotted module name or a .py file path, "
                             f"got {test_module!r}")
        yield str(test_module)


def _test_outcomes(results_xml: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    if not results_xml.is_file():
        return outcomes
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        name = case.get("name", "?")
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[name] = "fail"
        elif case.find("skipped") is not None:
            outcomes[name] = "skip"
        else:
            outcomes[name] = "pass"
    return outcomes


def run_cocotb(verilog: str | os.PathLike, toplevel: str, test_module: str | os.PathLike,
               params: Mapping | None = None, *, simulator: str = "verilator",
               waves: bool | str = False, build_args: Sequence[str] = (),
               timescale: tuple[str, str] = DEFAULT_TIMESCALE,
               cache_dir: str | os.PathLike | None = None, seed: int = 0,
               testcase: str | Sequence[str] | None = None,
               run_dir: str | os.PathLike | None = None) -> dict:
    """Build (or reuse) ``verilog`` and run the cocotb tests in ``test_module`` on it.

    ``verilog`` is Verilog text or a ``pathlib.Path``; ``test_module`` a dotted
    module name importable from ``sys.path`` or a ``.py`` file path. ``params``
    must be JSON-serialisable; the test reads it with ``load_params()``.
    ``waves``: False, True/"fst" (FST) or "vcd" (both simulators), written to
    ``_run["waves"]``. The run directory is a fresh temporary folder removed
    after a passing run unless ``run_dir`` is given or waves were requested.

    Returns the dict written by the test(s) plus ``"_run"``: simulator,
    version, build_dir, cached, build_seconds, run_seconds, tests (name ->
    pass/skip), run_dir, log, waves. Raises SimulationError if a test fails.
    """
    params = dict(params or {})
    try:
        params_json = json.dumps(params, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"params must be JSON-serialisable: {exc}") from None
    fmt = _waves_format(simulator, waves)
    if (isinstance(test_module, os.PathLike) or str(test_module).endswith(".py")) \
            and not Path(test_module).is_file():
        raise ValueError(f"cocotb test module file {str(test_module)!r} does not exist")
    built = build(verilog, toplevel, simulator=simulator, build_args=build_args,
                  timescale=timescale, waves=waves, cache_dir=cache_dir)
    build_dir = Path(built["build_dir"])
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    keep = run_dir is not None or fmt is not None
    if run_dir is None:
        (root / "runs").mkdir(parents=True, exist_ok=True)
        run_path = Path(tempfile.mkdtemp(prefix=f"{toplevel}-", dir=root / "runs"))
    else:
        run_path = Path(run_dir).resolve()
        run_path.mkdir(parents=True, exist_ok=True)
    params_file, results_file = run_path / "params.json", run_path / "results.json"
    params_file.write_text(params_json)
    results_file.unlink(missing_ok=True)
    results_xml, log = run_path / "results.xml", run_path / "sim.log"
    waves_file = run_path / f"waves.{fmt}" if fmt else None

    test_args: list[str] = []
    plusargs: list[str] = []
    if simulator == "verilator":  # uninitialised state random (module docstring)
        plusargs = ["+verilator+rand+reset+2", f"+verilator+seed+{seed + 1}"]
    extra_os_env: dict[str, str] = {}
    if waves_file is not None and simulator == "verilator":
        test_args = ["--trace-file", str(waves_file)]
    elif waves_file is not None:
        plusargs = [*plusargs, f"+dumpfile_path={waves_file}"]
        if fmt == "vcd":  # the runner appends "-fst"; a later vvp format flag wins
            extra_os_env["SIM_CMD_SUFFIX"] = "-vcd"

    info = find_simulator(simulator)
    env_info = SimulatorInfo(info.name, info.version, info.executable,
                             {**info.env, **extra_os_env})
    from cocotb_tools.runner import get_runner

    start = time.perf_counter()
    with simulator_environment(env_info), _test_module_importable(test_module) as module:
        runner = get_runner(simulator)
        try:
            runner.test(test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=run_path, results_xml=str(results_xml),
                        extra_env={PARAMS_ENV: str(params_file), RESULTS_ENV: str(results_file)},
                        seed=seed, testcase=testcase, waves=fmt is not None, timescale=timescale,
                        test_args=test_args, plusargs=plusargs, log_file=log)
        except (RuntimeError, SystemExit):
            pass  # judged from results.xml below
    seconds = time.perf_counter() - start

    outcomes = _test_outcomes(results_xml)
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "fail")
    if not outcomes or failed:
        what = f"tests failed: {', '.join(failed)}" if failed else "no test ran"
        raise SimulationError(f"{simulator} run of {module} on {toplevel!r}: {what}; "
                              f"log {log}:\n{_tail(log)}")
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results[RESERVED_KEY] = {**built, "run_seconds": seconds, "tests": outcomes,
                             "run_dir": str(run_path) if keep else None,
                             "log": str(log) if keep else None,
                             "waves": str(waves_file) if waves_file else None}
    if not keep:
        shutil.rmtree(run_path, ignore_errors=True)
    return results
