"""The compile flow: quantised graph + ArchSpec -> schedule -> program -> Accelerator -> build dir.

:func:`compile_model` takes a quantised, lowered ``DataflowGraph`` (the CLI
runs ``mapping.passes.prepare_entry`` on a zoo model) and an ``ArchSpec``:

1. :func:`plan` splits the graph into what runs where: a *chain* of
   accelerator layers (compute layers, ``flatten``, and pooling / residual add
   when ``hwgen.compiler.program`` compiles them), host-executed ops (softmax,
   layernorm, gelu) and pure data movement (reshape/transpose).
2. ``mapping.mapper.map_graph`` schedules every compute layer.
3. ``hwgen.compiler.program.compile_program`` turns the chain into one program.
4. ``hwgen.rtl.accelerator.Accelerator`` + ``hwgen.build.emit.emit`` write the Verilog, init
   files and ``manifest.json``; this module adds ``schedule.json``,
   ``graph.pkl`` (the quantised graph, for ``sim.golden``), ``report.md``
   (:mod:`hwgen.build.report`) and the flow's fields in the manifest
   (``format_version``, ``model``, input/output layout).

A graph that is not one chain (the transformer: branches, host ops between
array ops) compiles into *kernels*: one single-layer program per compute op
(per head for a batched matmul), each with its own baked program ROM in
``kernels/<name>/`` (:func:`compile_kernels`). The report says which op runs
where; nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwgen.compiler import program as P
from mapping import quant as Q
from mapping.arch import ArchSpec
from mapping.graph import DataflowGraph, Node
from mapping.mapper import map_graph
from mapping.schedule import MappingError, Schedule

FORMAT_VERSION = 1
"""Layout version of a build directory (``manifest.json`` ``format_version``)."""

GRAPH_FILE = "graph.pkl"
SCHEDULE_FILE = "schedule.json"
REPORT_FILE = "report.md"
MANIFEST_FILE = "manifest.json"

HOST_OPS = Q.HOST_OPS
LAYOUT_OPS = ("reshape", "transpose", "flatten")
POOL_OPS = ("maxpool2d", "avgpool2d")


class FlowError(ValueError):
    """The model cannot be compiled for this architecture; the message says why and what is allowed."""


@dataclass
class Placement:
    """Where one graph node runs: ``accelerator`` (program layer ``layer``), ``host``
    (float64 on the host, see ``mapping.quant.host_op``), ``layout`` (data movement, no
    instruction) or ``io`` (the input/output streams)."""

    name: str
    op: str
    where: str
    layer: int | None = None
    note: str = ""


@dataclass
class CompiledModel:
    """The result of :func:`compile_model`."""

    out_dir: Path
    arch: ArchSpec
    schedule: Schedule
    placements: list[Placement]
    manifest: dict[str, Any]
    program: Any = None  # hwgen.compiler.program.Program (chain builds)
    kernels: list[dict[str, Any]] = field(default_factory=list)  # kernel builds

    @property
    def host_ops(self) -> list[Placement]:
        return [p for p in self.placements if p.where == "host"]


# --------------------------------------------------------------------- planning
PROGRAM_OPS = ("linear", "conv2d", "flatten", "add") + POOL_OPS


def single_program(graph: DataflowGraph) -> bool:
    """True if one accelerator program runs the whole graph: one input, one output and
    only ops the hardware compiles (linear, conv2d, flatten, max/avg pool, residual add)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    body = [n for n in graph.nodes() if n.op not in ("input", "output")]
    return all(n.op in PROGRAM_OPS for n in body) and not (
        body and body[-1].op == "flatten")


