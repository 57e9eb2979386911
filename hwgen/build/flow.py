"""The compile flow: quantised graph + ArchSpec -> schedule -> program -> Accelerator -> build dir.

:func:`compile_model` takes a quantised, lowered ``DataflowGraph`` (the CLI
runs ``mapping.passes.prepare_entry`` on a zoo model) and an ``ArchSpec``:

1. :func:`plan` splits the graph into what runs where: a *chain* of
   accelerator layers (compute layers, ``flatten``, pooling / residual add and
   lookup-table activations (``act``) when ``hwgen.compiler.program`` compiles them; a
   depthwise conv2d runs on the element-wise engine, not the array: :func:`dw_layer`),
   host-executed ops (softmax,
   layernorm, gelu) and pure data movement (reshape/transpose).
2. ``mapping.mapper.map_graph`` schedules every compute layer.
3. ``hwgen.compiler.program.compile_program`` turns the chain into one program.
4. ``hwgen.rtl.accelerator.Accelerator`` + ``hwgen.build.emit.write_design`` write the
   Verilog and init files; this module adds ``schedule.json``, ``graph.json`` +
   ``graph.npz`` (the quantised graph, for ``sim.golden``: :mod:`hwgen.build.graph_store`,
   no pickle), ``report.md`` (:mod:`hwgen.build.report`) and the model's fields of the
   :class:`~hwgen.build.manifest.Manifest` (``model``, ``objective``, input/output layout).
   Everything is staged beside ``out_dir`` and moved into place by the one writer
   (:class:`hwgen.build.writer.BuildDir`): a failure leaves no half-written build.

A graph that is not one chain (the transformer: branches, host ops between
array ops) compiles into *kernels*: one single-layer program per compute op
(per head for a batched matmul), each with its own baked program ROM in
``kernels/<name>/`` (:func:`compile_kernels`). The report says which op runs
where; nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import hwgen
from hwgen.build import movement
from hwgen.build.manifest import (  # noqa: F401  (FORMAT_VERSION etc.: re-exported)
    ARRAYS_FILE,
    FORMAT_VERSION,
    GRAPH_FILE,
    MANIFEST_FILE,
    REPORT_FILE,
    SCHEDULE_FILE,
    BuildError,
    KernelInfo,
    Manifest,
    Placement,
    StreamInfo,
)
from hwgen.build.placement import (  # noqa: F401  (re-exported: flow.plan etc.)
    HOST_OPS,
    LAYOUT_OPS,
    POOL_OPS,
    PROGRAM_OPS,
    dw_note,
    lut_note,
    on_program,
    plan,
    single_program,
)
from hwgen.compiler import program as P
from hwgen.compiler.mul_layer import mul_geometry
from mapping import quant as Q
from mapping.arch import ArchSpec
from mapping.graph import DataflowGraph, Node
from mapping.mapper import map_graph
from mapping.passes.lower import is_depthwise
from mapping.schedule import MappingError, Schedule


class FlowError(ValueError):
    """The model cannot be compiled for this architecture; the message says why and what is allowed."""


@dataclass
class CompiledModel:
    """The result of :func:`compile_model`."""

    out_dir: Path
    arch: ArchSpec
    schedule: Schedule
    placements: list[Placement]
    manifest: Manifest
    program: Any = None  # hwgen.compiler.program.Program (chain builds)
    kernels: list[KernelInfo] = field(default_factory=list)  # kernel builds

    @property
    def host_ops(self) -> list[Placement]:
        return [p for p in self.placements if p.where == "host"]


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
                           out_bits=int(q.bits), relu=False, src=src, dst=node.name,
                           ceil_mode=bool(at.get("ceil_mode")))
    return P.PoolLayer(node.name, "avg", H=h, W=w, C=c, N=n, kernel=tuple(at["kernel"]),
                       stride=tuple(at["stride"]), padding=tuple(at["padding"]),
                       mult=int(q.mult[0]), shift=int(q.shift[0]), out_bits=int(q.bits),
                       relu=bool(q.relu), src=src, dst=node.name)


def dw_layer(node: Node, src: str) -> P.DwLayer:
    """The ``DwLayer`` of a quantised depthwise conv2d node (NCHW shapes -> NHWC geometry)."""
    n, c, h, w = node.in_shapes[0]
    q, at = node.quant, node.attrs
    return P.DwLayer(node.name, H=h, W=w, C=c, N=n,
                     weights=np.asarray(node.params["qweight"], dtype=np.int64),
                     bias=np.asarray(node.params["qbias"], dtype=np.int64),
                     mult=np.asarray(q.mult, dtype=np.int64),
                     shift=np.asarray(q.shift, dtype=np.int64), stride=at["stride"],
                     padding=at["padding"], dilation=at["dilation"], out_bits=int(q.bits),
                     relu=bool(q.relu), src=src, dst=node.name)


def _moved(fn, node: Node, src) -> list:
    """``fn(node, src)`` of :mod:`hwgen.build.movement`, its refusals as FlowError."""
    try:
        return fn(node, src)
    except movement.MovementError as exc:
        raise FlowError(str(exc)) from None


def lut_layer(node: Node, src: str) -> P.LutLayer:
    """The ``LutLayer`` of a quantised ``act`` node (its ``qtable``, ``mapping.quant.act_table``)."""
    return P.LutLayer(node.name, tuple(node.out_shape),
                      np.asarray(node.params["qtable"], dtype=np.int64),
                      out_bits=int(node.quant.bits), src=src, dst=node.name)


def add_layer(node: Node, src: str, src2: str) -> P.AddLayer:
    """The ``AddLayer`` of a quantised residual add (``a = inputs[0]``, ``b = inputs[1]``)."""
    q = node.quant
    return P.AddLayer(node.name, tuple(node.out_shape), ma=int(q.mult[0]), mb=int(q.mult[1]),
                      shift=int(q.shift[0]), out_bits=int(q.bits), relu=bool(q.relu), src=src,
                      src2=src2, dst=node.name)


def mul_layer(node: Node, srcs: list[str]) -> P.MulLayer:
    """The ``MulLayer`` of a quantised ``mul`` of two tensors (the gate second, whichever
    side of ``*`` it was on: the product commutes)."""
    if not on_program(node):  # the one rule of what the multiply layer takes
        raise FlowError(f"node {node.name!r}: mul of shapes {list(node.in_shapes)} does not run "
                        "on the accelerator; it multiplies two tensors of one shape, or a "
                        "1 x C x H x W tensor by a 1 x C x 1 x 1 gate")
    pixels, channels, broadcast, gate = mul_geometry(node.in_shapes, node.out_shape)
    q = node.quant
    return P.MulLayer(node.name, pixels, channels, int(q.mult[0]), int(q.shift[0]),
                      out_bits=int(q.bits), relu=bool(q.relu), broadcast=broadcast,
                      src=srcs[1 - gate], src2=srcs[gate], dst=node.name)


def program_layers(graph: DataflowGraph, schedule: Schedule) -> list:
    """The ``compile_program`` layer list of a single-program graph, in topological order;
    tensors are named after their producing node (the input is ``hwgen.compiler.program.INPUT``)."""
    by_name = {lm.layer: lm for lm in schedule.layers}
    layers = []
    for n in graph.nodes():
        if n.op in ("input", "output"):
            continue
        srcs = [_tensor(graph, i) for i in n.inputs]
        if is_depthwise(n):
            layers.append(dw_layer(n, srcs[0]))
        elif n.op in ("linear", "conv2d"):
            layers.append(compute_layer(n, by_name[n.name], srcs[0]))
        elif n.op == "flatten":
            layers.append(P.FlattenLayer(n.name, src=srcs[0], dst=n.name))
        elif n.op == "concat":
            layers += _moved(movement.concat_layers, n, srcs)
        elif n.op == "select":
            layers += _moved(movement.select_layers, n, srcs[0])
        elif n.op in POOL_OPS and movement.varying_pool(n):
            layers += _moved(movement.varying_pool_layers, n, srcs[0])
        elif n.op in POOL_OPS:
            layers.append(pool_layer(n, srcs[0]))
        elif n.op == "add":
            layers.append(add_layer(n, srcs[0], srcs[1]))
        elif n.op == "act":
            layers.append(lut_layer(n, srcs[0]))
        elif n.op == "mul":
            layers.append(mul_layer(n, srcs))
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


def stream_info(node: Node) -> StreamInfo:
    """The manifest's description of an input or output tensor."""
    shape = tuple(int(d) for d in node.out_shape)
    return StreamInfo(shape, stream_layout(shape), int(node.quant.bits), float(node.quant.scale))


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
                  schedule: Schedule | None = None,
                  progress: Callable[[str], None] | None = None) -> CompiledModel:
    """Compile a quantised, lowered graph for ``arch`` into ``out_dir`` (see module docstring).

    ``model`` names the model in the manifest and report; ``settings`` (JSON
    values, e.g. ``{"bits": 8}``) are recorded in the manifest. ``schedule``
    compiles the given schedule (e.g. ``mapping.naive.naive_schedule``) instead
    of the mapper's: it must map every compute node of the graph, in order, on
    ``arch`` (checked; its costs are re-evaluated by ``mapping.cost``).
    ``out_dir`` must be new, empty or a previous build (which is replaced once the
    new one is complete). ``progress`` (optional) is called with a short line as each phase
    starts (mapping, program, Verilog, kernels): big models take minutes.
    """
    from hwgen.build.writer import check_destination

    if not isinstance(arch, ArchSpec):
        raise FlowError(f"arch must be a mapping.arch.ArchSpec, got {type(arch).__name__}")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise FlowError(f"the model takes {len(graph.inputs)} input(s) and returns "
                        f"{len(graph.outputs)} output(s); hwgen compiles models with one input "
                        "tensor and one output tensor (return a single tensor, e.g. "
                        "torch.cat of the outputs)")
    missing = [n.name for n in graph.nodes() if n.quant is None]
    if missing:
        raise FlowError(f"graph is not quantised (no QuantSpec on {', '.join(missing[:3])}); "
                        "run mapping.passes.prepare first")
    if not graph.compute_nodes():
        raise FlowError("graph has no lowered compute layer (linear/conv2d/matmul); run "
                        "mapping.passes.lower (prepare does) first")
    check_fits(graph, arch)
    kind, places = plan(graph)
    places = [dataclasses.replace(p, note=dw_note(graph.node(p.name), arch))
              if p.where == "accelerator" and is_depthwise(graph.node(p.name)) else p
              for p in places]
    out = Path(out_dir)
    say = progress or (lambda line: None)
    try:
        check_destination(out)
        if schedule is None:
            say(f"mapping {len(graph.compute_nodes())} compute layers onto {arch.name}")
            schedule = map_graph(graph, arch, objective)
        else:
            schedule = given_schedule(graph, arch, schedule)
            objective = "given schedule"  # what the manifest and report record
    except (MappingError, BuildError) as exc:
        raise FlowError(f"{model} on {arch.name}: {exc}") from None
    prog = acc = None
    if kind == "chain":
        say("compiling one program")
        prog, acc = chain_design(graph, arch, schedule, model)
    base = Manifest(format_version=FORMAT_VERSION, hwgen_version=hwgen.__version__, kind=kind,
                    arch=arch, model=model, objective=objective,
                    settings=dict(settings or {}), placements=tuple(places))
    return write_build(out, graph, schedule, base, acc, prog, progress=say)


