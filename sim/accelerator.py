"""Host side of the accelerator co-simulation: load a build directory, quantise inputs with
``sim.golden``, run the RTL, compare every output with the golden model and collect the
cycle counters. Two engines run the same cycle-level protocol:

- ``"fast"`` (default): :mod:`sim.fast`, a compiled Verilator testbench (C++), no Python
  per cycle; for whole-model runs;
- ``"cocotb"``: the cocotb testbench :mod:`sim.tb_accelerator` on Verilator or Icarus
  (the reference, and the only engine for Icarus).

::

    build = load_build("build/mlp-digits")
    x_int = quantize_inputs(build, x_float)            # torch layout, batch on dim 0
    res = simulate(build, x_int, simulator="verilator")
    res.bit_exact, res.mismatches, res.layer_cycles, res.cycles_per_second

A build directory is what ``hwgen compile`` (``hwgen.build.flow.compile_model``)
writes; it is read only through its contract, :class:`hwgen.build.manifest.Manifest`
(format, version, every file's SHA-256) and :func:`hwgen.build.graph_store.load_graph`
(JSON + ``.npz``, no pickle). Anything else is refused with a one-line
:class:`BuildError`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwgen.build.flow import to_stream
from hwgen.build.graph_store import load_graph
from hwgen.build.manifest import BuildError, Manifest
from mapping.arch import ArchSpec
from mapping.timing import run_cycles
from sim import fast, golden
from sim.runner import run_cocotb

TB_MODULE = Path(__file__).resolve().parent / "tb_accelerator.py"
ENGINES = ("fast", "cocotb")
"""Simulation engines (the first is the default for Verilator; Icarus runs under cocotb)."""


__all__ = ["Build", "BuildError", "SimResult", "load_build", "quantize_inputs", "simulate"]


@dataclass
class Build:
    """A loaded build directory: its manifest, ArchSpec and (lazily) the quantised graph."""

    path: Path
    manifest: Manifest
    arch: ArchSpec
    _graph: Any = None

    @property
    def graph(self):
        if self._graph is None:
            self._graph = load_graph(self.path, self.manifest)
        return self._graph

    @property
    def verilog(self) -> Path:
        return self.path / self.manifest.verilog

    @property
    def synth_source(self) -> Path:
        """What synthesis reads: the RTLIL the Verilog was written from (``hwgen.build.emit``)."""
        return self.path / self.manifest.synth_source

    @property
    def layer_names(self) -> list[str]:
        return [x.name for x in self.manifest.layers]

    @property
    def predicted(self) -> list[int]:
        return [x.predicted_cycles for x in self.manifest.layers]

    @property
    def predicted_run(self) -> int:
        """Estimated start-to-done cycles (``mapping.timing.run_cycles``)."""
        prog = self.manifest.program
        return run_cycles(prog["input_count"], sum(self.predicted), prog["output_count"])


def load_build(path: str | Path) -> Build:
    """Read and check a build directory (:meth:`hwgen.build.manifest.Manifest.load`); only
    single-program builds simulate."""
    path = Path(path)
    man = Manifest.load(path)
    if man.kind != "chain":
        what = (f"kernel builds ({man.model}: one program per array op)" if man.kind == "kernels"
                else "a design without a model (hwgen.build.emit)")
        raise BuildError(f"{path} holds {what}; `hwgen sim` runs single-program builds only "
                         "(`hwgen compile` of a chain model)")
    return Build(path, man, man.arch)


def quantize_inputs(build: Build, x_float) -> np.ndarray:
    """Float inputs (torch layout, batch on dim 0) -> integers with the graph's input scale."""
    x = np.asarray(x_float, dtype=np.float64)
    shape = tuple(build.manifest.input.shape[1:])
    if x.shape[1:] != shape:
        x = x.reshape((-1,) + shape)
    return golden.quantize_input(build.graph, x)