def plan(graph: DataflowGraph) -> tuple[str, list[Placement]]:
    """``("chain" | "kernels", placements)``: how the graph is compiled (module docstring)."""
    chain = single_program(graph)
    places: list[Placement] = []
    layer = 0
    for n in graph.nodes():
        if n.op in ("input", "output"):
            places.append(Placement(n.name, n.op, "io", note="input stream" if n.op == "input"
                                    else "output stream"))
        elif n.op in HOST_OPS:
            places.append(Placement(n.name, n.op, "host", note="not on the accelerator: run "
                                    "in float64 on the host and requantised (mapping.quant.host_op)"))
        elif n.op in LAYOUT_OPS:
            note = ("no instruction: the next linear's weight rows are permuted to NHWC"
                    if n.op == "flatten" and chain else
                    "data movement done by the host between kernels")
            places.append(Placement(n.name, n.op, "layout", note=note))
        elif n.op in ("linear", "conv2d", "matmul", "add") or n.op in POOL_OPS:
            if not chain and n.op not in ("linear", "conv2d", "matmul"):
                places.append(Placement(n.name, n.op, "host", note="between kernels: run on the "
                                        "host (integer, mapping.quant semantics)"))
                continue
            note = ""
            if n.op == "matmul":
                batch = int(n.attrs.get("batch", 1))
                note = (f"{batch} independent GEMMs (one kernel each); " if batch > 1 else "") + \
                    "second operand is an activation, loaded by the host into the weight memory"
            places.append(Placement(n.name, n.op, "accelerator", layer=layer, note=note))
            layer += 1
        else:
            places.append(Placement(n.name, n.op, "host", note=f"op {n.op!r} is not compiled "
                                    "to the accelerator"))
    return ("chain" if chain else "kernels"), places


# ---------------------------------------------------------------- program layers
def _tensor(graph: DataflowGraph, name: str) -> str:
    return P.INPUT if graph.node(name).op == "input" else name


def compute_layer(node: Node, lm, src: str | None = None) -> P.ComputeLayer:
    """The ``ComputeLayer`` of a quantised linear/conv2d node with mapping ``lm``."""
    q = node.quant
    return P.ComputeLayer(lm, Q.gemm_weights(node.params["qweight"]).astype(np.int64),
                          np.asarray(node.params["qbias"], dtype=np.int64),
                          np.asarray(q.mult, dtype=np.int64), np.asarray(q.shift, dtype=np.int64),
                          out_bits=int(q.bits), relu=bool(q.relu), src=src, dst=node.name)


def pool_layer(node: Node, src: str) -> P.PoolLayer:
    """The ``PoolLayer`` of a quantised max/avg pool node (NCHW shapes -> NHWC geometry)."""
    n, c, h, w = node.in_shapes[0]
    q, at = node.quant, node.attrs
    if node.op == "maxpool2d":
        # golden: max over the window, no clamp; inputs are already in range, so the
        # hardware's clamp to qrange(bits) is the identity
        return P.PoolLayer(node.name, "max", H=h, W=w, C=c, N=n, kernel=tuple(at["kernel"]),
                           stride=tuple(at["stride"]), padding=tuple(at["padding"]),
                           out_bits=int(q.bits), relu=False, src=src, dst=node.name)
    return P.PoolLayer(node.name, "avg", H=h, W=w, C=c, N=n, kernel=tuple(at["kernel"]),
                       stride=tuple(at["stride"]), padding=tuple(at["padding"]),
                       mult=int(q.mult[0]), shift=int(q.shift[0]), out_bits=int(q.bits),
                       relu=bool(q.relu), src=src, dst=node.name)


def add_layer(node: Node, src: str, src2: str) -> P.AddLayer:
    """The ``AddLayer`` of a quantised residual add (``a = inputs[0]``, ``b = inputs[1]``)."""
    q = node.quant
    return P.AddLayer(node.name, tuple(node.out_shape), ma=int(q.mult[0]), mb=int(q.mult[1]),
                      shift=int(q.shift[0]), out_bits=int(q.bits), relu=bool(q.relu), src=src,
                      src2=src2, dst=node.name)


