"""The corpus run: models written outside this repository through the whole flow.

For each model of :mod:`corpus_models` (torchvision, timm, transformers, Brevitas and
hand-written tutorial-style models, seeded random weights): its MACs (counted by torch's
own ``FlopCounterMode``, independent of our front end), the ops of the traced graph, then
the stages

1. trace     ``mapping.graph.trace`` (torch.fx, torch.export when fx cannot trace); a
   Brevitas model is traced as its plain-torch QAT import
   (``mapping.passes.qat_import.import_brevitas``);
2. quantise  ``mapping.passes.prepare`` (fold, fuse, 8-bit quantise on a seeded random
   calibration batch, lower); a Brevitas model keeps its learned scales, bit widths and
   integer weights (``quantize(fixed=...)``, as ``tests/corpus/test_corpus.py``);
3. compile   ``hwgen.build.flow.compile_model`` for the model's preset and ``--set``
   overrides (mapper, program, Verilog);
4. RTL       for a single-program build of at most 2 M MACs: the fast engine (Verilator)
   on 4 seeded random inputs, every output compared with ``sim.golden`` and every
   layer's cycle counter with ``mapping.timing`` on the build's schedule.

Each stage is ok or failed with the one-line error and its seconds; a stage after a
failed one is not run. The table goes to ``benchmarks/results/corpus.md``.

    python benchmarks/corpus.py                       # the whole corpus, 1 job
    python benchmarks/corpus.py --only lenet5,cnn1d   # some models
    python benchmarks/corpus.py --no-rtl --no-write   # front end and compile only
    python benchmarks/corpus.py --rtl-max-macs 4e6    # also simulate models up to 4 M MACs
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from corpus_models import BY_NAME, CORPUS, CorpusModel  # noqa: E402

RTL_MAX_MACS = 2_000_000
SAMPLES = 4
STAGES = ("trace", "quantise", "compile", "rtl")


def one_line(exc: BaseException, limit: int = 240) -> str:
    """The first line of an error, without the front end's long list of supported ops."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = text.split("; supported: ")[0]
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def torch_macs(model, x) -> int:
    """Multiply-accumulates of one forward pass, by torch's FlopCounterMode (2 flops/MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops()) // 2


def arch_of(entry: CorpusModel):
    from mapping.arch import preset

    return preset(entry.preset).replace(**entry.overrides)


def _stage(row: dict, name: str, fn):
    """Run one stage: record ok/seconds/error in ``row``; return its value or None."""
    t = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - every failure is a table entry
        row[name] = {"ok": False, "s": time.perf_counter() - t, "error": one_line(exc)}
        return None
    row[name] = {"ok": True, "s": time.perf_counter() - t, "error": ""}
    return value


def quantise(graph, entry: CorpusModel, acc_bits: int, qat=None):
    """``mapping.passes.prepare`` after the trace: fold, fuse, quantise (8 bits, seeded
    random calibration), lower; on the traced graph, so a slow trace is not repeated.
    ``qat``: the ``QatImport`` of a Brevitas model, whose scales, bit widths and integer
    weights fix the quantisation (``quantize(fixed=...)``)."""
    from mapping.passes import fold_batchnorm, fuse_activations, lower, quantize

    g = fuse_activations(fold_batchnorm(graph))
    fixed = None if qat is None else qat.fixed_for(g, entry.calibration())
    return lower(quantize(g, entry.calibration(), bits=8, acc_bits=acc_bits, fixed=fixed))


def qat_import(model):
    """The ``QatImport`` of a Brevitas model (``mapping.passes.qat_import``), else None."""
    from mapping.passes.qat_import import import_brevitas, is_brevitas

    return import_brevitas(model) if is_brevitas(model) else None


def expected_cycles(build) -> tuple[list[int], int]:
    """Per-layer cycles and start-to-done from ``mapping.timing`` on the build's schedule."""
    from mapping import timing
    from mapping.schedule import Schedule

    sched = Schedule.from_json((build.path / "schedule.json").read_text())
    by = {lm.layer: lm for lm in sched.layers}
    layers = [timing.layer_cycles(by[la["name"]], build.arch).cycles if la["name"] in by
              else la["predicted_cycles"] for la in build.manifest["layers"]]
    prog = build.manifest["program"]
    return layers, timing.run_cycles(prog["input_count"], sum(layers), prog["output_count"])