@dataclass
class SimResult:
    """Outputs, golden outputs (both in stream order), counters and timing of one run."""

    outputs: np.ndarray  # (samples, output elements), hardware
    golden: np.ndarray  # (samples, output elements), sim.golden
    run_cycles: list[int]
    layer_cycles: np.ndarray  # (samples, layers), hardware counters (measured)
    predicted: list[int]  # per layer (estimated, mapping.timing)
    layer_names: list[str]
    predicted_run: int
    total_cycles: int  # hardware free-running counter at the end of the simulation
    loop_seconds: float  # wall time of the sample loop inside the simulator
    run_seconds: float  # wall time of the simulator run (start-up included)
    build_seconds: float
    build_cached: bool
    simulator: str
    waves: str | None = None
    engine: str = "cocotb"
    extra: dict[str, Any] = field(default_factory=dict)
    # words the external memory served and took over all samples (measured; None without
    # an external memory): weight bursts and, in a spilled program, activation transfers
    ext_words: tuple[int, int] | None = None

    @property
    def samples(self) -> int:
        return len(self.outputs)

    @property
    def mismatches(self) -> list[int]:
        """Indices of samples whose hardware output differs from the golden model."""
        return [i for i in range(self.samples) if not np.array_equal(self.outputs[i],
                                                                     self.golden[i])]

    @property
    def bit_exact(self) -> bool:
        return not self.mismatches

    def mismatch_detail(self, i: int) -> str:
        """A readable description of sample ``i``'s differences."""
        diff = np.flatnonzero(self.outputs[i] != self.golden[i])
        shown = ", ".join(f"[{j}] hw {self.outputs[i][j]} golden {self.golden[i][j]}"
                          for j in diff[:8])
        more = f" (+{len(diff) - 8} more)" if len(diff) > 8 else ""
        return f"sample {i}: {len(diff)} of {self.outputs.shape[1]} elements differ: {shown}{more}"

    def layer_deviation(self) -> list[float]:
        """Per layer, the largest |measured - predicted| / predicted over all samples."""
        pred = np.asarray(self.predicted, dtype=np.float64)
        return list(np.max(np.abs(self.layer_cycles - pred[None, :]), axis=0) / pred)

    @property
    def cycles_per_second(self) -> float:
        """Simulated clock cycles per wall second of the sample loop (measured)."""
        return self.total_cycles / self.loop_seconds if self.loop_seconds > 0 else 0.0


def _ext_params(build: Build) -> dict[str, Any] | None:
    """The external memory of a build (:func:`sim.fast.ext_memory`: the weight image when the
    weights are external, then a spilled program's activation regions) as the engines'
    parameter dict (``memory`` is ``ExtMemory.words``), or None without one."""
    arch, prog = build.arch, build.manifest.program
    spilled = bool(prog.get("spilled"))
    weights = []
    if arch.weight_store == "external":
        weights = [int(line, 16) for line in (build.path / "weights.hex").read_text().split()]
    mem = fast.ext_memory(arch, weights, int(prog.get("ext_words", 0)),
                          int(prog["input_ext"][0]) if spilled else None)
    if mem is None:
        return None
    d = dataclasses.asdict(mem)
    d["memory"] = d.pop("words")
    return d


def _run_fast(build: Build, stream_in: np.ndarray, params: dict, *, waves: bool | str,
              cache_dir: str | Path | None, run_dir: str | Path | None,
              progress_file: Path | None, x_check: bool = False) -> dict:
    """One run of the fast engine, results in the cocotb testbench's shape."""
    if waves not in (False, None, True, "fst"):
        raise ValueError(f"the fast engine writes FST waves only (waves=True), got {waves!r}")
    harness = fast.build_harness(build.verilog, build.manifest.top_module, waves=bool(waves),
                                 cache_dir=cache_dir)
    ext = params["ext"]
    mem = None if ext is None else fast.ExtMemory(
        ext["memory"], ext["latency"], ext["bandwidth"], tuple(ext["addr_field"]),
        tuple(ext["words_field"]), ext["write_bit"], ext["word_bits"],
        None if ext["input_ext"] is None else tuple(ext["input_ext"]))
    keep = run_dir is not None or bool(waves)
    work = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="hwgen-fast-"))
    waves_file = work / "waves.fst" if waves else None
    try:
        run = fast.run_x_checked if x_check else fast.run_harness
        res = run(harness, stream_in, output_count=params["output_count"],
                               layers=params["layers"], out_bits=build.arch.in_bits,
                               max_cycles=params["max_cycles"], ext=mem, run_dir=work,
                               progress_file=progress_file, waves_file=waves_file)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    res["_run"] = {"run_seconds": res.pop("run_seconds"), "build_seconds": harness.build_seconds,
                   "cached": harness.cached, "waves": str(waves_file) if waves_file else None,
                   "run_dir": str(work) if keep else None}
    return res


