"""RTL fuzz campaign: random layer x architecture cases run in the generated Verilog.

Each case (one seed) draws an ArchSpec (rows/cols 1-16, biased to small arrays; both
dataflows; operand widths 2-16; accumulators from the minimum that holds one product up to
32 bits; tight or roomy scratchpads and banks; single or double buffering; weights baked in
ROM or served by the external memory with a random latency 0-12 and bandwidth 1, 1/2, 1/3
or 1/4 words per cycle), a compute layer (a GEMM, or a convolution with random stride,
padding and dilation; in some cases per axis, the height axis drawn on its own, among them
Conv1d-style 1 x k kernels on height-1 inputs), a mapping (the mapper's, or random tiles and loop order) and, at
random, a second layer on the result: a max or average pool, or a residual add of the layer
input. The program is compiled, emitted and run on the fast engine (``sim.fast``) for two
random input samples (one of them all extreme values). A case passes when

- every output equals the integer reference: ``sim.golden.im2col`` and ``mapping.quant``'s
  wrap/requantise for the compute layer, ``sim.golden.GoldenModel``'s pool op, and
  ``mapping.quant.requantize_add`` for the add (none of them the RTL or the compiler);
- every layer's hardware cycle counter and start-to-done equal ``mapping.timing``.

A draw the compiler rightly refuses (a mapping whose tiles exceed a buffer, activations
beyond the scratchpad: a ``ProgramError``/``MappingError``) is drawn again from the same
seed stream; refusals are counted. Failing seeds are printed and kept in the results: rerun
one with ``--seed S --cases 1``.

    python benchmarks/fuzz_rtl.py --cases 1000 --jobs 2      # the campaign (results/fuzz_rtl.md)
    python benchmarks/fuzz_rtl.py --seed 17 --cases 1 -v     # one case, described
"""

from __future__ import annotations

import argparse
import itertools
import math
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

from hwgen.compiler.layers import ProgramError  # noqa: E402
from hwgen.compiler.program import AddLayer, ComputeLayer, PoolLayer, compile_program  # noqa: E402
from mapping import quant, timing  # noqa: E402
from mapping.arch import ArchSpec, ArchSpecError  # noqa: E402
from mapping.loopnest import LoopNest  # noqa: E402
from mapping.schedule import ORDERS, LayerMapping, MappingError  # noqa: E402

DIMS = (1, 2, 3, 4, 5, 6, 8, 12, 16)
DIM_WEIGHTS = np.array([1 / d for d in DIMS]) / sum(1 / d for d in DIMS)
BANDWIDTHS = (1.0, 0.5, 1 / 3, 0.25)
MAX_DRAWS = 50


@dataclass
class Case:
    """One drawn case: the ArchSpec, the program layers, the inputs and how it was drawn."""

    seed: int
    arch: ArchSpec
    layers: list
    inputs: np.ndarray  # samples x stream elements
    description: str
    refused: int = 0


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


# ------------------------------------------------------------------------------ drawing
def _arch(rng: np.random.Generator, need_acc: int) -> ArchSpec:
    rows, cols = (int(rng.choice(DIMS, p=DIM_WEIGHTS)) for _ in range(2))
    in_bits, w_bits = (int(rng.integers(2, 17)) for _ in range(2))
    acc_bits = int(rng.integers(in_bits + w_bits, max(in_bits + w_bits, 32) + 1))
    acc_bits = max(acc_bits, min(48, need_acc))
    db = bool(rng.random() < 0.5)
    ext = bool(rng.random() < 0.4)
    return ArchSpec(
        rows=rows, cols=cols, dataflow=str(rng.choice(["ws", "os"])), in_bits=in_bits,
        w_bits=w_bits, acc_bits=acc_bits, double_buffer=db,
        act_words=int(rng.choice([256, 512, 1024, 4096])),
        w_words=int(rows * cols * (2 if db else 1) * rng.choice([1, 2, 4, 16])),
        acc_words=int(cols * rng.choice([1, 2, 4, 16, 64])),
        act_banks=int(rng.choice([1, 2, 4])), w_banks=int(rng.choice([1, 2])),
        acc_banks=int(rng.choice([1, 2])),
        weight_store="external" if ext else "rom",
        ext_word_bits=int(rng.choice([w for w in (16, 32, 64) if w >= max(w_bits, in_bits)])),
        ext_latency=int(rng.integers(0, 13)), ext_bandwidth=float(rng.choice(BANDWIDTHS)))