def run_rtl(out: Path, shape: tuple[int, ...], samples: int = SAMPLES, seed: int = 0) -> dict:
    """Simulate a chain build on the fast engine; bit-exact and cycle-exact figures."""
    from sim.accelerator import load_build, quantize_inputs, simulate

    build = load_build(out)
    x = np.random.default_rng(seed).standard_normal((samples, *shape[1:])).astype(np.float32)
    x_int = quantize_inputs(build, x)
    res = simulate(build, x_int, engine="fast")
    layers, run = expected_cycles(build)
    layers_ok = bool(np.all(res.layer_cycles == np.asarray(layers)[None, :]))
    return {"bit_exact": res.bit_exact, "mismatches": len(res.mismatches), "samples": samples,
            "measured": max(res.run_cycles), "predicted": run,
            "cycles_ok": layers_ok and all(c == run for c in res.run_cycles)}


def run_model(name: str, out_root: str, rtl: bool = True, log: str | None = None,
              rtl_max_macs: int = RTL_MAX_MACS) -> dict:
    """Every stage of one corpus model (run in a worker process); a JSON-able row."""
    if log:  # torch.export and the tools write long diagnostics: keep them in a file
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
    warnings.filterwarnings("ignore")
    import torch

    from hwgen.build.flow import compile_model
    from mapping.graph import trace
    from mapping.passes.fxtrace import tracer_of

    torch.set_num_threads(1)
    entry = BY_NAME[name]
    row: dict = {"name": name, "source": entry.source, "preset": entry.preset,
                 "set": entry.set_args, "input": list(entry.input_shape), "note": entry.note}
    model = _stage(row, "build", entry.build)
    if model is None:
        return row
    x = entry.example_input()
    row["macs"] = _stage(row, "count", lambda: torch_macs(model, x))
    qat = {}  # the Brevitas import, if any (its errors are the trace stage's)

    def traced():
        qat["import"] = qat_import(model)
        return trace(model if qat["import"] is None else qat["import"].module, x)

    graph = _stage(row, "trace", traced)
    if graph is None:
        return row
    if qat["import"] is not None:
        row["qat"] = qat["import"].describe()
    row["tracer"] = tracer_of(graph)[0]
    row["ops"] = sorted({n.op for n in graph.nodes()} - {"input", "output"})
    arch = arch_of(entry)
    q = _stage(row, "quantise", lambda: quantise(graph, entry, arch.acc_bits, qat["import"]))
    if q is None:
        return row
    out = Path(out_root) / name
    cm = _stage(row, "compile", lambda: compile_model(
        q, arch, out, model=name, settings={"bits": 8, "corpus": entry.source}))
    if cm is None:
        return row
    row["kind"] = cm.manifest.kind
    macs = row["macs"] or q.total_macs
    if not rtl:
        row["rtl_skip"] = "not run (--no-rtl)"
    elif cm.manifest.kind != "chain":
        row["rtl_skip"] = f"not run: {cm.manifest.kind} build (ops between kernels on the host)"
    elif macs > rtl_max_macs:
        row["rtl_skip"] = f"not run: {macs / 1e6:.1f} M MACs > {rtl_max_macs / 1e6:g} M"
    else:
        row["sim"] = _stage(row, "rtl", lambda: run_rtl(out, entry.input_shape))
    return row


# ------------------------------------------------------------------------ the table
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _status(st: dict | None) -> str:
    if st is None:
        return "-"
    return f"ok {st['s']:.1f} s" if st["ok"] else f"failed {st['s']:.1f} s"


def stops_at(row: dict) -> str:
    """Where the model stops today: the first failed stage and its error, else what ran."""
    for stage in ("build", "trace", "quantise", "compile", "rtl"):
        st = row.get(stage)
        if st is not None and not st["ok"]:
            return f"{stage}: {st['error']}"
    if "rtl_skip" in row:
        return f"compiles ({row.get('kind')}); RTL {row['rtl_skip']}"
    sim = row.get("sim")
    if sim and not (sim["bit_exact"] and sim["cycles_ok"]):
        return "RTL: " + ("cycles differ" if sim["bit_exact"] else
                          f"{sim['mismatches']} of {sim['samples']} samples differ")
    return "passes every stage"


