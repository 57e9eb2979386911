"""The optimisation stack measured on our flow: software, compiler and hardware levels.

The course's headline claim: software optimisations (quantisation, pruning)
give 2-50x, compiler optimisations (loop tiling / mapping) 2-5x, hardware
optimisations (PE array and memory design) 2-5x. For ``cnn-digits`` and
``mlp-digits`` this script measures each level against a naive baseline
(16-bit activations and weights, no pruning, the naive untiled schedule of
``mapping.naive``, a 1x1 PE array with the edge-8x8 memories), alone and as a
cumulative stack (baseline -> int8 -> pruning to <= 50% MACs with fine-tuning
-> the mapper -> an 8x8 array, ws or os).

Per configuration: weight bits, MACs, accuracy on the 360-sample test split
(``sim.golden``, which the RTL matches bit for bit), cycles per inference
(Verilator RTL simulation of a few samples, also checked bit-exact and equal to
``mapping.timing.run_cycles``), ECP5 LUT/FF/DSP/BRAM (Yosys synthesis for the
configurations in ``--synth``, else ``boards.resource_model``) and throughput
at the board clock. Every figure is marked measured (m) or estimated (e).

    python benchmarks/optimisation_stack.py [--fast] [--samples 2] [--epochs 10]
        [--synth none | all | cnn-digits:mapper,hw-ws;mlp-digits:hw-os]
        [--max-instructions 2000]

Configurations whose program exceeds ``--max-instructions`` (the naive schedule
has one instruction per tile: 80,904 for cnn-digits on 1x1) are not emitted or
simulated; their cycles are the timing contract's (estimated).

``--fast``: analytic model only (no RTL simulation, no synthesis, 2 fine-tune
epochs), for tests; writes nothing unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, write_section  # noqa: E402
from optimisation_stack_chart import chart  # noqa: E402

import models  # noqa: E402
from hwgen.build import flow  # noqa: E402
from hwgen.compiler import program as P  # noqa: E402
from mapping.arch import ArchSpec, preset  # noqa: E402
from mapping.mapper import map_graph  # noqa: E402
from mapping.naive import naive_schedule  # noqa: E402
from mapping.passes import prepare  # noqa: E402
from mapping.passes.prune_budget import prune_to_macs  # noqa: E402
from mapping.timing import run_cycles  # noqa: E402
from models.finetune import finetune  # noqa: E402
from sim import golden  # noqa: E402

MODELS = ("cnn-digits", "mlp-digits")
BOARD = "ulx3s-85f"  # ECP5 LFE5U-85F, 25 MHz main clock (boards.catalogue)
BOARD_MHZ = 25.0
SEED = 0
MAC_BUDGET = 0.5
EDGE = preset("edge-8x8")
# baseline hardware: a 1x1 array with the edge-8x8 memories; 16-bit operands with a
# 40-bit accumulator (16 + 16 + log2 of the largest reduction, 256: exact sums)
BASE16 = EDGE.replace(name="base-1x1-16b", rows=1, cols=1, in_bits=16, w_bits=16, acc_bits=40)
BASE8 = EDGE.replace(name="base-1x1-8b", rows=1, cols=1)
EDGE16 = EDGE.replace(name="edge-8x8-16b", in_bits=16, w_bits=16, acc_bits=40)


@dataclass(frozen=True)
class Config:
    """One point: quantisation bits, pruning, schedule and hardware."""

    key: str
    label: str
    level: str  # baseline | software | compiler | hardware
    changed: str
    bits: int
    pruned: bool
    mapping: str  # naive | naive-full | mapper
    arch: ArchSpec


CONFIGS = (
    Config("base", "baseline", "baseline", "16-bit, unpruned, naive schedule, 1x1 ws",
           16, False, "naive", BASE16),
    Config("int8", "+ int8", "software", "int8 activations and weights (32-bit acc)",
           8, False, "naive", BASE8),
    Config("prune", "+ pruning", "software", f"structured pruning to <= {MAC_BUDGET:.0%} MACs "
           "+ fine-tune", 8, True, "naive", BASE8),
    Config("mapper", "+ mapper", "compiler", "mapper's loop tiling (latency)",
           8, True, "mapper", BASE8),
    Config("hw-ws", "+ 8x8 ws", "hardware", "8x8 weight-stationary array (edge-8x8)",
           8, True, "mapper", EDGE),
    Config("hw-os", "+ 8x8 os", "hardware", "8x8 output-stationary array",
           8, True, "mapper", EDGE.replace(dataflow="os")),
    # each level alone on the 16-bit baseline
    Config("prune16", "pruning alone", "software", f"pruning to <= {MAC_BUDGET:.0%} MACs",
           16, True, "naive", BASE16),
    Config("mapper16", "mapper alone", "compiler", "mapper's loop tiling",
           16, False, "mapper", BASE16),
    Config("full16", "hand mapping alone", "compiler", "naive tiles, whole streamed dimension "
           "per tile (temporal=full)", 16, False, "naive-full", BASE16),
    Config("hw16-ws", "8x8 ws alone", "hardware", "8x8 ws array, naive schedule",
           16, False, "naive", EDGE16),
    Config("hw16-os", "8x8 os alone", "hardware", "8x8 os array, naive schedule",
           16, False, "naive", EDGE16.replace(dataflow="os")),
    Config("hw16-ws-map", "8x8 ws + mapper", "hardware", "8x8 ws array with the mapper "
           "(16-bit, unpruned)", 16, False, "mapper", EDGE16),
)
STACK = ("base", "int8", "prune", "mapper", "hw-ws")
ALONE = ("int8", "prune16", "mapper16", "full16", "hw16-ws", "hw16-os", "hw16-ws-map")
DEFAULT_SYNTH = "none"


@dataclass
class Row:
    """The figures of one (model, config); ``src`` says measured (m) or estimated (e)."""

    model: str
    cfg: Config
    weight_bits: int
    macs: int
    acc: float
    cycles: int
    cycles_src: str
    res: dict[str, int]
    res_src: str
    bit_exact: str = "-"
    res_est: dict[str, int] = field(default_factory=dict)
    instructions: int = 0
    note: str = ""

    @property
    def throughput(self) -> float:
        return BOARD_MHZ * 1e6 / self.cycles


# ------------------------------------------------------------------ models
def prepared_graphs(name: str, epochs: int, seed: int) -> tuple[dict, dict]:
    """{(bits, pruned): quantised graph} and facts (float accuracy, pruning plan)."""
    entry = models.get(name)
    ds, model, x0 = entry.dataset(), entry.load(), entry.example_input()
    shape = tuple(entry.input_shape[1:])
    x_cal = np.array(ds.x_train, np.float32).reshape((-1,) + shape)
    pruned, plan = prune_to_macs(model, x0, MAC_BUDGET)
    res = finetune(pruned, ds, epochs=epochs, seed=seed)
    graphs = {}
    for bits in (16, 8):
        acc_bits = 40 if bits == 16 else 32
        graphs[bits, False] = prepare(model, x0, x_cal, bits=bits, acc_bits=acc_bits)
        graphs[bits, True] = prepare(res.model, x0, x_cal, bits=bits, acc_bits=acc_bits)
    facts = {"kept": ", ".join(f"{k} {len(v)}/{plan.out_sizes[k]}" for k, v in plan.keep.items()),
             "acc_pruned_before": res.acc_before, "acc_finetuned": res.acc_after}
    return graphs, facts


def weight_bits(g) -> int:
    return sum(int(np.asarray(n.params["qweight"]).size) * int(n.nest.w_bits)
               for n in g.compute_nodes())


def schedule_for(cfg: Config, g):
    if cfg.mapping == "mapper":
        return map_graph(g, cfg.arch)
    return naive_schedule(g, cfg.arch, "full" if cfg.mapping == "naive-full" else "one")


def estimate_resources(arch: ArchSpec, prog) -> dict[str, int]:
    """ECP5 estimate of the accelerator with this baked program (boards.resource_model)."""
    from calibrate_resource_model import eltwise_liveness

    from boards import resource_model as rm

    pool, add = eltwise_liveness(arch, prog)
    e = rm.estimate(arch.to_dict(), family="ecp5", rom_words=len(prog.weight_image),
                    program_words=len(prog.instructions), program_bits=P.word_bits(arch),
                    param_words=len(prog.params), pool_mult=pool, add_mult=add)
    return {"lut": e.lut, "ff": e.ff, "dsp": e.dsp, "bram": e.bram}


def evaluate(name: str, cfg: Config, g, x_test, y, *, rtl: bool, synth: bool, samples: int,
             build_root: Path, max_instructions: int = 2000) -> Row:
    sched = schedule_for(cfg, g)
    acc = float((golden.predict(g, x_test) == y).mean())
    out_tensor = flow._tensor(g, g.node(g.outputs[0]).inputs[0])
    prog = P.compile_program(cfg.arch, flow.program_layers(g, sched), output=out_tensor)
    too_big = len(prog.instructions) > max_instructions
    if rtl and not too_big:
        from sim.accelerator import load_build, quantize_inputs, simulate

        out = build_root / name / cfg.key
        flow.compile_model(g, cfg.arch, out, model=name, schedule=sched,
                           settings={"bits": cfg.bits, "pruned": cfg.pruned,
                                     "mapping": cfg.mapping})
    predicted = run_cycles(prog.input_count, sum(li.predicted_cycles for li in prog.layers),
                           prog.output_count)
    est = estimate_resources(cfg.arch, prog)
    row = Row(name, cfg, weight_bits(g), sum(c.macs for c in sched.costs), acc, predicted, "e",
              est, "e", res_est=est, instructions=len(prog.instructions))
    if rtl and too_big:
        row.note = (f"{len(prog.instructions):,}-instruction program (one per tile) not "
                    f"emitted or simulated (over --max-instructions {max_instructions:,})")
    if rtl and not too_big:
        b = load_build(out)
        idx = np.random.default_rng(SEED).choice(len(x_test), size=samples, replace=False)
        t0 = time.perf_counter()
        r = simulate(b, quantize_inputs(b, x_test[np.sort(idx)]))
        if len(set(r.run_cycles)) != 1 or r.run_cycles[0] != predicted:
            row.note = f"measured cycles {r.run_cycles} differ from predicted {predicted}"
        row.cycles, row.cycles_src = int(max(r.run_cycles)), "m"
        row.bit_exact = f"{samples - len(r.mismatches)}/{samples}"
        print(f"  sim {name}/{cfg.key}: {r.run_cycles[0]:,} cycles x {samples}, bit-exact "
              f"{row.bit_exact}, {time.perf_counter() - t0:.0f} s", flush=True)
        if synth:
            from boards.synth import synthesize

            t0 = time.perf_counter()
            try:
                rep = synthesize(b.synth_source, b.manifest["top_module"], BOARD)
                row.res = {"lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp, "bram": rep.bram}
                row.res_src = "m"
                print(f"  synth {name}/{cfg.key}: {row.res} ({time.perf_counter() - t0:.0f} s"
                      f"{', cached' if rep.cached else ''})", flush=True)
            except Exception as exc:  # keep the estimate, say why
                row.note = (row.note + "; " if row.note else "") + \
                    f"synthesis failed ({type(exc).__name__}: {str(exc)[:80]})"
    return row


# ------------------------------------------------------------------ tables
def fmt(v: float, src: str | None = None) -> str:
    s = f"{v:,.0f}" if abs(v) >= 10 else f"{v:.3g}"
    return f"{s} ({src})" if src else s


def ratio(a: float, b: float) -> str:
    """``a / b`` as a gain (x); 1.00x when unchanged."""
    return f"{a / b:.2f}x" if b else "-"


def config_table(rows: list[Row]) -> str:
    head = ("| config | level | what changed | weight bits | MACs | accuracy % (m) | "
            "program (instr.) | cycles / inference | RTL bit-exact | LUT | FF | DSP | BRAM | "
            f"inferences/s @ {BOARD_MHZ:g} MHz |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    out = [head]
    for r in rows:
        rs = r.res_src
        lut = fmt(r.res["lut"], rs) + (f" [e {r.res_est['lut']:,}]" if rs == "m" else "")
        out.append(
            f"| {r.cfg.key}: {r.cfg.label} | {r.cfg.level} | {r.cfg.changed} | "
            f"{r.weight_bits:,} | {r.macs:,} | {100 * r.acc:.2f} | {r.instructions:,} | "
            f"{fmt(r.cycles, r.cycles_src)} | "
            f"{r.bit_exact} | {lut} | {fmt(r.res['ff'], rs)} | {fmt(r.res['dsp'], rs)} | "
            f"{fmt(r.res['bram'], rs)} | {fmt(r.throughput, r.cycles_src)} |")
    return "\n".join(out)


def gain_cells(new: Row, old: Row) -> str:
    return (f"{ratio(old.weight_bits, new.weight_bits)} | {ratio(old.macs, new.macs)} | "
            f"{ratio(old.cycles, new.cycles)} | {ratio(new.res['lut'], old.res['lut'])} | "
            f"{ratio(new.res['dsp'], old.res['dsp']) if old.res['dsp'] else '-'} | "
            f"{100 * (new.acc - old.acc):+.2f}")


GAIN_HEAD = ("weight bits smaller | MACs fewer | cycles faster | LUT (new/old) | "
             "DSP (new/old) | accuracy change (pp)")


def alone_table(by: dict[str, Row]) -> str:
    out = [f"| level | config | {GAIN_HEAD} |", "|---|---|---|---|---|---|---|---|"]
    base = by["base"]
    for k in ALONE:
        r = by[k]
        out.append(f"| {r.cfg.level} | {k}: {r.cfg.changed} | {gain_cells(r, base)} |")
    return "\n".join(out)


def stack_table(by: dict[str, Row], stack: tuple[str, ...]) -> str:
    out = [f"| step | {GAIN_HEAD} | cycles / inference | cumulative cycles gain |",
           "|---|---|---|---|---|---|---|---|---|"]
    base = by[stack[0]]
    for prev, k in zip(stack, stack[1:], strict=False):
        r = by[k]
        out.append(f"| {prev} -> {k} ({r.cfg.label}) | {gain_cells(r, by[prev])} | "
                   f"{fmt(r.cycles, r.cycles_src)} | {ratio(base.cycles, r.cycles)} |")
    last = by[stack[-1]]
    out.append(f"| **overall** {stack[0]} -> {stack[-1]} | {gain_cells(last, base)} | "
               f"{fmt(last.cycles, last.cycles_src)} | {ratio(base.cycles, last.cycles)} |")
    return "\n".join(out)


CONFIG_BY_KEY = {c.key: c for c in CONFIGS}


# ------------------------------------------------------------------ report
def claims(by: dict[str, Row]) -> str:
    """The course's claim per level against what this model measured (cycles gain)."""
    def g(a: str, b: str) -> float:
        return by[a].cycles / by[b].cycles

    sw = by["base"].cycles / by["prune"].cycles
    sw_bits = by["base"].weight_bits / by["prune"].weight_bits
    return (
        f"- software (int8 + pruning, naive schedule, 1x1): cycles {sw:.2f}x "
        f"(int8 {g('base', 'int8'):.2f}x, pruning {g('int8', 'prune'):.2f}x), weight bits "
        f"{sw_bits:.2f}x smaller (claim: 2-50x)\n"
        f"- compiler (mapper vs naive schedule): {g('prune', 'mapper'):.2f}x in the stack, "
        f"{g('base', 'mapper16'):.2f}x alone; the simple hand mapping (whole streamed "
        f"dimension per tile) already gets {g('base', 'full16'):.2f}x, the mapper "
        f"{g('full16', 'mapper16'):.2f}x on top of it (claim: 2-5x)\n"
        f"- hardware (1x1 -> 8x8): {g('mapper', 'hw-ws'):.2f}x ws / {g('mapper', 'hw-os'):.2f}x "
        f"os in the stack (mapped), {g('base', 'hw16-ws'):.2f}x ws / {g('base', 'hw16-os'):.2f}x "
        f"os alone with the naive schedule, {g('mapper16', 'hw16-ws-map'):.2f}x ws with the "
        f"mapper at 16 bits, for {by['hw-ws'].res['lut'] / by['mapper'].res['lut']:.2f}x the "
        f"LUTs and {by['hw-ws'].res['dsp']} vs {by['mapper'].res['dsp']} DSPs (claim: 2-5x)\n"
        f"- overall baseline -> 8x8 ws: {g('base', 'hw-ws'):.1f}x cycles, "
        f"{by['base'].weight_bits / by['hw-ws'].weight_bits:.2f}x smaller weights, accuracy "
        f"{100 * by['base'].acc:.2f}% -> {100 * by['hw-ws'].acc:.2f}%")