def _geometry(geo: np.random.Generator, r: int, s: int, h: int, w: int, stride: int, pad: int,
              dil: int) -> tuple:
    """``(r, s, h, w, (sh, sw), (ph, pw), (dh, dw))``: the square draw, or (40 %) per-axis
    geometry from ``geo``: the height axis drawn on its own, or (a third of those) a Conv1d
    (a 1 x k kernel on a height-1 input with a wider row)."""
    sq = (r, s, h, w, (stride, stride), (pad, pad), (dil, dil))
    if geo.random() >= 0.4:
        return sq
    if geo.random() < 1 / 3:
        s, w = int(geo.integers(1, 6)), int(geo.integers(1, 17))
        return 1, s, 1, w, (1, stride), (0, pad), (1, dil)
    r, h = int(geo.integers(1, 4)), int(geo.integers(1, 9))
    return (r, s, h, w, (int(geo.integers(1, 3)), stride), (int(geo.integers(0, 3)), pad),
            (int(geo.integers(1, 3)), dil))


def _nest(rng: np.random.Generator, geo: np.random.Generator, in_bits: int,
          w_bits: int) -> LoopNest:
    if rng.random() < 0.5:
        return LoopNest.gemm(int(rng.integers(1, 13)), int(rng.integers(1, 17)),
                             int(rng.integers(1, 25)), in_bits=in_bits, w_bits=w_bits)
    while True:
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride, pad, dil = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3))
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        r, s, h, w, st, pd, dl = _geometry(geo, r, s, h, w, stride, pad, dil)
        if h + 2 * pd[0] - dl[0] * (r - 1) - 1 >= 0 and w + 2 * pd[1] - dl[1] * (s - 1) - 1 >= 0:
            return LoopNest.conv(1, int(rng.integers(1, 9)), int(rng.integers(1, 6)), h, w, r,
                                 s, stride=st, padding=pd, dilation=dl,
                                 in_bits=in_bits, w_bits=w_bits)


def _mapping(rng: np.random.Generator, nest: LoopNest, arch: ArchSpec) -> tuple[LayerMapping, str]:
    if rng.random() < 0.5:
        from mapping.mapper import search_layer

        res = search_layer(nest, arch, str(rng.choice(["latency", "energy"])), layer="L0")
        lm = res.mapping
        return LayerMapping("L0", nest, arch.dataflow, lm.tile_m, lm.tile_n, lm.tile_k,
                            order=lm.order), "mapper"

    def pick(d: int) -> int:
        return int(rng.choice([rng.integers(1, d + 1), d, max(1, d - 1)]))

    return (LayerMapping("L0", nest, arch.dataflow, pick(nest.gemm_m), pick(nest.gemm_n),
                         pick(nest.gemm_k), order=ORDERS[int(rng.integers(len(ORDERS)))]),
            "random")


def _compute_layer(rng, arch: ArchSpec, lm: LayerMapping) -> ComputeLayer:
    nest = lm.nest
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(nest.gemm_k, nest.gemm_n))
    blim = 1 << min(10, arch.acc_bits - 2)
    out_bits = int(rng.integers(2, arch.in_bits + 1))
    # a multiplier/shift that keeps typical sums inside the output range (not all saturated)
    typical = math.sqrt(nest.gemm_k) * (1 << (arch.in_bits - 1)) * (1 << (arch.w_bits - 1))
    shift = int(np.clip(math.ceil(math.log2(max(2.0, typical))) + 15 - out_bits, 1, 62))
    return ComputeLayer(lm, w, rng.integers(-blim, blim, size=nest.gemm_n),
                        rng.integers(1 << 14, 1 << 15, size=nest.gemm_n),
                        np.full(nest.gemm_n, shift), out_bits=out_bits,
                        relu=bool(rng.random() < 0.5))


