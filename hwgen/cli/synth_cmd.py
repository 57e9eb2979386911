"""``hwgen synth``: Yosys synthesis (and optionally nextpnr) of a build for a board."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="synthesise a build for an FPGA board: resources, fit, Fmax",
        description="Synthesise a generated accelerator (BUILD_DIR with manifest.json) or "
        "any Verilog (--verilog/--top) with Yosys for a board or device, print resource "
        "use against its budget and, with --pnr, the Fmax from nextpnr.")
    p.add_argument("build_dir", nargs="?", help="build directory holding manifest.json")
    p.add_argument("--verilog", nargs="+", metavar="FILE", help="Verilog (.v) or RTLIL "
                   "(.il) file(s) instead of a build directory")
    p.add_argument("--top", help="top module (default: manifest's top_module)")
    p.add_argument("--board", required=True, help="board or device name (see `hwgen boards`)")
    p.add_argument("--pnr", action="store_true", help="also place and route for Fmax "
                   "(ECP5 and iCE40 only)")
    p.add_argument("--freq", type=float, help="timing target in MHz (default: board clock)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--bitstream", action="store_true", help="with --pnr: also pack a "
                   "bitstream (pins unconstrained unless --constraints)")
    p.add_argument("--constraints", help="with --bitstream: LPF (ECP5) or PCF (iCE40) file")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per tool run")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results")
    p.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="echo tool output")
    p.set_defaults(func=run)


def _inputs(args) -> tuple[list[Path], str, Mapping]:
    from hwgen.cli import CliError

    if args.verilog:
        if args.build_dir:
            raise CliError("give either BUILD_DIR or --verilog, not both")
        if not args.top:
            raise CliError("--verilog needs --top NAME (the top module)")
        return [Path(v) for v in args.verilog], args.top, {}
    if not args.build_dir:
        raise CliError("give a BUILD_DIR with manifest.json, or --verilog FILE --top NAME")
    build = Path(args.build_dir)
    mpath = build / "manifest.json"
    if not mpath.is_file():
        raise CliError(f"{mpath} does not exist (is {build} an `hwgen compile` output?)")
    from hwgen.build.manifest import BuildError, Manifest, read_raw

    try:
        raw = read_raw(build)
        if isinstance(raw, dict) and ("hwgen_version" in raw or "format_version" in raw):
            return _build_inputs(build, Manifest.load(build), args.top)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    return _design_inputs(build, mpath, raw, args.top)


def _build_inputs(build: Path, man, top: str | None) -> tuple[list[Path], str, Mapping]:
    """An hwgen build, read through its contract (format, version, hashes checked)."""
    from hwgen.cli import CliError

    if man.kind == "kernels":
        names = ", ".join(f"{build / k.dir}" for k in man.kernels[:3])
        raise CliError(f"{build} holds one design per kernel; synthesise one of them, e.g. "
                       f"{names}")
    return [build / man.synth_source], top or man.top_module, man


def _design_inputs(build: Path, mpath: Path, manifest, top: str | None):
    """A hand-written design description (docs/boards.md): ``verilog`` (a name or a list)
    and ``top_module``; not an hwgen build, so there are no hashes to check."""
    from hwgen.cli import CliError

    if not isinstance(manifest, dict):
        raise CliError(f"{mpath} must hold a JSON object")
    missing = [k for k in ("verilog", "top_module") if k not in manifest]
    if missing and not (top and "verilog" in manifest):
        raise CliError(f"{mpath} lacks key(s) {', '.join(missing)}")
    rtlil = manifest.get("rtlil")  # the same design; Yosys reads it in seconds
    files = rtlil if rtlil and (build / rtlil).is_file() else manifest["verilog"]
    files = [files] if isinstance(files, str) else list(files)
    return [build / f for f in files], top or manifest["top_module"], manifest


def _fmt(x: float) -> str:
    return f"{x:.1f}" if isinstance(x, float) and not x.is_integer() else f"{int(x)}"


def run(args) -> int:
    from boards import tools
    from boards.catalogue import Board, UnknownBoardError, device_of, get
    from boards.pnr import PnrUnsupportedError, estimate_fmax
    from boards.report import fit
    from boards.synth import synthesize
    from hwgen.cli import CliError
    from hwgen.cli.boards_cmd import table

    try:
        target = get(args.board)
    except UnknownBoardError as exc:
        raise CliError(str(exc)) from None
    dev = device_of(target)
    if args.pnr and not dev.supports_pnr:
        raise CliError(f"--pnr is not available for {dev.name} ({dev.family}): Xilinx "
                       "7-series results are synthesis-only; drop --pnr")
    if args.bitstream and not args.pnr:
        raise CliError("--bitstream needs --pnr")
    files, top, manifest = _inputs(args)
    cache = not args.no_cache
    try:
        rep = synthesize(files, top, target, cache=cache, timeout=args.timeout,
                         verbose=args.verbose)
        fr = fit(rep, dev, strict=False)
        pnr = None
        if args.pnr and fr.fits:  # nextpnr would only fail, after minutes, on a no-fit
            kw = dict(freq_mhz=args.freq, seed=args.seed, cache=cache, timeout=args.timeout,
                      verbose=args.verbose)
            if args.bitstream:
                kw.update(bitstream=True, io_mode="pins", constraints=args.constraints)
            pnr = estimate_fmax(files, top, target, **kw)
    except (FileNotFoundError, tools.ToolMissingError, tools.ToolError,
            PnrUnsupportedError, ValueError) as exc:
        raise CliError(str(exc)) from None

    name = target.name + (f" ({dev.name})" if isinstance(target, Board) else "")
    cached = ", cached" if rep.cached else f", {rep.seconds:.1f} s"
    print(f"{top} on {name}: yosys {rep.tool_version} ({dev.family}{cached})")
    util = fr.utilisation()
    rows = [["resource", "used", "available", "util", "source"]]
    for res in ("lut", "ff", "dsp", "bram", "spram"):
        if res == "spram" and not dev.spram_blocks:
            continue
        rows.append([res, _fmt(fr.used[res]), str(fr.available[res]),
                     f"{util[res]:.1f}%", "measured (synthesis)"])
    rows.append(["carry", str(rep.carry), "-", "-", "measured (synthesis)"])
    print(table(rows))
    if fr.fits:
        print(f"fit: yes, fits {dev.name}")
    else:
        over = "; ".join(f"{r} {_fmt(u)} > {a}" for r, (u, a) in fr.overflows().items())
        print(f"fit: NO, does not fit {dev.name}: {over}")

    fmax = None
    if pnr is not None:
        fmax = pnr.fmax
        for clk, f in sorted(pnr.fmax_mhz.items()):
            print(f"Fmax {clk}: {f:.2f} MHz (measured, nextpnr {pnr.io_mode}, "
                  f"target {pnr.target_mhz:g} MHz)")
        if pnr.critical_paths:
            print(f"critical path: {pnr.critical_paths[0].summary()}")
        for note in pnr.notes:
            print(f"note: {note}")
        if pnr.bitstream:
            print(f"bitstream: {pnr.bitstream}")
    elif dev.family == "xc7":
        print("Fmax: not available (Xilinx: synthesis only, no open place-and-route)")
    elif args.pnr:
        print(f"Fmax: not placed: the design does not fit {dev.name}")
    _throughput(manifest, fmax, target)
    if args.json:
        out = {"synth": json.loads(rep.to_json()), "fit": {
            "device": fr.device, "used": fr.used, "available": fr.available,
            "utilisation_pct": util, "fits": fr.fits}}
        if pnr is not None:
            from boards.pnr import _to_json
            out["pnr"] = json.loads(_to_json(pnr))
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True))
    return 0 if fr.fits else 1


def run_cycles_of(manifest: Mapping) -> list[tuple[int, str, str]]:
    """(cycles, kind, what) per inference from a build manifest: measured first, then estimated.

    The estimate is ``mapping.timing.run_cycles`` (start..done: input stream, the
    layers' ``predicted_cycles_total`` and output stream, plus the sequencer
    cycles) when the manifest has the program's stream sizes, else the layer
    cycles alone.
    """
    from mapping.timing import run_cycles

    out = []
    if manifest.get("measured_cycles_total"):
        out.append((int(manifest["measured_cycles_total"]), "measured", "simulated"))
    layers = manifest.get("predicted_cycles_total")
    if layers:
        prog = manifest.get("program")
        if isinstance(prog, dict) and "input_count" in prog and "output_count" in prog:
            out.append((run_cycles(int(prog["input_count"]), int(layers),
                                   int(prog["output_count"])), "estimated",
                        "mapping.timing.run_cycles, start..done incl. streams"))
        else:
            out.append((int(layers), "estimated", "layer cycles only"))
    return out


def _throughput(manifest: Mapping, fmax: float | None, target) -> None:
    from boards.catalogue import Board

    if fmax is not None:
        clock, clabel = fmax, "measured Fmax"
    elif isinstance(target, Board):
        clock, clabel = target.clock_mhz, "board clock"
    else:
        return
    for cycles, kind, what in run_cycles_of(manifest):
        print(f"throughput ({kind} cycles, {clabel} {clock:.2f} MHz): "
              f"{clock * 1e6 / cycles:,.1f} inferences/s ({cycles} cycles per inference, "
              f"{what})")