def program_layers(graph: DataflowGraph, schedule: Schedule) -> list:
    """The ``compile_program`` layer list of a single-program graph, in topological order;
    tensors are named after their producing node (the input is ``hwgen.compiler.program.INPUT``)."""
    by_name = {lm.layer: lm for lm in schedule.layers}
    layers = []
    for n in graph.nodes():
        if n.op in ("input", "output"):
            continue
        srcs = [_tensor(graph, i) for i in n.inputs]
        if n.op in ("linear", "conv2d"):
            layers.append(compute_layer(n, by_name[n.name], srcs[0]))
        elif n.op == "flatten":
            layers.append(P.FlattenLayer(n.name, src=srcs[0], dst=n.name))
        elif n.op in POOL_OPS:
            layers.append(pool_layer(n, srcs[0]))
        elif n.op == "add":
            layers.append(add_layer(n, srcs[0], srcs[1]))
        else:
            raise FlowError(f"node {n.name!r}: op {n.op!r} cannot run on the accelerator; "
                            f"supported: {', '.join(PROGRAM_OPS)}")
    return layers


# ------------------------------------------------------------------- layouts
def stream_layout(shape: tuple[int, ...]) -> str:
    """``"nchw->nhwc"`` for 4-D tensors (the accelerator streams NHWC), else ``"row-major"``."""
    return "nchw->nhwc" if len(shape) == 4 else "row-major"


def to_stream(x: np.ndarray, layout: str) -> np.ndarray:
    """Batch ``x`` (torch layout) -> ``(batch, elements)`` in the accelerator's stream order."""
    x = np.asarray(x)
    if layout == "nchw->nhwc":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x).reshape(x.shape[0], -1)


def check_fits(graph: DataflowGraph, arch: ArchSpec) -> None:
    """Operand widths the array cannot hold raise FlowError (clear message)."""
    for n in graph.compute_nodes():
        nest = n.nest
        if nest.in_bits > arch.in_bits or nest.w_bits > arch.w_bits:
            raise FlowError(f"layer {n.name!r} needs {nest.in_bits}-bit inputs and "
                            f"{nest.w_bits}-bit weights; {arch.name} has in_bits={arch.in_bits}, "
                            f"w_bits={arch.w_bits} (use --bits <= {min(arch.in_bits, arch.w_bits)})")
        if n.quant is not None and n.quant.acc_bits and n.quant.acc_bits != arch.acc_bits:
            raise FlowError(f"layer {n.name!r} was quantised for a {n.quant.acc_bits}-bit "
                            f"accumulator; {arch.name} has acc_bits={arch.acc_bits}")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------- compile
def given_schedule(graph: DataflowGraph, arch: ArchSpec, schedule: Schedule) -> Schedule:
    """Check a caller's schedule against the graph and ``arch`` (legal mappings of every
    compute node's loop nest, in order) and price it with ``mapping.cost.evaluate``."""
    from mapping.cost import check_layer, evaluate
    from mapping.timing import check

    if not isinstance(schedule, Schedule):
        raise FlowError(f"schedule must be a mapping.schedule.Schedule, got "
                        f"{type(schedule).__name__}")
    nodes = graph.compute_nodes()
    want = [(n.name, n.nest) for n in nodes]
    have = [(lm.layer, lm.nest) for lm in schedule.layers]
    if want != have:
        raise FlowError("schedule does not match the graph: it maps "
                        f"{[x[0] for x in have]}, the graph's compute layers are "
                        f"{[x[0] for x in want]} (same names, loop nests and order needed)")
    for lm in schedule.layers:
        check_layer(lm.nest, arch, lm.layer)
        check(lm, arch)
    return Schedule(arch_name=arch.name, layers=list(schedule.layers),
                    costs=[evaluate(lm, arch) for lm in schedule.layers])