def _second_layer(rng, arch: ArchSpec, first: ComputeLayer):
    nest, kind = first.mapping.nest, rng.random()
    if nest.kind == "conv" and kind < 0.35 and nest.P * nest.Q > 1:
        k = int(rng.integers(1, min(3, nest.P, nest.Q) + 1))
        pool_kind = str(rng.choice(["max", "avg"]))
        kw = dict(kind=pool_kind, H=nest.P, W=nest.Q, C=nest.K, kernel=k,
                  stride=int(rng.integers(1, k + 1)), padding=int(rng.integers(0, k // 2 + 1)),
                  out_bits=first.out_bits, relu=bool(rng.random() < 0.3), src="L0")
        if pool_kind == "avg":
            kw["mult"], kw["shift"] = quant.quantize_multiplier(1.0 / (k * k))
        return PoolLayer("pool", **kw)
    same = (nest.kind == "gemm" and nest.gemm_n == nest.gemm_k) or (
        nest.kind == "conv" and (nest.P, nest.Q, nest.K) == (nest.H, nest.W, nest.C))
    if same and kind < 0.7:
        shape = (nest.gemm_m, nest.gemm_n) if nest.kind == "gemm" else (nest.P, nest.Q, nest.K)
        ma, mb, sh = quant.add_multipliers(*(float(v) for v in rng.uniform(0.01, 0.1, 3)))
        return AddLayer("add", shape, ma, mb, sh, relu=bool(rng.random() < 0.5), src="L0",
                        src2="input", out_bits=min(first.out_bits, arch.in_bits))
    return None


def _ax(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def draw(seed: int) -> Case:
    """The case of ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, 20261207])
    geo = np.random.default_rng([seed, 20261207, 1])  # per-axis conv geometry (own stream)
    refused = 0
    for _ in range(MAX_DRAWS):
        in_bits, w_bits = int(rng.integers(2, 17)), int(rng.integers(2, 17))
        nest = _nest(rng, geo, in_bits, w_bits)
        need = in_bits + w_bits + math.ceil(math.log2(nest.gemm_k + 1)) + 1
        try:
            arch = _arch(rng, need).replace(in_bits=in_bits, w_bits=w_bits)
            arch = arch.replace(acc_bits=max(arch.acc_bits, in_bits + w_bits),
                                ext_word_bits=max(arch.ext_word_bits, 16 if max(in_bits, w_bits)
                                                  <= 16 else 32))
            lm, how = _mapping(rng, nest, arch)
            first = _compute_layer(rng, arch, lm)
            second = _second_layer(rng, arch, first)
            layers = [first] + ([second] if second is not None else [])
            compile_program(arch, layers)
        except (ProgramError, MappingError, ArchSpecError, ValueError):
            refused += 1
            continue
        n_in = nest.gemm_m * nest.gemm_k if nest.kind == "gemm" else nest.H * nest.W * nest.C
        lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
        x = np.stack([rng.integers(lo, hi + 1, size=n_in), rng.choice([lo, hi], size=n_in)])
        shape = (f"gemm {nest.gemm_m}x{nest.gemm_n}x{nest.gemm_k}" if nest.kind == "gemm" else
                 f"conv C{nest.C} K{nest.K} {nest.H}x{nest.W} k{nest.R}x{nest.S} "
                 f"s{_ax(nest.stride_h, nest.stride_w)} p{_ax(nest.pad_h, nest.pad_w)} "
                 f"d{_ax(nest.dil_h, nest.dil_w)}")
        tail = "" if second is None else f" + {type(second).__name__[:-5].lower()}" + (
            f" {second.kind}" if isinstance(second, PoolLayer) else "")
        desc = (f"{arch.rows}x{arch.cols} {arch.dataflow} i{in_bits}w{w_bits}a{arch.acc_bits} "
                f"{'db' if arch.double_buffer else 'sb'} {arch.weight_store}"
                + (f"(lat {arch.ext_latency}, bw {arch.ext_bandwidth:.2f})"
                   if arch.weight_store == "external" else "")
                + f"; {shape}{tail}; {how} tiles {lm.tile_m}/{lm.tile_n}/{lm.tile_k} "
                f"{''.join(lm.order)}")
        return Case(seed, arch, layers, x, desc, refused)
    raise RuntimeError(f"seed {seed}: no valid case in {MAX_DRAWS} draws")


# ------------------------------------------------------------------------------ checking
def reference(case: Case, x: np.ndarray) -> np.ndarray:
    """The integer reference output of ``case`` for one input sample (stream order)."""
    from sim.golden import GoldenModel, im2col

    first, arch = case.layers[0], case.arch
    nest = first.mapping.nest
    xin = x.reshape(nest.gemm_m, nest.gemm_k) if nest.kind == "gemm" else \
        x.reshape(1, nest.H, nest.W, nest.C).transpose(0, 3, 1, 2)
    cols = xin if nest.kind == "gemm" else im2col(xin, nest)
    acc = quant.wrap(quant.wrap(cols @ first.weights, arch.acc_bits) + first.bias[None, :],
                     arch.acc_bits)
    y = quant.requantize(acc, first.mult[None, :], first.shift[None, :], first.out_bits,
                         first.relu).reshape(-1)
    if len(case.layers) == 1:
        return y
    second = case.layers[1]
    if isinstance(second, AddLayer):
        return quant.requantize_add(y, x, second.ma, second.mb, second.shift, second.out_bits,
                                    second.relu)
    from mapping.graph import Node

    g = second.geometry()
    qs = quant.QuantSpec(bits=second.out_bits, scale=1.0, relu=second.relu,
                         mult=np.array([second.mult]), shift=np.array([second.shift]))
    node = Node("pool", f"{second.kind}pool2d", out_shape=(1, second.C, g["P"], g["Q"]),
                attrs=dict(kernel=(g["kh"], g["kw"]), stride=(g["sh"], g["sw"]),
                           padding=(g["ph"], g["pw"])), quant=qs)
    xn = y.reshape(1, second.H, second.W, second.C).transpose(0, 3, 1, 2)
    out = GoldenModel._op(object.__new__(GoldenModel), node, [xn])
    return out.transpose(0, 2, 3, 1).reshape(-1)


def predicted(case: Case) -> list[int]:
    """Per-layer cycles from ``mapping.timing`` (the contract), independent of the program."""
    arch, out = case.arch, []
    for layer in case.layers:
        if isinstance(layer, ComputeLayer):
            out.append(timing.layer_cycles(layer.mapping, arch).cycles)
        elif isinstance(layer, PoolLayer):
            g = layer.geometry()
            out.append(timing.pool_cycles(layer.N * g["P"] * g["Q"], layer.C, g["kh"] * g["kw"],
                                          arch))
        else:
            out.append(timing.add_cycles(int(np.prod(layer.shape)), arch))
    return out


def run_case(seed: int, cache_dir: str | None = None, opt: str = "-O0") -> Outcome:
    """Draw, compile, emit, simulate (fast engine) and check one case.

    ``opt``: the C++ optimisation of the harness build (``-O0``: a case's run is short, its
    build is most of its time; the Verilog semantics do not depend on it)."""
    from hwgen.build.emit import TOP_MODULE, emit
    from hwgen.compiler.isa import EXT_ADDR_BITS, burst_len_bits
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
            harness = fast.build_harness(out / f"{TOP_MODULE}.v", cache_dir=cache_dir, jobs=1,
                                       opt=tuple(opt.split()))
            ext = None
            if arch.weight_store == "external":
                ext = fast.ExtMemory(list(prog.weight_image) or [0], arch.ext_latency,
                                     arch.ext_bandwidth, (0, EXT_ADDR_BITS),
                                     (EXT_ADDR_BITS, burst_len_bits(arch)))
            want_cycles = predicted(case)
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
    ap.add_argument("--no-write", action="store_true", help="do not write results/fuzz_rtl.md")
    args = ap.parse_args(argv)
    seeds = range(args.seed, args.seed + args.cases)
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
             ("gemm", "conv", "+ pool max", "+ pool avg", "+ add", " ws ", " os ", "external",
              "mapper", "random")}
    print(f"{n} cases in {wall:.0f} s ({summary['cases/hour']:.0f} cases/hour, {args.jobs} "
          f"jobs): {len(failed)} failing, {summary['output mismatches']} output mismatches, "
          f"{summary['cycle differences']} cycle differences, {summary['errors']} errors")
    if not args.no_write:
        from _common import write_section

        body = [f"Seeds {args.seed}..{args.seed + n - 1}, {args.jobs} jobs, "
                f"{wall:.0f} s wall (measured).", "",
                "| what | value |", "|---|---:|",
                *[f"| {k} | {v:,.0f} |" for k, v in summary.items()], "",
                "Cases by kind: " + ", ".join(f"{k.strip()} {v}" for k, v in kinds.items()) + ".",
                ""]
        body += [f"- FAIL seed {o.seed}: {o.description}: {o.error or '; '.join(o.details)}"
                 for o in failed] or ["No failing case."]
        cmd = "python benchmarks/fuzz_rtl.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
        print(write_section("fuzz_rtl", "RTL fuzz campaign: random layers x architectures, "
                            "Verilog (fast engine) vs integer reference and timing contract",
                            cmd.strip(), "\n".join(body)).read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