def report(results: dict[str, dict[str, Row]], facts: dict, *, epochs: int, samples: int,
           wall: float, fast: bool) -> str:
    parts = [
        "What each level of the optimisation stack gains on our own flow, against a naive "
        "baseline: 16-bit activations and weights (40-bit accumulator: exact sums), no "
        "pruning, the naive untiled schedule (`mapping.naive.naive_schedule`: every tile one "
        "array pass with one streamed step, loop order m,n,k, no reuse across tiles; see "
        "docs/mapper.md) on a 1x1 weight-stationary array with the edge-8x8 memories "
        "(16 Ki-element activation, 8 Ki weight, 2 Ki accumulator scratchpads, baked weight "
        "ROM, 64-bit weight words, double-buffered). Software: int8 (per-channel weights, "
        "per-tensor activations, 32-bit accumulator) and structured pruning to <= 50% of the "
        f"MACs (`prune_to_macs`, L2, then {epochs} epochs of Adam fine-tuning, seed {SEED}). "
        "Compiler: the mapper (`mapping.mapper.map_graph`, latency objective) instead of the "
        "naive schedule. Hardware: the 8x8 edge-8x8 array (ws, or os) instead of 1x1.",
        "Marks: (m) measured, (e) estimated. Accuracy: `sim.golden` on the 360-sample test "
        "split (the integer model the RTL matches bit for bit). Cycles per inference: start to "
        + ("done of the analytic timing contract (`mapping.timing.run_cycles`; --fast)."
           if fast else
           f"done measured by Verilator RTL simulation of {samples} test samples (cycles are "
           "data-independent; every one equalled `mapping.timing.run_cycles`, and the "
           "outputs were compared with `sim.golden`: column RTL bit-exact).")
        + f" LUT/FF/DSP/BRAM: ECP5 (LFE5U-85F of the {BOARD} board); (m) = Yosys synthesis "
        "(`boards.synth.synthesize`, `synth_ecp5`) of the emitted Verilog, with the resource "
        "model's figure in brackets; (e) = `boards.resource_model` (calibrated on synthesis; "
        "held-out LUT median error 11%, DSP/BRAM exact). Throughput = "
        f"{BOARD_MHZ:g} MHz board clock / cycles per inference (the design's Fmax was not "
        "measured by place-and-route here). Weight bits = weight elements x weight width "
        "(biases and requantisation parameters excluded). MACs: GEMM view incl. padding "
        "(what the array executes). Ratios are 'x smaller / faster' (old/new) except LUT and "
        "DSP (new/old: > 1 means the hardware grew).",
    ]
    for name, by in results.items():
        f = facts[name]
        parts.append(
            f"### {name}\n\nPruning kept {f['kept']} channels/neurons (float test accuracy "
            f"{100 * f['acc_pruned_before']:.2f}% right after pruning, "
            f"{100 * f['acc_finetuned']:.2f}% after fine-tuning).\n\n"
            f"{config_table(list(by.values()))}\n\n"
            f"Each level alone, against the baseline:\n\n{alone_table(by)}\n\n"
            f"Cumulative stack (ratio per step and overall):\n\n{stack_table(by, STACK)}"
            f"\n\nWith the os array as the last step:\n\n"
            f"{stack_table(by, STACK[:-1] + ('hw-os',))}\n\nAgainst the claim:\n\n"
            f"{claims(by)}")
        notes = [f"{r.cfg.key}: {r.note}" for r in by.values() if r.note]
        if notes:
            parts.append("Notes: " + "; ".join(notes))
    parts.append(
        "![Optimisation stack: cycles, LUTs and weight bits per step]"
        "(benchmarks/results/optimisation_stack.png)")
    parts.append(f"Wall time of the whole run: {wall / 60:.1f} min (compile, Verilator "
                 "builds and simulations, synthesis or its cache, fine-tuning).")
    return "\n\n".join(parts)


