"""What the level-0 evaluator needs to know about a model: its layers' shapes.

A model is named by a string that every worker process turns back into the same
model (:func:`model_entry`): a zoo name, or the JSON of a
:class:`mapping.source.SourceSpec` (your own ``file.py:NAME``, ``.pt2`` or ``.onnx``
with its options; ``hwgen dse`` writes it). :func:`model_layers` traces the model once (fold, fuse, lower; no
quantisation: shapes do not depend on bit widths) and returns the compute
layers (name, ``LoopNest`` shape) and the pooling / residual-add layers that
the accelerator also runs, in execution order. :func:`nests_for_bits` gives the
compute nests with the operand widths of a quantisation choice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

from mapping.loopnest import LoopNest


@dataclass(frozen=True)
class ComputeLayer:
    """A compute layer: ``name``, its shape-only ``nest`` and the node whose output it reads."""

    name: str
    nest: LoopNest
    source: str


@dataclass(frozen=True)
class EltwiseLayer:
    """A pooling (``window`` > 0) or residual-add (``window`` == 0) layer run on the array."""

    name: str
    op: str
    out_pixels: int
    channels: int
    window: int
    elements: int


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


PASS_THROUGH = ("maxpool2d", "flatten", "reshape", "transpose", "relu", "output")


@functools.lru_cache(maxsize=16)
def model_layers(model: str) -> ModelLayers:
    """Trace model ``model`` (:func:`model_entry`) into its layer shapes (cached per process)."""
    from mapping.graph import trace
    from mapping.passes import fold_batchnorm, fuse_activations, lower

    entry = model_entry(model)
    g = lower(fuse_activations(fold_batchnorm(trace(entry.load(), entry.example_input()))))
    compute, elt, prod = [], [], []
    for n in g.nodes():
        if n.nest is not None:
            compute.append(ComputeLayer(n.name, n.nest, n.inputs[0]))
        elif n.op in ("maxpool2d", "avgpool2d"):
            (kh, kw) = n.attrs["kernel"]
            out = n.out_shape
            elt.append(EltwiseLayer(n.name, n.op, out[0] * out[2] * out[3], out[1], kh * kw, 0))
        elif n.op == "add":
            size = 1
            for d in n.out_shape:
                size *= d
            elt.append(EltwiseLayer(n.name, n.op, 0, 0, 0, size))
        if n.op in PASS_THROUGH and n.inputs:
            prod.append((n.name, n.inputs[0]))
    x = g.node(g.inputs[0]).out_shape
    y = g.node(g.node(g.outputs[0]).inputs[0]).out_shape
    io = math.prod(x[1:]) + math.prod(y[1:])
    return ModelLayers(model, tuple(compute), tuple(elt), tuple(prod), g.inputs[0], io)


def layer_widths(layers: ModelLayers, bits: int, per_layer: dict[str, int]) -> dict[str, int]:
    """Input activation width of every compute layer: the width of the node it reads
    (compute layers output their own width, ``per_layer`` or ``bits``; pass-through
    nodes carry their producer's; the model input has ``bits``)."""
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

    return {c.name: of(c.source) for c in layers.compute}


def nests_for_bits(layers: ModelLayers, bits: int, per_layer: dict[str, int]) -> list[LoopNest]:
    """Compute nests with ``in_bits`` (producer's width), ``w_bits`` = ``out_bits`` (own width)."""
    ins = layer_widths(layers, bits, per_layer)
    out = []
    for c in layers.compute:
        own = per_layer.get(c.name, bits)
        out.append(dataclasses.replace(c.nest, in_bits=ins[c.name], w_bits=own, out_bits=own))
    return out