def chain_design(graph: DataflowGraph, arch: ArchSpec, schedule: Schedule, model: str):
    """``(Program, Accelerator)`` of a single-program graph."""
    from hwgen.rtl.accelerator import Accelerator, GenerationError

    try:
        out_tensor = _tensor(graph, graph.node(graph.outputs[0]).inputs[0])
        prog = P.compile_program(arch, program_layers(graph, schedule), output=out_tensor)
        return prog, Accelerator(arch, prog)
    except (P.ProgramError, GenerationError) as exc:
        raise FlowError(f"{model} on {arch.name}: {exc}") from None


def write_build(out: Path, graph: DataflowGraph, schedule: Schedule, base: Manifest,
                acc=None, prog=None, progress: Callable[[str], None] | None = None
                ) -> CompiledModel:
    """Stage and write the build directory of either kind (the one writer: ``BuildDir``);
    ``acc``/``prog``: the chain's design, None for kernels; ``progress`` as compile_model's."""
    from hwgen.build import report
    from hwgen.build.emit import write_design
    from hwgen.build.graph_store import GraphStoreError, save_graph
    from hwgen.build.writer import BuildDir

    say = progress or (lambda line: None)
    arch = base.arch
    try:
        with BuildDir(out) as b:
            kernels: list[KernelInfo] = []
            if acc is not None:
                say(f"generating Verilog ({len(prog.layers)} layers, "
                    f"{len(prog.instructions):,} instructions)")
                design = write_design(acc, b.path)
                x_node = graph.node(graph.inputs[0])
                y_node = graph.node(graph.node(graph.outputs[0]).inputs[0])
                man = dataclasses.replace(
                    design, kind=base.kind, model=base.model, objective=base.objective,
                    settings=base.settings, placements=base.placements,
                    input=stream_info(x_node), output=stream_info(y_node))
            else:
                kernels = emit_kernels(graph, arch, b.path, schedule, base.model, say)
                man = dataclasses.replace(base, kernels=tuple(kernels))
            (b.path / SCHEDULE_FILE).write_text(schedule.to_json() + "\n")
            save_graph(graph, b.path)
            cm = CompiledModel(out, arch, schedule, list(base.placements), man, program=prog,
                               kernels=kernels)
            files = sorted(p.name for p in b.path.iterdir() if p.is_file())
            (b.path / REPORT_FILE).write_text(report.render(cm, files=files))
            cm.manifest = b.finish(man)
    except (BuildError, GraphStoreError, OSError) as exc:
        raise FlowError(f"{base.model} on {arch.name}: writing {out} failed: {exc}") from None
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


