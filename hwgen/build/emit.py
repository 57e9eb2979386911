"""Verilog emission: ``emit(accelerator, out_dir)``.

Writes ``<top>.v`` (``amaranth.back.verilog.convert``, with all-zero memory
initialisation written as one loop per memory: :mod:`hwgen.build.compact_verilog`), ``<top>.il`` (the same
design as Amaranth's RTLIL, what the Verilog is written from), the init files of the
baked memories as hex (``weights.hex``: the weight-store image, one
``ext_word_bits`` word per line, also what an external memory must hold;
``program.hex``; ``params.hex``) and ``manifest.json`` (a :class:`~hwgen.build.manifest.Manifest`
of kind ``"design"``, through the one writer :class:`~hwgen.build.writer.BuildDir`: the
folder appears complete or not at all). :func:`write_design` writes the same files
without a manifest into a folder the caller stages (the compile flow). The same input
gives byte-identical files (no time stamps, sorted keys, fixed names).

Synthesis reads the RTLIL (``boards.synth`` takes ``.il`` files): Yosys's
Verilog writer spells every memory's initial value as one ``mem[i] = ...;``
statement per word (87 % of an 8x8 accelerator's Verilog is its scratchpads'
zero fill), and reading those back cost 90-140 s per synthesis; the RTLIL holds
one init cell per memory. Same netlist, same initial values (a design without
them hit a Yosys 0.70 abc9 assertion). Simulators read the Verilog, where the same
zero fill is a ``for`` loop: 5.5 MB -> 0.7 MB for edge-8x8, and Verilator converts it
in a quarter of the time.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.back import rtlil, verilog

import hwgen
from hwgen.build.compact_verilog import compact_zero_init
from hwgen.build.manifest import FORMAT_VERSION, LayerInfo, Manifest
from hwgen.build.writer import BuildDir
from hwgen.compiler.program import param_bits, word_bits
from hwgen.rtl.accelerator import Accelerator
from mapping import timing

TOP_MODULE = "hwgen_accel"
VERILOG_FILE = f"{TOP_MODULE}.v"
RTLIL_FILE = f"{TOP_MODULE}.il"


def _hex_lines(words: list[int], bits: int) -> str:
    digits = max(1, -(-bits // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def design_manifest(acc: Accelerator) -> Manifest:
    """The ``"design"`` manifest of ``acc`` (``files`` is filled in by the writer)."""
    arch, prog = acc.arch, acc.program
    layers = tuple(LayerInfo(li.name, li.kind, int(li.predicted_cycles)) for li in prog.layers)
    return Manifest(
        format_version=FORMAT_VERSION, hwgen_version=hwgen.__version__, kind="design",
        arch=arch, top_module=TOP_MODULE, verilog=VERILOG_FILE, rtlil=RTLIL_FILE,
        weight_store=arch.weight_store, program=prog.summary(), layers=layers,
        predicted_cycles_total=sum(x.predicted_cycles for x in layers),
        predicted_cycles_note="estimated by mapping.timing (analytic); layer cycles exclude "
                              "the input and output streams",
        timing_constants={"LAYER_SETUP": timing.LAYER_SETUP, "DMA_SETUP": timing.DMA_SETUP,
                          "ROM_LATENCY": timing.ROM_LATENCY,
                          "POST_LATENCY": timing.POST_LATENCY},
        array_latency=acc.array_latency, postproc_latency=acc.post_latency,
        ports={
            "clock": "clk", "reset": "rst",
            "control": ["start", "busy", "done"],
            "input_stream": ["inp__valid", "inp__ready", "inp__payload"],
            "output_stream": ["out__valid", "out__ready", "out__payload"],
            "counters": ["cycle_count", "run_cycles", "layer_sel", "layer_count"],
            "external_memory": (["ext__req__valid", "ext__req__ready", "ext__req__payload",
                                 "ext__resp__valid", "ext__resp__ready", "ext__resp__payload"]
                                if arch.weight_store == "external" else []),
        })


def _check(acc) -> None:
    if not isinstance(acc, Accelerator):
        raise TypeError(f"emit() needs an hwgen.rtl.accelerator.Accelerator, got "
                        f"{type(acc).__name__}")


def write_design(acc: Accelerator, out_dir: str | Path) -> Manifest:
    """Write the Verilog, RTLIL and init files of ``acc`` into the existing folder ``out_dir``
    (no manifest.json); its ``"design"`` manifest, files not yet hashed."""
    _check(acc)
    out = Path(out_dir)
    arch, prog = acc.arch, acc.program
    il = rtlil.convert(acc, name=TOP_MODULE, emit_src=False)
    # = verilog.convert(acc) without elaborating twice, zero fills as loops
    text = compact_zero_init(verilog._convert_rtlil_text(il))
    contents = {
        VERILOG_FILE: text,
        RTLIL_FILE: il,
        "weights.hex": _hex_lines(acc.weights, arch.ext_word_bits),
        "program.hex": _hex_lines(prog.instructions, word_bits(arch)),
        "params.hex": _hex_lines(prog.params, param_bits(arch)),
    }
    for name, body in contents.items():
        (out / name).write_text(body)
    return design_manifest(acc)


def emit(acc: Accelerator, out_dir: str | Path) -> Manifest:
    """Write the accelerator's Verilog, init files and ``manifest.json`` into ``out_dir``
    (replacing a previous build there); return the manifest."""
    _check(acc)
    with BuildDir(out_dir) as b:
        b.finish(write_design(acc, b.path))
    return b.manifest
