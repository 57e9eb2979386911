"""``hwgen sim``: run test samples through a build's RTL (cocotb + Verilator/Icarus) and compare
every output bit-exactly with ``sim.golden``; measured vs predicted cycles per layer."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from hwgen.cli import CliError

TOLERANCE = 0.005  # measured vs predicted cycles per layer (ARCHITECTURE.md invariant 2)
RANDOM_SAMPLES = 32  # default sample count for models without a data set


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim",
        help="co-simulate a build directory on test samples, bit-exact against the golden model",
        description="Feed samples (--inputs, else the zoo model's test split, else seeded "
        "random inputs) through the generated Verilog (a compiled Verilator testbench by "
        "default, or the cocotb testbench), compare every output "
        "with sim.golden bit-exactly, and print hardware accuracy, mismatches, measured vs "
        "predicted cycles per layer and the simulation speed. Exit code 1 if any output "
        "differs or a layer is off its predicted cycles by more than 0.5%.",
    )
    p.add_argument("build", metavar="BUILD_DIR", help="directory written by `hwgen compile`")
    p.add_argument("--inputs", metavar="X.npy", default=None,
                   help="your samples: a .npy (or .npz with x, optionally labels y) of float "
                   "inputs shaped like the model input, batch first, e.g. (N, 1, 32, 32); "
                   "quantised with the build's input scale")
    p.add_argument("--labels", metavar="Y.npy", default=None,
                   help="integer class ids, one per --inputs sample: prints the accuracy "
                   "(hardware and sim.golden; argmax of the output)")
    p.add_argument("--samples", type=int, default=None,
                   help="number of samples (default: all of --inputs, or the whole test split; "
                   f"{RANDOM_SAMPLES} random inputs for models without data)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"),
                   help="HDL simulator (default verilator)")
    p.add_argument("--engine", default=None, choices=("fast", "cocotb"),
                   help="simulation engine: fast (compiled Verilator testbench, no Python per "
                   "cycle; default on Verilator) or cocotb (the reference testbench; the only "
                   "engine for Icarus)")
    p.add_argument("--x-check", action="store_true",
                   help="fast engine: run twice with different random power-up states and fail "
                   "(naming the sample and the cycle) if an output depends on them")
    p.add_argument("--waves", action="store_true",
                   help="write an FST waveform (path printed at the end)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.set_defaults(func=run)


def _progress_bar(total: int):
    stream = sys.stderr
    first: list[tuple[int, float]] = []  # (samples, time) at the first report: after the build

    def show(done: int, _total: int) -> None:
        width = 30
        fill = width * done // max(1, total)
        now = time.perf_counter()
        if not first:
            first.append((done, now))
        d0, t0 = first[0]
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        stream.write(f"\r  [{'#' * fill}{'.' * (width - fill)}] {done}/{total} samples "
                     f"({rate:,.1f}/s)")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


def load_samples(entry, count: int | None, seed: int = 0):
    """``(x_float, labels or None, source)``: the first ``count`` test samples, or seeded random
    inputs ``entry.example_input(seed + i)`` for models without a data set."""
    import numpy as np

    if count is not None and count < 1:
        raise CliError(f"--samples {count} is invalid: must be at least 1")
    ds = entry.dataset()
    if ds is not None:
        n = len(ds.x_test) if count is None else count
        if n > len(ds.x_test):
            raise CliError(f"--samples {n}: the {ds.name} test split has only {len(ds.x_test)} "
                           "samples")
        return (np.array(ds.x_test[:n], dtype=np.float32), np.array(ds.y_test[:n]),
                f"{ds.name} test split")
    n = RANDOM_SAMPLES if count is None else count
    x = np.concatenate([entry.example_input(seed + i).numpy() for i in range(n)])
    return x, None, f"random inputs (example_input seeds {seed}..{seed + n - 1})"


def user_samples(build, inputs: str | Path, labels: str | Path | None, count: int | None):
    """``(x_float, labels or None, source)`` from the user's ``--inputs``/``--labels`` files,
    checked against the build's input and output shapes (:mod:`mapping.datafiles`)."""
    from math import prod

    from mapping.datafiles import check_labels, load_arrays, load_samples
    from mapping.graph import GraphError

    if count is not None and count < 1:
        raise CliError(f"--samples {count} is invalid: must be at least 1")
    classes = prod(build.manifest.output.shape[1:])
    try:
        x, y = load_samples(inputs, tuple(build.manifest.input.shape[1:]), "--inputs")
        if labels is not None:
            lab, extra = load_arrays(labels, "--labels")
            y = check_labels(extra if extra is not None else lab, len(x),
                             f"--labels {labels}", classes)
        elif y is not None:
            y = check_labels(y, len(x), f"--inputs {inputs} (y)", classes)
    except GraphError as exc:
        raise CliError(str(exc)) from None
    n = len(x) if count is None else count
    if n > len(x):
        raise CliError(f"--samples {n}: {inputs} holds only {len(x)} samples")
    return x[:n], (None if y is None else y[:n]), f"{Path(inputs).name}"