def compile_model(graph: DataflowGraph, arch: ArchSpec, out_dir: str | Path, *,
                  model: str = "model", objective: str = "latency",
                  settings: dict[str, Any] | None = None,
                  schedule: Schedule | None = None) -> CompiledModel:
    """Compile a quantised, lowered graph for ``arch`` into ``out_dir`` (see module docstring).

    ``model`` names the model in the manifest and report; ``settings`` (JSON
    values, e.g. ``{"bits": 8}``) are recorded in the manifest. ``schedule``
    compiles the given schedule (e.g. ``mapping.naive.naive_schedule``) instead
    of the mapper's: it must map every compute node of the graph, in order, on
    ``arch`` (checked; its costs are re-evaluated by ``mapping.cost``).
    """
    from hwgen.build import report
    from hwgen.build.emit import emit
    from hwgen.rtl.accelerator import Accelerator, GenerationError

    if not isinstance(arch, ArchSpec):
        raise FlowError(f"arch must be a mapping.arch.ArchSpec, got {type(arch).__name__}")
    missing = [n.name for n in graph.nodes() if n.quant is None]
    if missing:
        raise FlowError(f"graph is not quantised (no QuantSpec on {', '.join(missing[:3])}); "
                        "run mapping.passes.prepare first")
    if not graph.compute_nodes():
        raise FlowError("graph has no lowered compute layer (linear/conv2d/matmul); run "
                        "mapping.passes.lower (prepare does) first")
    check_fits(graph, arch)
    kind, places = plan(graph)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if schedule is None:
            schedule = map_graph(graph, arch, objective)
        else:
            schedule = given_schedule(graph, arch, schedule)
            objective = "given schedule"  # what the manifest and report record
    except MappingError as exc:
        raise FlowError(f"{model} on {arch.name}: {exc}") from None
    if kind == "kernels":
        return compile_kernels(graph, arch, out, schedule, places, model=model,
                               settings=settings or {})
    try:
        out_tensor = _tensor(graph, graph.node(graph.outputs[0]).inputs[0])
        prog = P.compile_program(arch, program_layers(graph, schedule), output=out_tensor)
        acc = Accelerator(arch, prog)
    except (P.ProgramError, GenerationError) as exc:
        raise FlowError(f"{model} on {arch.name}: {exc}") from None
    man = emit(acc, out)
    (out / SCHEDULE_FILE).write_text(schedule.to_json() + "\n")
    (out / GRAPH_FILE).write_bytes(pickle.dumps(graph, protocol=4))
    x_node = graph.node(graph.inputs[0])
    y_node = graph.node(graph.node(graph.outputs[0]).inputs[0])
    man.update({
        "format_version": FORMAT_VERSION,
        "kind": "chain",
        "model": model,
        "objective": objective,
        "settings": dict(settings or {}),
        "input": {"shape": list(x_node.out_shape), "layout": stream_layout(x_node.out_shape),
                  "bits": int(x_node.quant.bits), "scale": float(x_node.quant.scale)},
        "output": {"shape": list(y_node.out_shape), "layout": stream_layout(y_node.out_shape),
                   "bits": int(y_node.quant.bits), "scale": float(y_node.quant.scale)},
        "placements": [p.__dict__ for p in places],
    })
    man["files"][SCHEDULE_FILE] = _sha(out / SCHEDULE_FILE)
    man["files"][GRAPH_FILE] = _sha(out / GRAPH_FILE)
    cm = CompiledModel(out, arch, schedule, places, man, program=prog)
    (out / REPORT_FILE).write_text(report.render(cm))
    man["files"][REPORT_FILE] = _sha(out / REPORT_FILE)
    write_json(out / MANIFEST_FILE, man)
    return cm