def emit_kernels(graph: DataflowGraph, arch: ArchSpec, out: Path, schedule: Schedule,
                 model: str | None, progress: Callable[[str], None] | None = None
                 ) -> list[KernelInfo]:
    """Write every kernel of :func:`kernel_layers` into ``out/kernels/<name>/`` (each a
    sealed ``"design"`` build) and return their descriptions for the top-level manifest."""
    from hwgen.build.emit import write_design
    from hwgen.build.writer import seal
    from hwgen.rtl.accelerator import Accelerator, GenerationError

    kernels = []
    todo = kernel_layers(graph, schedule, arch)
    for i, k in enumerate(todo):
        if progress is not None:
            progress(f"kernel {i + 1}/{len(todo)}: {k['name']} (Verilog)")
        kdir = Path("kernels") / k["name"]
        (out / kdir).mkdir(parents=True)
        try:
            prog = P.compile_program(k["arch"], [k["layer"]])
            kman = seal(out / kdir, write_design(Accelerator(k["arch"], prog), out / kdir))
        except (P.ProgramError, GenerationError) as exc:
            raise FlowError(f"{model} kernel {k['name']} on {arch.name}: {exc}") from None
        kernels.append(KernelInfo(
            name=k["name"], node=k["node"], dir=kdir.as_posix(), weights=k["weights"],
            weight_store=k["arch"].weight_store,
            predicted_cycles=int(kman.predicted_cycles_total),
            input_count=prog.input_count, output_count=prog.output_count,
            weight_words=len(prog.weight_image)))
    return kernels
