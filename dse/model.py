"""What the level-0 evaluator needs to know about a model: its layers' shapes.

A model is named by a string that every worker process turns back into the same
model (:func:`model_entry`): a zoo name, or the JSON of a
:class:`mapping.source.SourceSpec` (your own ``file.py:NAME``, ``.pt2`` or ``.onnx``
with its options; ``hwgen dse`` writes it). :func:`model_layers` traces the model once
(fold, fuse, lower; no quantisation: shapes do not depend on bit widths) and
:func:`graph_layers` turns the graph into the program layers the compiler would produce
(``hwgen.build.flow.program_layers``), in execution order: the compute layers (name,
``LoopNest`` shape) and the element-wise layers (pooling, residual add, lookup-table
activation, depthwise convolution, the strided copies of a concatenation or broadcast,
tensor multiplies),
each priced by its ``mapping.timing`` function (:func:`eltwise_cycles`).
A node that runs on the accelerator but has no level-0 price is a :class:`ModelError`,
never zero cycles; so is a graph that does not compile into one program.
:func:`nests_for_bits` gives the compute nests with the operand widths of a
quantisation choice, :func:`lut_entries` the lookup-ROM entries.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from mapping import timing
from mapping.arch import ArchSpec
from mapping.graph import pair
from mapping.loopnest import LoopNest


@dataclass(frozen=True)
class ComputeLayer:
    """A compute layer: ``name``, its shape-only ``nest`` and the node whose output it reads."""

    name: str
    nest: LoopNest
    source: str


@dataclass(frozen=True)
class EltwiseLayer:
    """An element-wise-engine layer (one ELT word): ``op`` is a key of :data:`ELTWISE_OPS`
    (the graph op; ``dwconv`` a depthwise conv2d, ``copy`` one strided copy of a concat,
    a channel select or a broadcast: the program's ``LayerInfo.kind``). Pooling and ``dwconv``: ``out_pixels``
    (batch x output pixels), ``channels``, ``window`` (kernel height x width); ``copy``:
    ``out_pixels`` (pixels copied), ``channels`` (per pixel); ``mul`` (of two tensors): the
    pixels and channels it walks (``hwgen.compiler.mul_layer.mul_geometry``); residual add and ``act``:
    ``elements``. ``source``: the node it reads (an ``act``'s table has one entry per value
    of it)."""

    name: str
    op: str
    out_pixels: int
    channels: int
    window: int
    elements: int
    source: str = ""


# graph op -> ELT layer cycles (mapping.timing, the functions hwgen.compiler prices with).
# A new program layer kind gets an entry here, in graph_layers and in
# dse.resources (its ELT kind); until then graph_layers refuses it (ModelError).
ELTWISE_OPS = {
    "maxpool2d": lambda e, arch: timing.pool_cycles(e.out_pixels, e.channels, e.window, arch),
    "avgpool2d": lambda e, arch: timing.pool_cycles(e.out_pixels, e.channels, e.window, arch),
    "add": lambda e, arch: timing.add_cycles(e.elements, arch),
    "act": lambda e, arch: timing.lut_cycles(e.elements, arch),
    "dwconv": lambda e, arch: timing.dw_cycles(e.out_pixels, e.channels, e.window, arch),
    "copy": lambda e, arch: timing.copy_cycles(e.out_pixels, e.channels, arch),
    "mul": lambda e, arch: timing.mul_cycles(e.out_pixels, e.channels, arch),
}


def eltwise_cycles(e: EltwiseLayer, arch: ArchSpec) -> int:
    """Cycles of element-wise layer ``e`` on ``arch`` (``mapping.timing``)."""
    try:
        price = ELTWISE_OPS[e.op]
    except KeyError:
        raise ModelError(f"layer {e.name!r}: op {e.op!r} has no level-0 cycle model; "
                         f"priced: {', '.join(ELTWISE_OPS)}") from None
    return price(e, arch)


class ModelError(ValueError):
    """The model's graph is not one level 0 can price (says which node and why)."""


@dataclass(frozen=True)
class ModelLayers:
    """The layers of one model, in execution order, and the producer of every node."""

    model: str
    compute: tuple[ComputeLayer, ...]
    eltwise: tuple[EltwiseLayer, ...]
    producers: tuple[tuple[str, str], ...]  # (node, node whose bits it carries) pass-through map
    input_name: str
    io_elements: int = 0  # elements streamed in + out per inference (one per cycle)

    @property
    def compute_names(self) -> list[str]:
        return [c.name for c in self.compute]

    @property
    def macs(self) -> int:
        return sum(c.nest.macs for c in self.compute)

    @property
    def weights(self) -> int:
        return sum(c.nest.weight_count for c in self.compute)


@functools.lru_cache(maxsize=16)
def model_entry(model: str):
    """The model named ``model`` (cached per process): the zoo ``ModelEntry`` of a zoo name
    (``UnknownModelError`` lists the names), or the user's
    :class:`mapping.source.ModelSource` of a ``SourceSpec`` JSON string."""
    if model.startswith("{"):
        from mapping.source import SourceSpec, load_source

        return load_source(SourceSpec.from_json(model))
    import models

    return models.get(model)


def model_label(model: str) -> str:
    """A short readable name: the zoo name, or the source's name plus a hash of its spec
    (file names and study names stay short and distinct)."""
    if not model.startswith("{"):
        return model
    import hashlib
    import json

    spec = json.loads(model)["spec"]
    file, _, name = spec.rpartition(":") if ".py:" in spec else (spec, "", "")
    stem = file.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{stem}{'.' + name if name else ''}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


# ops whose output carries its input's bit width (mapping.passes.quantize)
# (a concat's inputs share one width: mapping.passes.quant_concat)
PASS_THROUGH = ("maxpool2d", "avgpool2d", "flatten", "reshape", "transpose", "relu", "output",
                "concat", "select")


@functools.lru_cache(maxsize=16)
def model_layers(model: str) -> ModelLayers:
    """Trace model ``model`` (:func:`model_entry`) into its layer shapes (cached per process)."""
    from mapping.graph import trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower

    entry = model_entry(model)
    g = lower(fuse_activations(fold_batchnorm(trace(entry.load(), entry.example_input()))))
    return graph_layers(g, model)


def graph_layers(g, model: str = "model") -> ModelLayers:
    """The program layers of a lowered graph ``g`` (quantised or not), as
    ``hwgen.build.flow.program_layers`` compiles them; :class:`ModelError` for a graph
    that is not one program or a node level 0 cannot price."""
    from hwgen.build.movement import channel_runs, varying_pool
    from hwgen.build.placement import PROGRAM_OPS, single_program
    from hwgen.compiler.mul_layer import mul_geometry
    from mapping.passes.lower import is_depthwise

    if not single_program(g):
        ops = sorted({n.op for n in g.nodes()} - {"input", "output", *PROGRAM_OPS})
        raise ModelError(f"{model}: level 0 prices models that compile into one accelerator "
                         f"program ({', '.join(PROGRAM_OPS)}); this graph "
                         + (f"also has {', '.join(ops)}" if ops else
                            "has several inputs or outputs or ends in a flatten"))
    compute, elt, prod = [], [], []
    for n in g.nodes():
        if is_depthwise(n):
            out = n.out_shape
            elt.append(EltwiseLayer(n.name, "dwconv", out[0] * out[2] * out[3], out[1],
                                    math.prod(n.params["weight"].shape[2:]), 0, n.inputs[0]))
        elif n.op == "concat":
            elt += _copies(n, model)
        elif n.op == "select":
            elt += [EltwiseLayer(f"{n.name}.copy{k}", "copy", math.prod(n.out_shape)
                                 // n.out_shape[1], length, 0, 0, n.inputs[0])
                    for k, (_, _, length) in enumerate(channel_runs(n.attrs["index"]))]
        elif n.op in ("linear", "conv2d"):
            if n.attrs.get("groups", 1) != 1:
                raise ModelError(f"{model}: node {n.name!r}: grouped convolution (groups="
                                 f"{n.attrs['groups']}) has no level-0 cycle model")
            compute.append(ComputeLayer(n.name, n.nest, n.inputs[0]))
        elif n.op == "avgpool2d" and varying_pool(n):
            elt += _broadcast(n, model)
        elif n.op in ("maxpool2d", "avgpool2d"):
            if "kernel" not in n.attrs:
                raise ModelError(f"{model}: node {n.name!r}: {n.op} with an adaptive window "
                                 "has no level-0 cycle model")
            (kh, kw) = pair(n.attrs["kernel"])
            out = n.out_shape
            elt.append(EltwiseLayer(n.name, n.op, out[0] * out[2] * out[3], out[1], kh * kw, 0,
                                    n.inputs[0]))
        elif n.op in ("add", "act"):
            elt.append(EltwiseLayer(n.name, n.op, 0, 0, 0, math.prod(n.out_shape), n.inputs[0]))
        elif n.op == "mul":  # of two tensors (single_program refuses a scalar one)
            pixels, channels, _, gate = mul_geometry(n.in_shapes, n.out_shape)
            elt.append(EltwiseLayer(n.name, "mul", pixels, channels, 0, math.prod(n.out_shape),
                                    n.inputs[1 - gate]))
        elif n.op not in ("input", "output", "flatten"):
            raise ModelError(f"{model}: node {n.name!r}: op {n.op!r} runs on the accelerator "
                             "but has no level-0 cycle model (dse.model.graph_layers)")
        if n.op in PASS_THROUGH and n.inputs:
            prod.append((n.name, n.inputs[0]))
    x = g.node(g.inputs[0]).out_shape
    y = g.node(g.node(g.outputs[0]).inputs[0]).out_shape
    io = math.prod(x[1:]) + math.prod(y[1:])
    return ModelLayers(model, tuple(compute), tuple(elt), tuple(prod), g.inputs[0], io)


def _copies(n, model: str) -> list[EltwiseLayer]:
    """The copies of a channel concatenation (``hwgen.build.movement.concat_layers``)."""
    out = tuple(n.out_shape)
    if n.attrs.get("dim") != 1 or len(out) not in (2, 4):
        raise ModelError(f"{model}: node {n.name!r}: concat along dim {n.attrs.get('dim')} of "
                         f"a {len(out)}-D tensor; the accelerator concatenates channels only")
    pixels = math.prod(out) // out[1]
    return [EltwiseLayer(f"{n.name}.copy{k}", "copy", pixels, int(shape[1]), 0, 0, src)
            for k, (src, shape) in enumerate(zip(n.inputs, n.in_shapes, strict=True))]


def _broadcast(n, model: str) -> list[EltwiseLayer]:
    """The copies of an adaptive average pool of a 1x1 map, one per image
    (``hwgen.build.movement.varying_pool_layers``); other varying windows: ModelError."""
    from mapping.windows import is_adaptive

    b, c, h, w = n.in_shapes[0]
    _, _, oh, ow = n.out_shape
    if not is_adaptive(n.attrs) or (h, w) != (1, 1):
        raise ModelError(f"{model}: node {n.name!r}: average pooling {h}x{w} -> {oh}x{ow} "
                         "with windows of several sizes does not run on the accelerator "
                         "(hwgen.build.movement)")
    return [EltwiseLayer(f"{n.name}.copy{i}", "copy", oh * ow, c, 0, 0, n.inputs[0])
            for i in range(b)]


def _width_of(layers: ModelLayers, bits: int, per_layer: dict[str, int]):
    """``name -> bit width`` of a node's output: compute layers their own (``per_layer``
    or ``bits``), pass-through nodes their producer's, everything else ``bits``."""
    unknown = sorted(set(per_layer) - set(layers.compute_names))
    if unknown:
        raise ValueError(f"per-layer bits name(s) {', '.join(unknown)} are not compute layers "
                         f"of {layers.model}; compute layers: {', '.join(layers.compute_names)}")
    width = {layers.input_name: bits}
    prod = dict(layers.producers)
    for c in layers.compute:
        width[c.name] = per_layer.get(c.name, bits)

    def of(name: str) -> int:
        seen = 0
        while name not in width and name in prod and seen < 1000:
            name, seen = prod[name], seen + 1
        return width.get(name, bits)

    return of


def layer_widths(layers: ModelLayers, bits: int, per_layer: dict[str, int]) -> dict[str, int]:
    """Input activation width of every compute layer: the width of the node it reads
    (compute layers output their own width, ``per_layer`` or ``bits``; pass-through
    nodes carry their producer's; the model input has ``bits``)."""
    of = _width_of(layers, bits, per_layer)
    return {c.name: of(c.source) for c in layers.compute}


def lut_entries(layers: ModelLayers, bits: int, per_layer: dict[str, int]) -> int:
    """Entries of the lookup ROM (``Program.luts``): one table per ``act`` layer, one entry
    per value of its input (``2**width``, ``mapping.quant.act_table``)."""
    of = _width_of(layers, bits, per_layer)
    return sum(1 << of(e.source) for e in layers.eltwise if e.op == "act")


def nests_for_bits(layers: ModelLayers, bits: int, per_layer: dict[str, int]) -> list[LoopNest]:
    """Compute nests with ``in_bits`` (producer's width), ``w_bits`` = ``out_bits`` (own width)."""
    ins = layer_widths(layers, bits, per_layer)
    out = []
    for c in layers.compute:
        own = per_layer.get(c.name, bits)
        out.append(dataclasses.replace(c.nest, in_bits=ins[c.name], w_bits=own, out_bits=own))
    return out
