"""``torch.export`` front end: an ``ExportedProgram`` -> :class:`DataflowGraph`.

Used when ``torch.fx`` cannot trace a module (data-dependent Python, ``*args``,
optional forward arguments, Hugging Face models) and for ``.pt2`` programs
passed to :func:`mapping.graph.trace` directly. The exported graph's aten ops
go through the same builder and layer emitters as the fx path; lifted
parameters, buffers and constants become node parameters. Nodes of a
``torch.nn`` leaf module are named after its path (``features.0`` ->
``features_0``, as ``torch.fx`` names them); other nodes keep export's names.
"""

from __future__ import annotations

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from mapping.graph import DataflowGraph, GraphError
from mapping.passes.trace_builder import GraphBuilder, shape_of
from mapping.passes.trace_ops import SUPPORTED, lookup

_CONST_KINDS = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)


def export_module(module: torch.nn.Module, inputs: tuple) -> ExportedProgram:
    """``torch.export.export(module, inputs, strict=False)`` under ``no_grad``."""
    with torch.no_grad():
        return torch.export.export(module, tuple(inputs), strict=False)


def _fetch(root, target: str):
    obj = root
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def _module_names(ep: ExportedProgram) -> dict[str, str]:
    names, used = {}, set()
    for n in ep.graph.nodes:
        stack = n.meta.get("nn_module_stack")
        if n.op != "call_function" or not stack:
            continue
        path, cls = list(stack.values())[-1]
        cls = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
        if path and cls.startswith("torch.nn.modules.") and path not in used:
            used.add(path)
            names[n.name] = path.replace(".", "_")
    return names


def trace_exported(ep: ExportedProgram, example_input=None, fx_error: str | None = None
                   ) -> DataflowGraph:
    """Build the graph of ``ep`` (its recorded static shapes), functionalised first (no
    decompositions: ``run_decompositions({})``). ``example_input`` (optional)
    must match them; ``fx_error`` (why ``torch.fx`` was not used) is kept on the inputs."""
    ep = ep.run_decompositions({})  # functional ATen (in-place ops such as relu_ rewritten)
    sig = ep.graph_signature
    consts, user = {}, []
    for spec in sig.input_specs:
        name = getattr(spec.arg, "name", None)
        if spec.kind == InputKind.USER_INPUT:
            user.append(name)
        elif spec.kind in _CONST_KINDS:
            t = ep.state_dict.get(spec.target, ep.constants.get(spec.target))
            if isinstance(t, torch.Tensor):
                consts[name] = t
        else:
            raise GraphError(f"exported program input {name!r} of kind {spec.kind.name} is not "
                             "supported (parameters, buffers, constants and tensor inputs only)")
    if example_input is not None:
        xs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
        placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
        want = [shape_of(placeholders[u]) for u in user]
        got = [tuple(torch.as_tensor(x).shape) for x in xs]
        if want != got:
            raise GraphError(f"example input shape(s) {got} do not match the exported "
                             f"program's input shape(s) {want}")
    outputs = [i for i, s in enumerate(sig.output_specs) if s.kind == OutputKind.USER_OUTPUT]
    b = GraphBuilder(ep.graph, lookup, consts=consts, names=_module_names(ep), outputs=outputs,
                     get_attr=lambda t: _fetch(ep.graph_module, t), tracer="torch.export",
                     unsupported_text=SUPPORTED)
    g = b.run()
    if fx_error:
        for name in g.inputs:
            g.node(name).attrs["fx_error"] = fx_error
    return g
