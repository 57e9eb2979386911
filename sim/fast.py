"""The fast simulation engine: a compiled Verilator testbench for whole-model runs.

:func:`build_harness` verilates the accelerator's Verilog together with
``sim/fast_harness.cpp`` (a C++ ``main`` that speaks the same cycle-level
protocol as the cocotb testbench ``sim/tb_accelerator.py``: reset, start,
input stream, external-memory schedule of docs/timing.md, output stream,
``run_cycles`` and the per-layer counters) into one executable, cached by
content hash like :func:`sim.runner.build`. :func:`run_harness` writes the
samples to a binary file, runs the executable once for all of them and parses
its results file: no Python runs per cycle.

Why a C++ ``main`` and not a SystemVerilog testbench under ``--binary
--timing``: the external-memory schedule and the output collection are plain
loops over a settled design (``eval`` per half period), which Verilator
compiles without its timing scheduler and coroutine machinery, the samples
and results are files of any size (no ``$readmemh`` width limits) and errors
name the sample and the cycle in one line.

Power-up state is random (``--x-initial unique`` and ``+verilator+rand+reset+2``
with a seed), as in the cocotb flow, so a design depending on power-up
contents fails its bit-exact checks instead of passing by luck.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.objcache import objcache_environment
from sim.runner import (
    VERILATOR_MAKEFLAGS,
    VERILATOR_WARNINGS_OFF,
    SimulationError,
    cached_build,
    default_cache_dir,
    objcache_dir,
)
from sim.tools import check_verilator_fst, find_simulator, patched_environ

HARNESS_SOURCE = Path(__file__).with_name("fast_harness.cpp")
OPT_FLAGS = ("-O1",)
"""C++ optimisation of the verilated model (``OPT_FAST``/``OPT_SLOW``/``OPT_GLOBAL``):
docs/simulation.md has the build-time / run-time measurements behind the choice."""


@dataclass(frozen=True)
class Harness:
    """A built testbench: the executable, whether it serves ``ext`` and records waves."""

    executable: Path
    key: str
    ext: bool
    waves: bool
    cached: bool
    build_seconds: float


def _ports(text: str, top: str) -> set[str]:
    m = re.search(rf"\bmodule\s+\\?{re.escape(top)}\s*\(([^)]*)\)\s*;", text)
    if m is None:
        raise ValueError(f"toplevel module {top!r} is not defined in the Verilog text")
    return {p.strip() for p in m.group(1).split(",")}


def build_harness(verilog: str | os.PathLike, top: str = "hwgen_accel", *,
                  waves: bool = False, cache_dir: str | os.PathLike | None = None,
                  jobs: int = 2, opt: tuple[str, ...] = OPT_FLAGS) -> Harness:
    """Verilate ``verilog`` with the C++ testbench into an executable (cached).

    ``opt`` is the C++ optimisation of the model (default :data:`OPT_FLAGS`; ``("-O0",)``
    builds about a third faster and runs slower: for many short runs, as the fuzz campaign).

    The design must have the accelerator's ports (``start``, ``done``, ``inp__*``,
    ``out__*``, ``run_cycles``, ``cycle_count``, ``layer_sel``, ``layer_count``;
    ``ext__req__*``/``ext__resp__*`` for an external weight store).
    """
    text = Path(verilog).read_text() if isinstance(verilog, os.PathLike) else verilog
    ports = _ports(text, top)
    need = {"clk", "rst", "start", "done", "inp__valid", "inp__ready", "inp__payload",
            "out__valid", "out__ready", "out__payload", "run_cycles", "cycle_count",
            "layer_sel", "layer_count"}
    if need - ports:
        raise ValueError(f"{top} lacks the accelerator port(s) {', '.join(sorted(need - ports))}")
    ext = "ext__req__valid" in ports
    info = find_simulator("verilator")
    if waves:
        check_verilator_fst()
    defines = [f"-DHWGEN_TOP=V{top}", f'-DHWGEN_TOP_HEADER=\\"V{top}.h\\"']
    defines += ["-DHWGEN_EXT"] if ext else []
    defines += ["-DHWGEN_WAVES"] if waves else []
    args = ["--cc", "--exe", "--build", "--top-module", top, "-Wno-fatal",
            *(f"-Wno-{w}" for w in VERILATOR_WARNINGS_OFF), "--x-initial", "unique",
            "-CFLAGS", " ".join(defines), *(["--trace-fst"] if waves else []),
            "-o", "harness"]
    harness_text = HARNESS_SOURCE.read_text()
    key = hashlib.sha256(json.dumps({"verilog": text, "top": top, "harness": harness_text,
                                     "args": args, "opt": list(opt), "version": info.version},
                                    sort_keys=True).encode()).hexdigest()[:24]
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "fast"
    build_dir = root / key
    exe = build_dir / "obj_dir" / "harness"
    def make(build_dir: Path) -> dict:
        (build_dir / f"{top}.v").write_text(text)
        shutil.copy(HARNESS_SOURCE, build_dir / HARNESS_SOURCE.name)
        flags = " ".join(opt)
        make_flags = f"{VERILATOR_MAKEFLAGS} OPT_FAST={flags} OPT_SLOW={flags} " \
            f"OPT_GLOBAL={flags}"
        cmd = [info.executable, *args, "-j", str(jobs), f"{top}.v", HARNESS_SOURCE.name]
        log = build_dir / "build.log"
        with patched_environ({**info.env, "MAKEFLAGS": make_flags}), \
                objcache_environment(objcache_dir()), open(log, "w") as out:
            proc = subprocess.run(cmd, cwd=build_dir, stdout=out, stderr=subprocess.STDOUT,
                                  env=os.environ.copy(), check=False)
        if proc.returncode != 0 or not exe.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SimulationError(f"Verilator build of the fast harness failed (exit "
                                  f"{proc.returncode}); log {log}:\n{tail}")
        return {"args": args, "version": info.version}

    cached, seconds = cached_build(build_dir, exe, make)
    return Harness(exe, key, ext, waves, cached, seconds)


@dataclass(frozen=True)
class ExtMemory:
    """The external memory the harness serves: words, latency, bandwidth and where the
    request payload keeps the address, the burst length (``(offset, width)``) and the write
    flag (offset); ``word_bits`` of a word; ``input_ext`` ``(word address, activations per
    word, bits)`` where each sample is written before its run (a spilled program)."""

    words: list[int]
    latency: int
    bandwidth: float
    addr_field: tuple[int, int]
    words_field: tuple[int, int]
    write_bit: int = -1
    word_bits: int = 0
    input_ext: tuple[int, int, int] | None = None


def ext_memory(arch, weights: list[int], ext_words: int = 0,
               input_at: int | None = None) -> ExtMemory | None:
    """The external memory of a design (docs/timing.md: one address space): the weight
    image when the weights are external, then a spilled program's activation regions up to
    ``ext_words`` (zeros), the input written from word ``input_at`` before each run; None
    when the design has no external port."""
    from hwgen.compiler.isa import ext_request_layout
    from mapping.timing import act_per_word

    if arch.weight_store != "external" and input_at is None:
        return None
    words = list(weights) if arch.weight_store == "external" else []
    words += [0] * (ext_words - len(words))
    req = ext_request_layout(arch)
    return ExtMemory(words or [0], arch.ext_latency, arch.ext_bandwidth,
                     (req["addr"].offset, req["addr"].shape.width),
                     (req["len"].offset, req["len"].shape.width), req["write"].offset,
                     arch.ext_word_bits,
                     None if input_at is None else (input_at, act_per_word(arch), arch.in_bits))


def run_harness(harness: Harness, inputs: np.ndarray, *, output_count: int, layers: int,
                out_bits: int, max_cycles: int, ext: ExtMemory | None = None,
                in_bits: int | None = None,
                backpressure: float = 0.0, seed: int = 0, run_dir: str | os.PathLike,
                progress_file: str | os.PathLike | None = None,
                waves_file: str | os.PathLike | None = None, timeout: float | None = None
                ) -> dict:
    """Run every sample of ``inputs`` (samples x stream elements, integers) through the
    harness (``in_bits``-bit inputs, default ``out_bits``). Returns ``outputs`` (samples x
    ``output_count``), ``output_edges``, ``run_cycles``,
    ``layer_cycles`` (samples x ``layers``), ``total_cycles``, ``loop_seconds``,
    ``ext_words`` (words the external memory served and took, all samples) and
    ``run_seconds`` (the whole process)."""
    if harness.ext != (ext is not None):
        raise ValueError("the design has an external-memory port: pass ext" if harness.ext
                         else "ext given but the design has no external-memory port")
    if waves_file is not None and not harness.waves:
        raise ValueError("waves_file needs a harness built with waves=True")
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.int64))
    if x.ndim != 2:
        raise ValueError(f"inputs must be samples x elements, got shape {x.shape}")
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    samples, results = run / "samples.bin", run / "results.txt"
    # inputs as in_bits-bit two's complement: Verilator does not mask a port's unused bits
    # (a -1 written whole into a 3-bit input held 0xFF in its 8-bit storage and changed results)
    width = out_bits if in_bits is None else in_bits
    raw = x & ((1 << width) - 1) if width < 63 else x
    with open(samples, "wb") as f:
        np.asarray(x.shape, dtype="<i8").tofile(f)
        raw.astype("<i8").tofile(f)
    cmd = [str(harness.executable), str(samples), str(results), "--outputs", str(output_count),
           "--layers", str(layers), "--out-bits", str(out_bits), "--max-cycles", str(max_cycles),
           "--seed", str(seed), "--backpressure", repr(float(backpressure)),
           "+verilator+rand+reset+2", f"+verilator+seed+{seed + 1}"]
    if ext is not None:
        mem = run / "ext_memory.hex"
        mem.write_text("".join(f"{w:x}\n" for w in ext.words))
        cmd += ["--ext", str(mem), "--latency", str(ext.latency),
                "--bandwidth", repr(float(ext.bandwidth)),
                "--addr", "{}:{}".format(*ext.addr_field),
                "--words", "{}:{}".format(*ext.words_field),
                "--write", str(ext.write_bit), "--word-bits", str(ext.word_bits)]
        if ext.input_ext is not None:
            cmd += ["--input-ext", "{}:{}:{}".format(*ext.input_ext)]
    if progress_file is not None:
        cmd += ["--progress", str(progress_file)]
    if waves_file is not None:
        cmd += ["--waves", str(waves_file)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    run_seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise SimulationError(f"fast simulation failed: {msg}")
    return parse_results(results.read_text(), len(x), layers, output_count) | {
        "run_seconds": run_seconds}


def parse_results(text: str, samples: int, layers: int, outputs: int) -> dict:
    """Parse the harness's results file (format in ``sim/fast_harness.cpp``)."""
    lines = text.splitlines()
    rows = [ln for ln in lines if ":" in ln]
    tail = dict(ln.split(" ", 1) for ln in lines if ":" not in ln and ln.strip())
    if len(rows) != samples or "total_cycles" not in tail:
        raise SimulationError(f"fast simulation results are incomplete: {len(rows)} of "
                              f"{samples} samples")
    counters = np.array([[int(v) for v in r.split(":")[0].split()] for r in rows],
                        dtype=np.int64).reshape(samples, layers + 1)
    values = [r.split(":", 1)[1].split("@") for r in rows]
    outs = np.array([[int(v) for v in val[0].split()] for val in values],
                    dtype=np.int64).reshape(samples, outputs)
    edges = np.array([[int(v) for v in val[1].split()] if len(val) > 1 else [-1] * outputs
                      for val in values], dtype=np.int64).reshape(samples, outputs)
    return {"outputs": outs, "output_edges": edges, "run_cycles": counters[:, 0].tolist(),
            "layer_cycles": counters[:, 1:], "total_cycles": int(tail["total_cycles"]),
            "loop_seconds": float(tail["loop_seconds"]),
            "ext_words": tuple(int(v) for v in tail.get("ext_words", "0 0").split())}


