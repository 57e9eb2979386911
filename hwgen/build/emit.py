"""Verilog emission: ``emit(accelerator, out_dir)``.

Writes ``<top>.v`` (``amaranth.back.verilog.convert``), ``<top>.il`` (the same
design as Amaranth's RTLIL, what the Verilog is written from), the init files of the
baked memories as hex (``weights.hex``: the weight-store image, one
``ext_word_bits`` word per line, also what an external memory must hold;
``program.hex``; ``params.hex``) and ``manifest.json``. The same input gives
byte-identical files (no time stamps, sorted keys, fixed names).

Synthesis reads the RTLIL (``boards.synth`` takes ``.il`` files): Yosys's
Verilog writer spells every memory's initial value as one ``mem[i] = ...;``
statement per word (87 % of an 8x8 accelerator's Verilog is its scratchpads'
zero fill), and reading those back cost 90-140 s per synthesis; the RTLIL holds
one init cell per memory. Same netlist, same initial values (a design without
them hit a Yosys 0.70 abc9 assertion).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from amaranth.back import rtlil, verilog

import hwgen
from hwgen.compiler.program import param_bits, word_bits
from hwgen.rtl.accelerator import Accelerator
from mapping import timing

TOP_MODULE = "hwgen_accel"


def _hex_lines(words: list[int], bits: int) -> str:
    digits = max(1, -(-bits // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def manifest(acc: Accelerator, verilog_file: str, files: dict[str, str],
             rtlil_file: str | None = None) -> dict[str, Any]:
    arch, prog = acc.arch, acc.program
    layers = [{"name": li.name, "kind": li.kind, "predicted_cycles": li.predicted_cycles}
              for li in prog.layers]
    return {
        "hwgen_version": hwgen.__version__,
        "top_module": TOP_MODULE,
        "verilog": verilog_file,
        "rtlil": rtlil_file,
        "arch": arch.to_dict(),
        "program": prog.summary(),
        "layers": layers,
        "predicted_cycles_total": sum(x["predicted_cycles"] for x in layers),
        "predicted_cycles_note": "estimated by mapping.timing (analytic); layer cycles exclude "
                                 "the input and output streams",
        "timing_constants": {"LAYER_SETUP": timing.LAYER_SETUP, "DMA_SETUP": timing.DMA_SETUP,
                             "ROM_LATENCY": timing.ROM_LATENCY,
                             "POST_LATENCY": timing.POST_LATENCY},
        "array_latency": acc.array_latency,
        "postproc_latency": acc.post_latency,
        "weight_store": arch.weight_store,
        "files": files,
        "ports": {
            "clock": "clk", "reset": "rst",
            "control": ["start", "busy", "done"],
            "input_stream": ["inp__valid", "inp__ready", "inp__payload"],
            "output_stream": ["out__valid", "out__ready", "out__payload"],
            "counters": ["cycle_count", "run_cycles", "layer_sel", "layer_count"],
            "external_memory": (["ext__req__valid", "ext__req__ready", "ext__req__payload",
                                 "ext__resp__valid", "ext__resp__ready", "ext__resp__payload"]
                                if arch.weight_store == "external" else []),
        },
    }


def emit(acc: Accelerator, out_dir: str | Path) -> dict[str, Any]:
    """Write the accelerator's Verilog, init files and ``manifest.json``; return the manifest."""
    if not isinstance(acc, Accelerator):
        raise TypeError(f"emit() needs an hwgen.rtl.accelerator.Accelerator, got {type(acc).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch, prog = acc.arch, acc.program
    vfile, ilfile = f"{TOP_MODULE}.v", f"{TOP_MODULE}.il"
    il = rtlil.convert(acc, name=TOP_MODULE, emit_src=False)
    text = verilog._convert_rtlil_text(il)  # = verilog.convert(acc) without elaborating twice
    contents = {
        vfile: text,
        ilfile: il,
        "weights.hex": _hex_lines(acc.weights, arch.ext_word_bits),
        "program.hex": _hex_lines(prog.instructions, word_bits(arch)),
        "params.hex": _hex_lines(prog.params, param_bits(arch)),
    }
    files = {}
    for name, body in contents.items():
        (out / name).write_text(body)
        files[name] = hashlib.sha256(body.encode()).hexdigest()
    man = manifest(acc, vfile, files, ilfile)
    (out / "manifest.json").write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
    return man