# ------------------------------------------------------------------ main
def parse_synth(spec: str) -> set[tuple[str, str]]:
    if spec == "none":
        return set()
    if spec == "all":
        return {(m, c.key) for m in MODELS for c in CONFIGS}
    out = set()
    for part in spec.split(";"):
        model, _, keys = part.partition(":")
        if model not in MODELS or not keys:
            raise SystemExit(f"--synth {spec!r}: expected MODEL:KEY,KEY;... with MODEL in "
                             f"{', '.join(MODELS)}, or 'none' / 'all'")
        for k in keys.split(","):
            if k not in CONFIG_BY_KEY:
                raise SystemExit(f"--synth: unknown config {k!r}; known: "
                                 f"{', '.join(CONFIG_BY_KEY)}")
            out.add((model, k))
    return out


def run(models_: tuple[str, ...], *, fast: bool, samples: int, epochs: int, synth: set,
        build_root: Path, max_instructions: int) -> tuple[dict[str, dict[str, Row]], dict[str, dict]]:
    results, facts = {}, {}
    for name in models_:
        t0 = time.perf_counter()
        graphs, facts[name] = prepared_graphs(name, epochs, SEED)
        entry = models.get(name)
        ds = entry.dataset()
        x_test = np.array(ds.x_test, np.float32).reshape((-1,) + tuple(entry.input_shape[1:]))
        y = np.asarray(ds.y_test)
        print(f"{name}: graphs ready ({time.perf_counter() - t0:.0f} s); pruning kept "
              f"{facts[name]['kept']}", flush=True)
        by = {}
        for cfg in CONFIGS:
            by[cfg.key] = evaluate(name, cfg, graphs[cfg.bits, cfg.pruned], x_test, y,
                                   rtl=not fast, synth=(name, cfg.key) in synth,
                                   samples=samples, build_root=build_root,
                                   max_instructions=max_instructions)
            r = by[cfg.key]
            print(f"  {name}/{cfg.key}: {r.cycles:,} cycles ({r.cycles_src}), acc "
                  f"{100 * r.acc:.2f}%, {r.weight_bits:,} weight bits, LUT {r.res['lut']} "
                  f"({r.res_src}) {r.note}", flush=True)
        results[name] = by
    return results, facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="analytic model only (no RTL sim, "
                    "no synthesis), 2 fine-tune epochs; nothing written unless --out")
    ap.add_argument("--samples", type=int, default=2, help="test samples simulated per config")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tune epochs (10; fast: 2)")
    ap.add_argument("--synth", default=DEFAULT_SYNTH, help="configs synthesised with Yosys: "
                    "'MODEL:KEY,KEY;MODEL:...', 'none' or 'all' (the rest: resource model)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--max-instructions", type=int, default=2000, help="configs whose "
                    "program is longer are not emitted/simulated (estimated): the naive "
                    "schedule has one instruction per tile")
    ap.add_argument("--build-dir", default="build/optimisation_stack")
    ap.add_argument("--out", default=None, help="results directory (default: "
                    "benchmarks/results, not written with --fast)")
    args = ap.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.fast else 10)
    synth = set() if args.fast else parse_synth(args.synth)
    names = tuple(m for m in args.models.split(",") if m)
    t0 = time.perf_counter()
    results, facts = run(names, fast=args.fast, samples=args.samples, epochs=epochs,
                         synth=synth, build_root=Path(args.build_dir),
                         max_instructions=args.max_instructions)
    wall = time.perf_counter() - t0
    if args.fast and args.out is None:
        for name, by in results.items():
            print(f"\n### {name}\n\n{config_table(list(by.values()))}\n\n"
                  f"{stack_table(by, STACK)}")
        return 0
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    png = out / "optimisation_stack.png"
    steps = list(STACK) + ["hw-os"]
    chart(results, steps, [CONFIG_BY_KEY[k].label for k in steps], png)
    cmd = "python benchmarks/optimisation_stack.py"
    if argv or sys.argv[1:]:
        cmd += " " + " ".join(argv if argv is not None else sys.argv[1:])
    body = report(results, facts, epochs=epochs, samples=args.samples, wall=wall,
                  fast=args.fast)
    if out == RESULTS:
        path = write_section("optimisation_stack", "Optimisation stack: software, compiler and "
                             "hardware gains (digits)", cmd, body)
    else:
        path = out / "optimisation_stack.md"
        path.write_text(f"## Optimisation stack\n\nCommand: `{cmd}`\n\n{body}\n")
    print(f"wrote {path} and {png} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