def run_x_checked(harness: Harness, inputs: np.ndarray, *, run_dir: str | os.PathLike,
                  seed: int = 0, **kw) -> dict:
    """:func:`run_harness` twice, with two different random power-up states (seeds ``seed``
    and ``seed + 1``). Verilator is 2-state, so an output that depends on uninitialised
    state (an X in a 4-state simulator) shows up as a difference between the runs: that is a
    :class:`SimulationError` naming the sample, the output element and the cycle."""
    a = run_harness(harness, inputs, run_dir=run_dir, seed=seed, **kw)
    b = run_harness(harness, inputs, run_dir=Path(run_dir) / "x-check", seed=seed + 1,
                    **{k: v for k, v in kw.items() if k not in ("waves_file", "progress_file")})
    first = first_difference(a, b)
    if first is not None:
        s, e = first
        raise SimulationError(
            f"sample {s}, output element {e}, cycle {int(a['output_edges'][s][e])}: the output "
            "depends on uninitialised state (an X): two runs with different random power-up "
            f"values gave {int(a['outputs'][s][e])} and {int(b['outputs'][s][e])}")
    return a


def first_difference(a: dict, b: dict) -> tuple[int, int] | None:
    """(sample, output element) of the first output that differs between two runs of the same
    samples, or None."""
    diff = np.argwhere(a["outputs"] != b["outputs"])
    return None if len(diff) == 0 else (int(diff[0][0]), int(diff[0][1]))