def random_samples(build, count: int | None, seed: int):
    """Seeded standard-normal inputs shaped like the build's input (a user's model, no
    ``--inputs``)."""
    import numpy as np

    if count is not None and count < 1:
        raise CliError(f"--samples {count} is invalid: must be at least 1")
    n = RANDOM_SAMPLES if count is None else count
    shape = tuple(build.manifest.input.shape[1:])
    x = np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)
    return x, None, f"random normal inputs (seed {seed}; give --inputs for your data)"


def simulate_build(path: str | Path, *, samples: int | None = None, simulator: str = "verilator",
                   engine: str | None = None, waves: bool = False, seed: int = 0,
                   x_check: bool = False,
                   progress: bool | None = None,
                   cache_dir: str | Path | None = None,
                   inputs: str | Path | None = None,
                   labels: str | Path | None = None) -> dict[str, Any]:
    """Load a build, simulate ``samples`` inputs (the user's ``inputs``/``labels`` files,
    else the zoo model's test split, else seeded random inputs) and return the numbers
    ``run`` prints. A user model's build is never re-loaded as Python (a build executes no
    code), so its float accuracy is not shown."""
    import numpy as np

    from hwgen.cli.compile_cmd import load_entry
    from sim.accelerator import BuildError, load_build, quantize_inputs, resolve_engine, simulate
    from sim.runner import SimulationError
    from sim.tools import SimulatorNotFoundError, check_verilator_fst, find_simulator

    try:
        build = load_build(path)
        build.graph  # noqa: B018  (parse it now: a bad graph file is a one-line error too)
    except BuildError as exc:
        raise CliError(str(exc)) from None
    try:
        engine = resolve_engine(engine, simulator)
        find_simulator(simulator)
        if waves and simulator == "verilator":
            check_verilator_fst()
    except (SimulatorNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if labels is not None and inputs is None:
        raise CliError("--labels needs --inputs (the samples they label)")
    user_model = "source" in build.manifest.settings
    entry = None if user_model else load_entry(build.manifest.model)
    if inputs is not None:
        x, labels, source = user_samples(build, inputs, labels, samples)
    elif user_model:
        x, labels, source = random_samples(build, samples, seed)
    else:
        x, labels, source = load_samples(entry, samples, seed)
    x_int = quantize_inputs(build, x)
    if progress is None:
        progress = sys.stderr.isatty() or len(x) >= 50
    start = time.perf_counter()
    try:
        res = simulate(build, x_int, simulator=simulator, engine=engine, waves=waves,
                       cache_dir=cache_dir, x_check=x_check,
                       progress=_progress_bar(len(x)) if progress else None)
    except SimulationError as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    wall = time.perf_counter() - start
    out: dict[str, Any] = {"build": str(build.path), "model": build.manifest.model,
                           "arch": build.arch, "source": source, "result": res, "wall": wall}
    if labels is not None:
        out["accuracy"] = {
            "golden": float(np.mean(res.golden.argmax(-1) == labels)),
            "hardware": float(np.mean(res.outputs.argmax(-1) == labels)),
        }
        if entry is not None:
            import torch

            with torch.no_grad():
                fl = entry.load()(torch.from_numpy(x)).argmax(-1).numpy()
            out["accuracy"]["float"] = float(np.mean(fl == labels))
    return out


def format_result(s: dict[str, Any]) -> str:
    """The text ``hwgen sim`` prints for a :func:`simulate_build` result."""
    res, arch = s["result"], s["arch"]
    n = res.samples
    lines = [f"{s['model']} on {arch.name} ({arch.rows}x{arch.cols} {arch.dataflow}, weights in "
             f"{arch.weight_store}), {res.simulator}, {n} samples ({s['source']}), "
             f"{res.engine} engine"]
    lines.append(f"  build: {'cached' if res.build_cached else 'built'} "
                 f"({res.build_seconds:.1f} s to build)")
    bad = res.mismatches
    lines.append(f"  outputs: {n - len(bad)}/{n} samples bit-exact vs sim.golden"
                 + ("" if not bad else f"; {len(bad)} MISMATCH(ES), first: "
                    + res.mismatch_detail(bad[0])))
    if "accuracy" in s:
        a = s["accuracy"]
        fl = f", float {a['float']:.2%}" if "float" in a else ""
        lines.append(f"  accuracy: hardware {a['hardware']:.2%}, golden {a['golden']:.2%} "
                     f"(int, sim.golden){fl} on {n} samples"
                     + ("" if a["hardware"] == a["golden"] else "  <- DIFFERENT"))
    lines.append("  cycles per layer: measured (hardware counter, max over samples) vs "
                 "predicted (mapping.timing):")
    dev = res.layer_deviation()
    for i, name in enumerate(res.layer_names):
        meas = int(res.layer_cycles[:, i].max())
        flag = "" if dev[i] <= TOLERANCE else "  <- OFF BY MORE THAN 0.5%"
        lines.append(f"    {name:<12} {meas:>10,} vs {res.predicted[i]:>10,}  "
                     f"{(meas - res.predicted[i]) / res.predicted[i]:+.2%}{flag}")
    run_meas = max(res.run_cycles)
    lines.append(f"    {'start..done':<12} {run_meas:>10,} vs {res.predicted_run:>10,}  "
                 f"{(run_meas - res.predicted_run) / res.predicted_run:+.2%}  "
                 "(mapping.timing.run_cycles: streams + layers + sequencer)")
    if res.ext_words is not None:
        rd, wr = (w // n for w in res.ext_words)
        lines.append(f"  external memory: {rd:,} words read, {wr:,} written per inference "
                     f"({arch.ext_word_bits}-bit words; weight bursts and activation transfers; "
                     "measured)")
    lines.append(f"  simulation: {res.total_cycles:,} cycles in {res.loop_seconds:.1f} s = "
                 f"{res.cycles_per_second:,.0f} cycles/s (measured, sample loop); "
                 f"{s['wall']:.1f} s wall incl. build/start-up")
    if res.waves:
        lines.append(f"  waves: {res.waves}")
    return "\n".join(lines)


def passed(s: dict[str, Any]) -> bool:
    res = s["result"]
    return res.bit_exact and max(res.layer_deviation()) <= TOLERANCE


def run(args: argparse.Namespace) -> int:
    s = simulate_build(args.build, samples=args.samples, simulator=args.simulator,
                       engine=args.engine, waves=args.waves, seed=args.seed,
                       x_check=args.x_check, inputs=args.inputs, labels=args.labels)
    print(format_result(s))
    return 0 if passed(s) else 1
