"""ImageNet-size CNNs through external memory: compile, fit and one inference in RTL at 224.

Compiles the zoo ``resnet18`` and torchvision's ``resnet18`` and ``mobilenet_v2`` (as
published, untrained, seeded: ``corpus_models``) at 3x224x224 for the ``edge-8x8`` preset
with its 16K-element activation scratchpad, external weights and (default) the scratchpad
gathered by runs (``act_gather = "runs"``: built once, not once per array row): the tensors
do not fit, so the program keeps them in external memory and runs every layer in row bands
(docs/timing.md, "Activations in external memory"). Prices the on-chip memories with the
calibrated ECP5 resource model (block RAM of the LFE5U-85F's 208; ``--synth``: Yosys too).
Then one seeded random input runs through the Verilog on the fast engine (Verilator),
checked bit-exactly against ``sim.golden`` and layer by layer against the predicted cycles.
Writes ``benchmarks/results/spill.md``.

Usage: ``python benchmarks/bench_spill.py [--models resnet18,tv-resnet18,tv-mobilenet_v2]
[--gather runs|lanes] [--no-rtl] [--synth]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_section  # noqa: E402

SHAPE = (1, 3, 224, 224)


def _model(name: str):
    """The model and its name in the table."""
    if name == "resnet18":
        import models

        return models.get("resnet18").load(), "zoo resnet18"
    from corpus_models import CORPUS

    entry = next(c for c in CORPUS if c.name == name)
    return entry.build(), f"torchvision {name.removeprefix('tv-')}"


def memories(cm) -> dict:
    """ECP5 block RAM of the build (``dse.resources``: the calibrated model, estimated)."""
    from calibrate_resource_model import eltwise_liveness

    from dse.resources import BoardsResourceModel, ProgramSizes
    from hwgen.compiler.program import word_bits

    arch, prog = cm.arch, cm.program
    pool, add = eltwise_liveness(arch, prog)
    sizes = ProgramSizes(rom_words=len(prog.weight_image), program_words=len(prog.instructions),
                         program_bits=word_bits(arch), param_words=len(prog.params),
                         pool_mult=pool, add_mult=add, lut_entries=len(prog.luts),
                         dw_weight_rows=len(prog.dw_weights), dw_param_rows=len(prog.dw_params))
    est = BoardsResourceModel("ecp5").estimate(arch, sizes)
    return {"bram_est": int(est["bram"]), "lut_est": int(est["lut"])}


def synth(cm) -> dict:
    """Yosys on the build's RTLIL for the ULX3S-85F (LFE5U-85F), measured."""
    from boards.synth import synthesize
    from hwgen.build.emit import TOP_MODULE

    rep = synthesize(Path(cm.out_dir) / "hwgen_accel.il", TOP_MODULE, "ulx3s-85f",
                     timeout=7200)
    return {"synth": {k: getattr(rep, k) for k in ("lut", "ff", "dsp", "bram")},
            "synth_s": rep.seconds}


def run(name: str, rtl: bool, work: Path, gather: str = "runs", with_synth: bool = False) -> dict:
    from hwgen import api
    from mapping.arch import preset

    module, label = _model(name)
    arch = preset("edge-8x8").replace(weight_store="external", act_gather=gather)
    calib = torch.randn((4, *SHAPE[1:]), generator=torch.Generator().manual_seed(1)).numpy()
    t0 = time.perf_counter()
    cm = api.compile(module, torch.zeros(SHAPE), arch=arch, calib=calib, out_dir=work / name)
    compile_s = time.perf_counter() - t0
    prog = cm.program
    row = {"model": label, "compile_s": compile_s, "layers": len(prog.layers),
           "instructions": len(prog.instructions),
           "loops": sum(1 for w in prog.instructions if w & 7 == 5),
           "predicted": sum(li.predicted_cycles for li in prog.layers),
           "read": sum(li.ext_read_words for li in prog.layers),
           "written": sum(li.ext_write_words for li in prog.layers),
           "xfer": sum(li.xfer_cycles for li in prog.layers), "spilled": prog.spilled,
           **memories(cm)}
    if with_synth:
        row.update(synth(cm))
    if rtl:
        x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).numpy()
        t0 = time.perf_counter()
        sim = api.simulate(cm, x)
        r = sim.result
        row.update(rtl_s=time.perf_counter() - t0, bit_exact=sim.bit_exact,
                   cycles_ok=sim.cycles_as_predicted, measured=int(r.run_cycles[0]),
                   predicted_run=int(r.predicted_run), loop_s=r.loop_seconds,
                   build_s=r.build_seconds, cached=r.build_cached,
                   layers_exact=int(np.sum(r.layer_cycles[0] == np.asarray(r.predicted))))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,tv-resnet18,tv-mobilenet_v2")
    ap.add_argument("--gather", default="runs", choices=("runs", "lanes"),
                    help="act_gather of the configuration (default runs: one scratchpad copy)")
    ap.add_argument("--no-rtl", action="store_true", help="compile only")
    ap.add_argument("--synth", action="store_true", help="also Yosys for the ULX3S-85F")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-spill-") as tmp:
        for name in args.models.split(","):
            rows.append(run(name, not args.no_rtl, Path(tmp), args.gather, args.synth))
            print(rows[-1], flush=True)
    lines = [
        "Each model at 3x224x224 on `edge-8x8` (8x8 ws, `act_words` 16,384, weights in "
        f"external memory, `ext_latency` 8, 1 word/cycle, `act_gather = \"{args.gather}\"`), "
        "8-bit, calibrated on 4 seeded random inputs. Compile = `hwgen.api.compile` in one "
        "process (trace, quantise, map, compile, Verilog, report; measured wall). Block RAM: "
        "of the LFE5U-85F's 208 (ULX3S-85F), estimated by the calibrated resource model "
        "(`dse.resources`), and measured by Yosys where given. RTL = one seeded random input "
        "on the fast engine, the Verilator build included unless cached.",
        "",
        "| model | compile | layers | instructions (LOOPs) | ECP5 block RAM (est.; Yosys) | "
        "act words read / written per inference | transfer cycles | predicted cycles | RTL: "
        "bit-exact, layers cycle-exact, measured start..done | RTL sample loop (cycles/s) | "
        "RTL wall incl. build |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        rtl = "-"
        speed = wall = "-"
        if "bit_exact" in r:
            rtl = (f"{'yes' if r['bit_exact'] else 'NO'}, {r['layers_exact']}/{r['layers']}, "
                   f"{r['measured']:,} (predicted {r['predicted_run']:,})")
            speed = f"{r['loop_s']:.1f} s ({r['measured'] / r['loop_s']:,.0f})"
            wall = f"{r['rtl_s']:.0f} s" + (" (build cached)" if r["cached"] else "")
        mem = f"{r['bram_est']} (e)"
        if "synth" in r:
            y = r["synth"]
            mem += (f"; {y['bram']:g} (m: {y['lut']:,} LUT, {y['dsp']} DSP, Yosys "
                    f"{r['synth_s']:.0f} s)")
        lines.append(
            f"| {r['model']} | {r['compile_s']:.1f} s | {r['layers']} | "
            f"{r['instructions']:,} ({r['loops']}) | {mem} | {r['read']:,} / {r['written']:,} | "
            f"{r['xfer']:,} | {r['predicted']:,} | {rtl} | {speed} | {wall} |")
    lines += ["", f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}."]
    path = write_section("spill", "ImageNet-size CNNs at 224x224 through external memory",
                         "python benchmarks/bench_spill.py", "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
