"""Shared bits of the benchmark scripts: the machine line and writing a result section."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def write_section(name: str, title: str, command: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md``: title, command, machine and date, body."""
    RESULTS.mkdir(exist_ok=True)
    text = (
        f"## {title}\n\n"
        f"Command: `{command}`  \n"
        f"Machine: {machine()}  \n"
        f"Date: {dt.date.today().isoformat()}\n\n"
        f"{body.strip()}\n"
    )
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path
