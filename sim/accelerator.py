"""Host side of the accelerator co-simulation: load a build directory, quantise inputs with
``sim.golden``, run the cocotb testbench (:mod:`sim.tb_accelerator`) on Verilator or
Icarus, compare every output with the golden model and collect the cycle counters.

::

    build = load_build("build/mlp-digits")
    x_int = quantize_inputs(build, x_float)            # torch layout, batch on dim 0
    res = simulate(build, x_int, simulator="verilator")
    res.bit_exact, res.mismatches, res.layer_cycles, res.cycles_per_second

A build directory is what ``hwgen compile`` (``hwgen.build.flow.compile_model``)
writes; one from another hwgen version or build format is refused with a
one-line :class:`BuildError`.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import hwgen
from hwgen.build.flow import FORMAT_VERSION, GRAPH_FILE, MANIFEST_FILE, to_stream
from hwgen.rtl.dma import EXT_ADDR_BITS, burst_len_bits
from mapping.arch import ArchSpec
from mapping.timing import run_cycles
from sim import golden
from sim.runner import run_cocotb

TB_MODULE = Path(__file__).resolve().parent / "tb_accelerator.py"


class BuildError(ValueError):
    """A build directory that cannot be simulated; the message is one line saying why."""


@dataclass
class Build:
    """A loaded build directory: its manifest, ArchSpec and (lazily) the quantised graph."""

    path: Path
    manifest: dict[str, Any]
    arch: ArchSpec
    _graph: Any = None

    @property
    def graph(self):
        if self._graph is None:
            self._graph = pickle.loads((self.path / GRAPH_FILE).read_bytes())
        return self._graph

    @property
    def verilog(self) -> Path:
        return self.path / self.manifest["verilog"]

    @property
    def synth_source(self) -> Path:
        """What synthesis reads: the RTLIL the Verilog was written from (``hwgen.build.emit``),
        or the Verilog for builds made before emit wrote it."""
        il = self.manifest.get("rtlil")
        return self.path / il if il and (self.path / il).is_file() else self.verilog

    @property
    def layer_names(self) -> list[str]:
        return [x["name"] for x in self.manifest["layers"]]

    @property
    def predicted(self) -> list[int]:
        return [int(x["predicted_cycles"]) for x in self.manifest["layers"]]

    @property
    def predicted_run(self) -> int:
        """Estimated start-to-done cycles (``mapping.timing.run_cycles``)."""
        prog = self.manifest["program"]
        return run_cycles(prog["input_count"], sum(self.predicted), prog["output_count"])


def load_build(path: str | Path) -> Build:
    """Read and check a build directory (see :class:`BuildError` for what is refused)."""
    path = Path(path)
    if not path.is_dir():
        raise BuildError(f"build directory {path} does not exist; create it with "
                         f"`hwgen compile MODEL -o {path}`")
    man_file = path / MANIFEST_FILE
    if not man_file.is_file():
        raise BuildError(f"{path} is not a build directory (no {MANIFEST_FILE}); create it with "
                         f"`hwgen compile MODEL -o {path}`")
    try:
        man = json.loads(man_file.read_text())
    except json.JSONDecodeError as exc:
        raise BuildError(f"{man_file} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    version, fmt = man.get("hwgen_version"), man.get("format_version")
    if version != hwgen.__version__ or fmt != FORMAT_VERSION:
        raise BuildError(f"{path} was built by hwgen {version} (build format {fmt}); this is "
                         f"hwgen {hwgen.__version__} (build format {FORMAT_VERSION}): recompile "
                         "it with `hwgen compile`")
    if man.get("kind") != "chain":
        raise BuildError(f"{path} holds {man.get('kind')!r} builds ({man.get('model')}: one "
                         "program per array op); `hwgen sim` runs single-program builds only")
    for name, digest in man.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise BuildError(f"{path} is incomplete: {name} is missing; recompile it")
        if name in (man["verilog"], GRAPH_FILE) and \
                hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise BuildError(f"{f} does not match the SHA-256 in {MANIFEST_FILE} (edited?); "
                             "recompile it")
    return Build(path, man, ArchSpec.from_dict(man["arch"]))


def quantize_inputs(build: Build, x_float) -> np.ndarray:
    """Float inputs (torch layout, batch on dim 0) -> integers with the graph's input scale."""
    x = np.asarray(x_float, dtype=np.float64)
    shape = tuple(build.manifest["input"]["shape"][1:])
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
    extra: dict[str, Any] = field(default_factory=dict)

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
    arch = build.arch
    if arch.weight_store != "external":
        return None
    words = [int(line, 16) for line in (build.path / "weights.hex").read_text().split()]
    return {"memory": words or [0], "latency": arch.ext_latency,
            "bandwidth": arch.ext_bandwidth, "addr_field": [0, EXT_ADDR_BITS],
            "words_field": [EXT_ADDR_BITS, burst_len_bits(arch)]}


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


def simulate(build: Build, x_int: np.ndarray, *, simulator: str = "verilator",
             waves: bool | str = False, cache_dir: str | Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             run_dir: str | Path | None = None) -> SimResult:
    """Run integer inputs ``x_int`` (torch layout, batch on dim 0) on the build's RTL.

    ``progress(done, total)`` is called from a helper thread as samples finish.
    """
    man = build.manifest
    x_int = np.asarray(x_int)
    if x_int.ndim < 2 or x_int.shape[0] == 0:
        raise ValueError(f"x_int must be a non-empty batch (batch on dim 0), got shape {x_int.shape}")
    ref = to_stream(golden.run(build.graph, x_int), man["output"]["layout"])
    stream_in = to_stream(x_int, man["input"]["layout"])
    prog = man["program"]
    if stream_in.shape[1] != prog["input_count"]:
        raise ValueError(f"inputs have {stream_in.shape[1]} elements per sample; the "
                         f"accelerator reads {prog['input_count']}")
    tmp = tempfile.TemporaryDirectory(prefix="hwgen-sim-")
    prog_file = Path(tmp.name) / "progress"
    params = {"inputs": stream_in.tolist(), "output_count": prog["output_count"],
              "layers": len(man["layers"]), "max_cycles": 4 * build.predicted_run + 1000,
              "progress": str(prog_file) if progress else None, "ext": _ext_params(build)}
    stop = threading.Event()
    watcher = None
    if progress:
        watcher = threading.Thread(target=_watch, args=(prog_file, progress, stop), daemon=True)
        watcher.start()
    try:
        res = run_cocotb(build.verilog, man["top_module"], TB_MODULE, params,
                         simulator=simulator, waves=waves, cache_dir=cache_dir, run_dir=run_dir)
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
        simulator=simulator, waves=meta.get("waves"))
