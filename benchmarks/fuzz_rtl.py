"""RTL fuzz campaign: random layer x architecture cases run in the generated Verilog.

Each case (one seed) is drawn by ``fuzz_draws.draw`` (random ArchSpec, compute layer,
mapping and maybe a second layer or one of the element-wise engine's newer kinds; see that
module). The program is compiled, emitted and run on the fast engine (``sim.fast``) for two
random input samples (one of them all extreme values). A case passes when

- every output equals the integer reference: ``sim.golden.im2col`` and ``mapping.quant``'s
  wrap/requantise for the compute layer, ``sim.golden.GoldenModel``'s pool op (ceil_mode
  too; max clamped to ``qrange(out_bits, relu)``), ``mapping.quant.requantize_add`` for the
  add, direct numpy loops over output pixels and taps for the depthwise conv, and the
  table indexed by the integer values for the lookup (none of them the RTL or compiler);
- every layer's hardware cycle counter and start-to-done equal ``mapping.timing``.

Draws the compiler rightly refuses are drawn again (counted in the results). Failing
seeds are printed and kept in the results: rerun one with ``--seed S --cases 1``.

    python benchmarks/fuzz_rtl.py --cases 1000 --jobs 2      # the campaign (results/fuzz_rtl.md)
    python benchmarks/fuzz_rtl.py --seed 17 --cases 1 -v     # one case, described
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from fuzz_draws import Case, draw, out_size  # noqa: E402

from hwgen.compiler.program import (  # noqa: E402
    AddLayer,
    ComputeLayer,
    DwLayer,
    LutLayer,
    MulLayer,
    PoolLayer,
    compile_program,
)
from mapping import quant, timing  # noqa: E402
from mapping.bands import band_mapping, compute_bands, spilled_cost  # noqa: E402

__all__ = ["Case", "Outcome", "draw", "main", "predicted", "reference", "run_case"]


@dataclass
class Outcome:
    """What running a case found."""

    seed: int
    description: str
    ok: bool
    mismatched_samples: int = 0
    cycle_differences: int = 0
    error: str = ""
    refused: int = 0
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ checking
def _dw_reference(layer: DwLayer, x: np.ndarray, acc_bits: int) -> np.ndarray:
    """Depthwise conv of ``x (H, W, C)`` by direct loops over output pixels and taps."""
    w = np.asarray(layer.weights, dtype=np.int64)  # (C, kh, kw)
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    kh, kw = w.shape[1:]
    h, wd = x.shape[:2]
    acc = np.zeros((out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw), layer.C), np.int64)
    for p, q, i, j in itertools.product(*map(range, (*acc.shape[:2], kh, kw))):
        r, c = p * sh - ph + i * dh, q * sw - pw + j * dw
        if 0 <= r < h and 0 <= c < wd:
            acc[p, q] += x[r, c] * w[:, i, j]
    acc = quant.wrap(acc + np.asarray(layer.bias, np.int64), acc_bits)
    return quant.requantize(acc, layer.mult, layer.shift, layer.out_bits, layer.relu)


def _pool_reference(layer: PoolLayer, y: np.ndarray) -> np.ndarray:
    """``sim.golden.GoldenModel``'s pool op on ``y (H, W, C)``; max clamps to
    ``qrange(out_bits, relu)`` (the layer's contract)."""
    from mapping.graph import Node
    from sim.golden import GoldenModel

    (kh, kw), (sh, sw), (ph, pw) = (_pair(v) for v in (
        layer.kernel, layer.kernel if layer.stride is None else layer.stride, layer.padding))
    ceil = layer.ceil_mode
    p, q = out_size(layer.H, kh, sh, ph, ceil=ceil), out_size(layer.W, kw, sw, pw, ceil=ceil)
    qs = quant.QuantSpec(bits=layer.out_bits, scale=1.0, relu=layer.relu,
                         mult=np.array([layer.mult]), shift=np.array([layer.shift]))
    node = Node("pool", f"{layer.kind}pool2d", out_shape=(1, layer.C, p, q),
                attrs=dict(kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw)), quant=qs)
    out = GoldenModel._op(object.__new__(GoldenModel), node, [y.transpose(2, 0, 1)[None]])
    out = out[0].transpose(1, 2, 0)
    return quant.clamp(out, layer.out_bits, layer.relu) if layer.kind == "max" else out


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def reference(case: Case, x: np.ndarray) -> np.ndarray:
    """The integer reference output of ``case`` for one input sample (stream order)."""
    from sim.golden import im2col

    first, arch = case.layers[0], case.arch
    if isinstance(first, DwLayer):
        y = _dw_reference(first, x.reshape(first.H, first.W, first.C), arch.acc_bits)
    else:
        nest = first.mapping.nest
        xin = x.reshape(nest.gemm_m, nest.gemm_k) if nest.kind == "gemm" else \
            x.reshape(1, nest.H, nest.W, nest.C).transpose(0, 3, 1, 2)
        cols = xin if nest.kind == "gemm" else im2col(xin, nest)
        acc = quant.wrap(quant.wrap(cols @ first.weights, arch.acc_bits) + first.bias[None, :],
                         arch.acc_bits)
        y = quant.requantize(acc, first.mult[None, :], first.shift[None, :], first.out_bits,
                             first.relu)
    y = y.reshape(-1)
    for layer in case.layers[1:]:
        if isinstance(layer, AddLayer):
            y = quant.requantize_add(y, x, layer.ma, layer.mb, layer.shift, layer.out_bits,
                                     layer.relu)
        elif isinstance(layer, LutLayer):  # the table's entry of each integer value
            y = np.asarray(layer.table, np.int64)[y + len(layer.table) // 2]
        elif isinstance(layer, MulLayer):  # a gate per channel (input, L0), or L0 squared
            a, g = (x, y) if layer.src == "input" else (y, x) if layer.src2 == "input" \
                else (y, y)
            gate = np.tile(g, layer.pixels) if layer.broadcast else g
            y = quant.requantize(quant.wrap(a * gate, arch.acc_bits), layer.mult, layer.shift,
                                 layer.out_bits, layer.relu)
        elif isinstance(layer, DwLayer):
            y = _dw_reference(layer, y.reshape(layer.H, layer.W, layer.C),
                              arch.acc_bits).reshape(-1)
        else:
            y = _pool_reference(layer, y.reshape(layer.H, layer.W, layer.C)).reshape(-1)
    return y


def predicted(case: Case) -> list[int]:
    """Per-layer cycles from ``mapping.timing`` (the contract), independent of the program."""
    arch, out = case.arch, []
    for layer in case.layers:
        if isinstance(layer, ComputeLayer):
            out.append(timing.layer_cycles(layer.mapping, arch).cycles)
        elif isinstance(layer, (PoolLayer, DwLayer)):
            g = layer.geometry()
            fn = timing.pool_cycles if isinstance(layer, PoolLayer) else timing.dw_cycles
            out.append(fn(layer.N * g["P"] * g["Q"], layer.C, g["kh"] * g["kw"], arch))
        elif isinstance(layer, LutLayer):
            out.append(timing.lut_cycles(layer.elements, arch))
        elif isinstance(layer, MulLayer):  # a same-shape product walks one pixel
            out.append(timing.mul_cycles(layer.pixels if layer.broadcast else 1,
                                         layer.channels if layer.broadcast else layer.elements,
                                         arch))
        else:
            out.append(timing.add_cycles(int(np.prod(layer.shape)), arch))
    return out


def spilled_predicted(case: Case, prog) -> list[int]:
    """Per-layer cycles of a spilled case: a compute layer's from ``mapping.bands``'s cost of
    its bands (independent of the compiler's code), the others' from the compiler's
    ``mapping.timing`` sums; the last layer also loads the output back (docs/timing.md)."""
    out = []
    for layer, li in zip(case.layers, prog.layers, strict=True):
        if isinstance(layer, ComputeLayer):
            out.append(spilled_cost(layer.mapping, case.arch).cycles)
        else:
            out.append(li.predicted_cycles)
    out[-1] += _output_load(case, prog)[1] if isinstance(case.layers[-1], ComputeLayer) else 0
    return out


def _output_load(case: Case, prog) -> tuple[int, int]:
    """(words, cycles) of the XFER that loads the output back for streaming."""
    words = timing.xfer_words(0, prog.output_count, case.arch)
    return words, timing.xfer_cycles(words, False, case.arch)


def spilled_traffic(case: Case, prog) -> tuple[int, int]:
    """External words read and written per inference by a spilled case: its compute layers'
    from ``mapping.bands.spilled_cost``, the others' from the compiler, the output load,
    and the weight bursts when the weights are external (``mapping.cost``)."""
    rd = wr = 0
    for layer, li in zip(case.layers, prog.layers, strict=True):
        if isinstance(layer, ComputeLayer):
            c = spilled_cost(layer.mapping, case.arch)
            rd, wr = rd + c.act_read_words, wr + c.act_write_words
            if case.arch.weight_store == "external":  # each band reloads its weight tiles
                for b in compute_bands(layer.mapping, case.arch):
                    bm = band_mapping(layer.mapping, b.pixels)
                    rd += sum(timing.weight_words(t, case.arch) for t in timing.iter_tiles(bm)
                              if t.load_weights)
        else:
            rd, wr = rd + li.ext_read_words, wr + li.ext_write_words
    if isinstance(case.layers[-1], ComputeLayer):
        rd += _output_load(case, prog)[0]
    return rd, wr


def run_case(seed: int, cache_dir: str | None = None, opt: str = "-O0") -> Outcome:
    """Draw, compile, emit, simulate (fast engine) and check one case.

    ``opt``: the C++ optimisation of the harness build (``-O0``: a case's run is short, its
    build is most of its time; the Verilog semantics do not depend on it)."""
    from hwgen.build.emit import TOP_MODULE, emit
    from hwgen.rtl.accelerator import Accelerator
    from sim import fast

    t0 = time.perf_counter()
    case = None
    try:
        case = draw(seed)
        arch = case.arch
        prog = compile_program(arch, case.layers)
        with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
            out = Path(tmp) / "b"
            emit(Accelerator(arch, prog), out)
            # every case is a new design: its ~75 MB build is not kept (1,000 cases in the
            # shared simulator cache filled a disk); the run-time object cache still is
            harness = fast.build_harness(out / f"{TOP_MODULE}.v",
                                         cache_dir=cache_dir or Path(tmp) / "sim", jobs=1,
                                         opt=tuple(opt.split()))
            ext = fast.ext_memory(arch, prog.weight_image, prog.ext_words,
                                  prog.ext_tensors["input"][0] if prog.spilled else None)
            want_cycles = spilled_predicted(case, prog) if prog.spilled else predicted(case)
            res = fast.run_harness(
                harness, case.inputs, output_count=prog.output_count, layers=len(prog.layers),
                out_bits=arch.in_bits, ext=ext, run_dir=Path(tmp) / "run",
                max_cycles=4 * timing.run_cycles(prog.input_count, sum(want_cycles),
                                                 prog.output_count) + 1000)
        want = np.stack([reference(case, x) for x in case.inputs])
        bad = [i for i in range(len(want)) if not np.array_equal(res["outputs"][i], want[i])]
        run_want = timing.run_cycles(prog.input_count, sum(want_cycles), prog.output_count)
        cyc = int(np.sum(res["layer_cycles"] != np.array(want_cycles)[None, :])) + \
            sum(r != run_want for r in res["run_cycles"])
        details = [f"sample {i}: got {res['outputs'][i][:8].tolist()} want "
                   f"{want[i][:8].tolist()}" for i in bad[:2]]
        if prog.spilled:  # the words the memory served and took, against the cost model
            traffic = spilled_traffic(case, prog)
            got = tuple(w // len(case.inputs) for w in res["ext_words"])
            if got != traffic:
                cyc += 1
                details.append(f"external words read/written {got} vs cost model {traffic}")
        if cyc:
            details.append(f"cycles measured {res['layer_cycles'][0].tolist()} run "
                           f"{res['run_cycles']} vs timing {want_cycles} run {run_want}")
        return Outcome(seed, case.description, not bad and not cyc, len(bad), cyc,
                       refused=case.refused, seconds=time.perf_counter() - t0, details=details)
    except Exception as exc:  # a crash of the compiler, emitter or simulator is a finding too
        return Outcome(seed, case.description if case else "(not drawn)", False,
                       error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                       refused=case.refused if case else 0, seconds=time.perf_counter() - t0,
                       details=traceback.format_exc().splitlines()[-3:])


# ------------------------------------------------------------------------------ campaign
def _report(o: Outcome, outcomes: list[Outcome], args, t0: float) -> None:
    outcomes.append(o)
    if args.verbose or not o.ok:
        flag = "ok  " if o.ok else "FAIL"
        print(f"{flag} seed {o.seed:5d} {o.seconds:6.1f}s {o.description}"
              + (f" :: {o.error}" if o.error else ""), flush=True)
        for d in o.details if not o.ok else []:
            print(f"       {d}", flush=True)
    if len(outcomes) % 25 == 0:
        print(f"[{len(outcomes)}] {time.perf_counter() - t0:.0f} s, "
              f"{sum(not x.ok for x in outcomes)} failing", flush=True)


def parse_seeds(text: str) -> list[int]:
    """``"3,10-12"`` -> ``[3, 10, 11, 12]`` (ValueError naming a bad item)."""
    out: list[int] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        lo, _, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"--seeds item {item!r}: expected a seed or a range A-B") from None
        out += range(a, b + 1)
    return out


def _ranges(seeds: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0..2, 5"``."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        start = s if start is None else start
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(f"{start}..{s}" if s != start else str(s))
            start = None
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="first seed (cases use seed..seed+N-1)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop starting new cases after this many minutes (the report counts "
                    "the cases run)")
    ap.add_argument("--opt", default="-O0", help="C++ optimisation of the harness builds "
                    "(default -O0: builds dominate a case)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    ap.add_argument("--seeds", default=None, help="these seeds instead of --seed/--cases: "
                    "comma-separated seeds and ranges A-B (inclusive), e.g. to re-run cases")
    ap.add_argument("--section", default="fuzz_rtl", help="results/SECTION.md to write "
                    "(default fuzz_rtl)")
    ap.add_argument("--no-write", action="store_true", help="do not write results/SECTION.md")
    ap.add_argument("--title", default="RTL fuzz campaign: random layers x architectures, "
                    "Verilog (fast engine) vs integer reference and timing contract",
                    help="title of the results section")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else list(range(args.seed,
                                                                  args.seed + args.cases))
    if not seeds or args.jobs < 1:
        ap.error("no seeds to run" if not seeds else f"--jobs {args.jobs}: must be at least 1")
    t0 = time.perf_counter()
    outcomes: list[Outcome] = []
    deadline = None if args.minutes is None else t0 + 60 * args.minutes
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        todo = iter(seeds)
        def submit(n: int) -> set:
            return {pool.submit(run_case, s, None, args.opt) for s in itertools.islice(todo, n)}

        futs = submit(2 * args.jobs)
        while futs:
            done, futs = wait(futs, return_when=FIRST_COMPLETED)
            if deadline is None or time.perf_counter() < deadline:
                futs |= submit(len(done))
            for f in done:
                _report(f.result(), outcomes, args, t0)
    wall = time.perf_counter() - t0
    failed = sorted((o for o in outcomes if not o.ok), key=lambda o: o.seed)
    n = len(outcomes)
    summary = {
        "cases": n, "failing": len(failed),
        "output mismatches": sum(o.mismatched_samples for o in outcomes),
        "cycle differences": sum(o.cycle_differences for o in outcomes),
        "errors": sum(bool(o.error) for o in outcomes),
        "refused draws": sum(o.refused for o in outcomes),
        "cases/hour": n / wall * 3600,
    }
    kinds = {k: sum(k in o.description for o in outcomes) for k in
             ("gemm", "conv", "; dw", "+ pool max", "+ pool max ceil", "+ pool avg", "+ add",
              "+ dw", "+ lut", "+ mul", " ws ", " os ", "external", "spilled", "mapper",
              "random")}
    print(f"{n} cases in {wall:.0f} s ({summary['cases/hour']:.0f} cases/hour, {args.jobs} "
          f"jobs): {len(failed)} failing, {summary['output mismatches']} output mismatches, "
          f"{summary['cycle differences']} cycle differences, {summary['errors']} errors")
    if not args.no_write:
        from _common import write_section

        ran = sorted(o.seed for o in outcomes)
        body = [f"Seeds {_ranges(ran)}, {args.jobs} jobs, "
                f"{wall:.0f} s wall (measured).", "",
                "| what | value |", "|---|---:|",
                *[f"| {k} | {v:,.0f} |" for k, v in summary.items()], "",
                "Cases by kind: " + ", ".join(f"{k.strip()} {v}" for k, v in kinds.items()) + ".",
                "A spilled case (tensors in external memory, row bands) also checks the words "
                "the memory served and took against the cost model (a difference counts as a "
                "cycle difference).", ""]
        body += [f"- FAIL seed {o.seed}: {o.description}: {o.error or '; '.join(o.details)}"
                 for o in failed] or ["No failing case."]
        cmd = "python benchmarks/fuzz_rtl.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
        print(write_section(args.section, args.title, cmd.strip(), "\n".join(body)).read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