# --------------------------------------------------------------------- kernels
def kernel_layers(graph: DataflowGraph, schedule: Schedule, arch: ArchSpec) -> list[dict]:
    """One single-layer program per array op of a graph that is not one chain.

    ``linear``/``conv2d``: the node's weights, baked (``arch.weight_store``).
    ``matmul``: one kernel per independent GEMM (``attrs["batch"]``, e.g. per
    attention head); its second operand is an activation, so the kernel reads it
    from the external weight port (``weight_store="external"``), where the host
    writes it in the weight-store word format before the run: the image of
    ``compile_program`` on the layer with the real operand (the instruction
    stream does not depend on weight values). The compiled program carries
    zeros. Requantisation is per tensor (``mult``/``shift`` of the node,
    no bias), exactly ``sim.golden``'s matmul.
    """
    from mapping.mapper import map_layer

    by_name = {lm.layer: lm for lm in schedule.layers}
    ext = arch.replace(weight_store="external")
    out = []
    for n in graph.compute_nodes():
        if n.op in ("linear", "conv2d"):
            out.append({"name": n.name, "node": n.name, "arch": arch,
                        "layer": compute_layer(n, by_name[n.name]),
                        "weights": "baked weights" if arch.weight_store == "rom"
                        else "external memory (weights.hex)"})
            continue
        if n.op != "matmul":
            raise FlowError(f"node {n.name!r}: op {n.op!r} has no kernel")
        lm, _ = map_layer(n.nest, ext, layer=n.name)
        q, nest = n.quant, n.nest
        for h in range(int(n.attrs.get("batch", 1))):
            name = f"{n.name}.{h}" if n.attrs.get("batch", 1) > 1 else n.name
            layer = P.ComputeLayer(lm, np.zeros((nest.gemm_k, nest.gemm_n), np.int64),
                                   np.zeros(nest.gemm_n, np.int64),
                                   np.full(nest.gemm_n, int(q.mult[0]), np.int64),
                                   np.full(nest.gemm_n, int(q.shift[0]), np.int64),
                                   out_bits=int(q.bits), relu=bool(q.relu), dst=name)
            out.append({"name": name, "node": n.name, "arch": ext, "layer": layer,
                        "weights": f"host: activation {n.inputs[1]!r} (head {h})"})
    return out


def compile_kernels(graph: DataflowGraph, arch: ArchSpec, out: Path, schedule: Schedule,
                    places: list[Placement], *, model: str,
                    settings: dict[str, Any]) -> CompiledModel:
    """Emit every kernel of :func:`kernel_layers` into ``out/kernels/<name>/`` and write the
    top-level manifest (``kind: "kernels"``), schedule and report."""
    import hwgen
    from hwgen.build import report
    from hwgen.build.emit import emit
    from hwgen.rtl.accelerator import Accelerator, GenerationError

    kernels = []
    for k in kernel_layers(graph, schedule, arch):
        kdir = Path("kernels") / k["name"]
        try:
            prog = P.compile_program(k["arch"], [k["layer"]])
            kman = emit(Accelerator(k["arch"], prog), out / kdir)
        except (P.ProgramError, GenerationError) as exc:
            raise FlowError(f"{model} kernel {k['name']} on {arch.name}: {exc}") from None
        kernels.append({"name": k["name"], "node": k["node"], "dir": str(kdir),
                        "weights": k["weights"], "weight_store": k["arch"].weight_store,
                        "predicted_cycles": kman["predicted_cycles_total"],
                        "input_count": prog.input_count, "output_count": prog.output_count,
                        "weight_words": len(prog.weight_image)})
    (out / SCHEDULE_FILE).write_text(schedule.to_json() + "\n")
    (out / GRAPH_FILE).write_bytes(pickle.dumps(graph, protocol=4))
    man = {"hwgen_version": hwgen.__version__, "format_version": FORMAT_VERSION,
           "kind": "kernels", "model": model, "objective": "latency", "settings": settings,
           "arch": arch.to_dict(), "kernels": kernels,
           "placements": [p.__dict__ for p in places],
           "files": {SCHEDULE_FILE: _sha(out / SCHEDULE_FILE), GRAPH_FILE: _sha(out / GRAPH_FILE)}}
    cm = CompiledModel(out, arch, schedule, places, man, kernels=kernels)
    (out / REPORT_FILE).write_text(report.render(cm))
    man["files"][REPORT_FILE] = _sha(out / REPORT_FILE)
    write_json(out / MANIFEST_FILE, man)
    return cm