def table(rows: list[dict]) -> str:
    head = ("| model | input | preset | MACs | ops | trace | quantise | compile | bit-exact "
            "| cycles measured = predicted | where it stops |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        sim = r.get("sim")
        exact = cyc = "-"
        if sim:
            exact = (f"yes ({sim['samples']}/{sim['samples']})" if sim["bit_exact"] else
                     f"no ({sim['mismatches']}/{sim['samples']} differ)")
            sign = "=" if sim["cycles_ok"] else "≠"
            cyc = f"{sim['measured']:,} {sign} {sim['predicted']:,}"
            exact += f", RTL {r['rtl']['s']:.0f} s"
        elif r.get("rtl") is not None:
            exact = cyc = "failed"
        macs = f"{r['macs']:,}" if r.get("macs") else "-"
        arch = r["preset"] + (f" `{r['set']}`" if r["set"] else "")
        trace = _status(r.get("trace"))
        if r.get("tracer"):
            trace += f" ({r['tracer']})"
        shape = "x".join(str(d) for d in r["input"])
        lines.append("| " + " | ".join(_cell(c) for c in (
            r["name"], shape, arch, macs, ", ".join(r.get("ops", [])) or "-", trace,
            _status(r.get("quantise")), _status(r.get("compile")), exact, cyc,
            stops_at(r))) + " |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    n = len(rows)
    count = {s: sum(bool(r.get(s, {}).get("ok")) for r in rows)
             for s in ("trace", "quantise", "compile")}
    small = [r for r in rows if r.get("macs") and r["macs"] <= RTL_MAX_MACS]
    ok = [r for r in rows if r.get("sim") and r["sim"]["bit_exact"] and r["sim"]["cycles_ok"]]
    exact = sum(r in ok for r in small)
    more = [r["name"] for r in ok if r not in small]
    return (f"{n} models: {count['trace']} trace, {count['quantise']} quantise, "
            f"{count['compile']} compile; {exact} of the {len(small)} with at most "
            f"{RTL_MAX_MACS / 1e6:.0f} M MACs run bit-exact in RTL with measured cycles = "
            "predicted" + (f"; so do {', '.join(more)} (larger, run with --rtl-max-macs)"
                           if more else "") + ".")


NOTES = """\
MACs: torch's `FlopCounterMode` on the float model (independent of our front end).
ops: the traced DataflowGraph's ops. Stage times are wall seconds on the machine above
(measured). bit-exact: the fast engine's outputs equal `sim.golden` on every sample
(seeded standard-normal inputs, quantised with the build's input scale); cycles: the
hardware's start-to-done counter (max over samples) vs `mapping.timing` on the build's
schedule, every layer counter checked too. Weights are random (fixed seed, BatchNorm
statistics randomised): the corpus checks compilation and exactness, not accuracy.
"""


def _write(rows: list[dict], total: int, t0: float, args, argv) -> str:
    """The result section (``results/corpus.md`` unless ``--no-write``); returns its body."""
    wall = time.perf_counter() - t0
    done = "" if len(rows) == total else f" Partial: {len(rows)} of {total} models so far."
    body = "\n".join([summary(rows), "", table(rows), "", NOTES,
                      f"Wall time {wall:.0f} s, {args.jobs} job(s) (measured).{done}"])
    if not args.no_write:
        from _common import write_section

        cmd = "python benchmarks/corpus.py " + " ".join(argv if argv is not None
                                                        else sys.argv[1:])
        path = write_section("corpus", "Corpus: models written outside this repository",
                             cmd.strip(), body)
        if not done:
            body += f"\n\nwritten to {path}"
    return body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None,
                    help="comma-separated model names (default: all): " +
                    ", ".join(m.name for m in CORPUS))
    ap.add_argument("--jobs", type=int, default=1, help="models run in parallel (default 1)")
    ap.add_argument("--no-rtl", action="store_true", help="skip the RTL simulations")
    ap.add_argument("--rtl-max-macs", type=float, default=RTL_MAX_MACS,
                    help=f"simulate single-program builds of at most this many MACs (default "
                    f"{RTL_MAX_MACS:,}: the issue's rule; larger models take minutes each)")
    ap.add_argument("--no-write", action="store_true",
                    help="do not write benchmarks/results/corpus.md")
    ap.add_argument("--out", default=None, help="build directories go here (default: a "
                    "temporary directory, removed at the end); logs as NAME.log")
    args = ap.parse_args(argv)
    names = [m.name for m in CORPUS]
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in names if n not in BY_NAME]
        if bad:
            ap.error(f"unknown model(s) {', '.join(bad)}; corpus: {', '.join(BY_NAME)}")
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs} is invalid: must be at least 1")
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="corpus-")
    root = Path(args.out or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: dict[str, dict] = {}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx,
                             max_tasks_per_child=1) as pool:
        futs = {n: pool.submit(run_model, n, str(root), not args.no_rtl,
                               str(root / f"{n}.log"), int(args.rtl_max_macs)) for n in names}
        for n in names:
            try:
                rows[n] = futs[n].result()
            except Exception as exc:  # noqa: BLE001 - a crashed worker is a row too
                rows[n] = {"name": n, "source": BY_NAME[n].source, "preset": BY_NAME[n].preset,
                           "set": BY_NAME[n].set_args, "input": list(BY_NAME[n].input_shape),
                           "build": {"ok": False, "s": 0.0, "error": one_line(exc)}}
            print(f"{n}: {stops_at(rows[n])}", flush=True)
            if not args.no_write and len(rows) < len(names):  # partial results as they come
                _write([rows[m] for m in names if m in rows], len(names), t0, args, argv)
    print()
    print(_write([rows[n] for n in names], len(names), t0, args, argv))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