def _watch(path: Path, callback: Callable[[int, int], None], stop: threading.Event) -> None:
    last = None
    while not stop.wait(0.2):
        try:
            done, total = (int(v) for v in path.read_text().split())
        except (OSError, ValueError):
            continue
        if (done, total) != last:
            last = (done, total)
            callback(done, total)


def resolve_engine(engine: str | None, simulator: str) -> str:
    """The engine to use: ``engine``, or ``"fast"`` on Verilator and ``"cocotb"`` on Icarus."""
    if engine is None:
        return "cocotb" if simulator == "icarus" else "fast"
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if engine == "fast" and simulator != "verilator":
        raise ValueError(f"the fast engine runs on Verilator only, not {simulator}; "
                         "use engine 'cocotb' for Icarus")
    return engine


def simulate(build: Build, x_int: np.ndarray, *, simulator: str = "verilator",
             engine: str | None = None, waves: bool | str = False,
             cache_dir: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             run_dir: str | Path | None = None, x_check: bool = False) -> SimResult:
    """Run integer inputs ``x_int`` (torch layout, batch on dim 0) on the build's RTL.

    ``engine``: ``"fast"`` or ``"cocotb"`` (default: fast on Verilator, cocotb on
    Icarus). ``progress(done, total)`` is called from a helper thread as samples finish.
    ``x_check`` (fast engine): run twice with different random power-up states and fail,
    naming the sample and the cycle, if an output differs (:func:`sim.fast.run_x_checked`);
    the cocotb engine reports X/Z on an output itself.
    """
    engine = resolve_engine(engine, simulator)
    man = build.manifest
    x_int = np.asarray(x_int)
    if x_int.ndim < 2 or x_int.shape[0] == 0:
        raise ValueError(f"x_int must be a non-empty batch (batch on dim 0), got shape {x_int.shape}")
    ref = to_stream(golden.run(build.graph, x_int), man.output.layout)
    stream_in = to_stream(x_int, man.input.layout)
    prog = man.program
    want = int(prog["input_ext"][1]) if prog.get("spilled") else prog["input_count"]
    if stream_in.shape[1] != want:
        raise ValueError(f"inputs have {stream_in.shape[1]} elements per sample; the "
                         f"accelerator reads {want}")
    tmp = tempfile.TemporaryDirectory(prefix="hwgen-sim-")
    prog_file = Path(tmp.name) / "progress"
    params = {"inputs": stream_in.tolist(), "output_count": prog["output_count"],
              "layers": len(man.layers), "max_cycles": 4 * build.predicted_run + 1000,
              "progress": str(prog_file) if progress else None, "ext": _ext_params(build)}
    stop = threading.Event()
    watcher = None
    if progress:
        watcher = threading.Thread(target=_watch, args=(prog_file, progress, stop), daemon=True)
        watcher.start()
    try:
        if engine == "fast":
            res = _run_fast(build, stream_in, params, waves=waves, cache_dir=cache_dir,
                            run_dir=run_dir, progress_file=prog_file if progress else None,
                            x_check=x_check)
        else:
            res = run_cocotb(build.verilog, man.top_module, TB_MODULE, params,
                             simulator=simulator, waves=waves, cache_dir=cache_dir,
                             run_dir=run_dir)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        tmp.cleanup()
    meta = res["_run"]
    return SimResult(
        outputs=np.asarray(res["outputs"], dtype=np.int64).reshape(len(x_int), -1),
        golden=ref.astype(np.int64), run_cycles=list(res["run_cycles"]),
        layer_cycles=np.asarray(res["layer_cycles"], dtype=np.int64).reshape(len(x_int), -1),
        predicted=build.predicted, layer_names=build.layer_names,
        predicted_run=build.predicted_run, total_cycles=int(res["total_cycles"]),
        loop_seconds=float(res["loop_seconds"]), run_seconds=float(meta["run_seconds"]),
        build_seconds=float(meta["build_seconds"]), build_cached=bool(meta["cached"]),
        simulator=simulator, waves=meta.get("waves"), engine=engine,
        ext_words=(tuple(int(v) for v in res["ext_words"])
                   if params["ext"] is not None and res.get("ext_words") is not None else None))
