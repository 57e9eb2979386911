"""The front end: ``nn.Module`` or ``ExportedProgram`` -> :class:`mapping.graph.DataflowGraph`.

Used through :func:`mapping.graph.trace`. A module is deep-copied and put in eval
mode first (shape propagation must not touch BN running statistics of the
caller's model), then traced with ``torch.fx`` (shapes from one run: ``_ShapeRecorder``). Where fx cannot
trace it (data-dependent Python, ``*args``, optional forward arguments, Hugging
Face models, ops fx records in a form we do not map), the module is exported with
``torch.export.export(strict=False)`` and built from the aten graph
(:mod:`mapping.passes.export_trace`). Every input node records the tracer in
``attrs["tracer"]`` (``"torch.fx"`` / ``"torch.export"``) and, after a fallback,
why fx was not used in ``attrs["fx_error"]`` (see :func:`tracer_of`).

What is accepted: :data:`mapping.passes.trace_ops.SUPPORTED`.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from math import prod

import torch
from torch import fx, nn

from mapping.graph import DataflowGraph, GraphError, UnsupportedOpError
from mapping.passes.export_trace import _fetch, export_module, trace_exported
from mapping.passes.trace_builder import GraphBuilder
from mapping.passes.trace_ops import SUPPORTED, lookup

__all__ = ["SUPPORTED", "trace_module", "tracer_of"]


def tracer_of(graph: DataflowGraph) -> tuple[str, str | None]:
    """``(tracer, fx_error)`` recorded on the graph's inputs by the front end."""
    for name in graph.inputs:
        a = graph.node(name).attrs
        return a.get("tracer", "torch.fx"), a.get("fx_error")
    return "torch.fx", None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _expected_input(module: nn.Module) -> str:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return f"(batch, ..., {m.in_features}) for its first layer Linear({m.in_features}, ...)"
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            dims = "L" if isinstance(m, nn.Conv1d) else "H, W"
            return (f"(batch, {m.in_channels}, {dims}) for its first layer "
                    f"{type(m).__name__}({m.in_channels}, ...)")
    return "see the model's documentation"


def _shape_error(module: nn.Module, inputs: tuple, exc: BaseException) -> GraphError:
    shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
    return GraphError(f"example input of shape {shapes} does not fit {type(module).__name__}: "
                      f"the model expects input shape {_expected_input(module)}; PyTorch said: "
                      f"{_first_line(exc)}")


def _runs(module: nn.Module, inputs: tuple) -> BaseException | None:
    try:
        with torch.no_grad():
            module(*inputs)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward
        return exc
    return None


def _inputs(example_input) -> tuple[torch.Tensor, ...]:
    """Example inputs as tensors: integer tensors (token ids) stay, the rest is float32."""
    xs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    out = []
    for x in xs:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        t = t if t.dtype in (torch.int32, torch.int64) else t.to(torch.float32)
        if t.numel() == 0:
            raise GraphError(f"example input of shape {tuple(t.shape)} has a zero-size "
                             "dimension; every dimension must be at least 1")
        out.append(t)
    return tuple(out)


def _fx_unfit(module: nn.Module, n_inputs: int) -> str | None:
    """Why fx cannot trace ``module`` as called with ``n_inputs`` tensors (None if it can)."""
    params = list(inspect.signature(module.forward).parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return f"{type(module).__name__}.forward takes *args/**kwargs"
    if len(params) > n_inputs and all(p.default is not p.empty for p in params[n_inputs:]):
        return f"{type(module).__name__}.forward has optional arguments"
    if len(params) != n_inputs:
        raise GraphError(f"{type(module).__name__} takes {len(params)} input(s); "
                         f"got {n_inputs}")
    return None


def _via_export(module: nn.Module, inputs: tuple, reason: str) -> DataflowGraph:
    try:
        ep = export_module(module, inputs)
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types
        bad = _runs(module, inputs)
        if bad is not None:
            raise _shape_error(module, inputs, bad) from exc
        raise UnsupportedOpError(f"{reason}, and torch.export failed too: {_first_line(exc)}"
                                 " (data-dependent control flow is not supported)") from exc
    return trace_exported(ep, fx_error=reason)


def _check(g: DataflowGraph) -> DataflowGraph:
    for nd in g.nodes():
        if nd.op != "input" and prod(nd.out_shape) == 0:
            raise GraphError(f"node {nd.name!r} has an empty output {nd.out_shape}")
    return g


class _ShapeRecorder(fx.Interpreter):
    """Runs ``gm`` once and records every node's result shape as ``meta["tensor_meta"]`` (an
    object with ``.shape``, or a list of them for a tuple result): all the builder reads.
    Unlike ``ShapeProp`` it needs no ``torch.fx.experimental.symbolic_shapes`` (sympy: 0.6 s
    of imports per process, most of ``hwgen map`` on a small model)."""

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            n.meta["tensor_meta"] = _Shape(tuple(out.shape))
        elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            n.meta["tensor_meta"] = [_Shape(tuple(t.shape)) if isinstance(t, torch.Tensor)
                                     else None for t in out]
        return out


@dataclass(frozen=True)
class _Shape:
    shape: tuple[int, ...]


def _propagate_shapes(gm: fx.GraphModule, inputs: tuple) -> None:
    with torch.no_grad():
        _ShapeRecorder(gm).run(*inputs)


def trace_module(module, example_input=None) -> DataflowGraph:
    """``nn.Module`` (fx, else torch.export) or ``ExportedProgram`` -> :class:`DataflowGraph`."""
    if isinstance(module, torch.export.ExportedProgram):
        return _check(trace_exported(module, example_input))
    if not isinstance(module, nn.Module):
        raise GraphError(f"trace() needs a torch.nn.Module or a torch.export.ExportedProgram, "
                         f"got {type(module).__name__}")
    if example_input is None:
        raise GraphError(f"trace() needs an example input for {type(module).__name__}")
    inputs = _inputs(example_input)
    module = copy.deepcopy(module).eval()
    reason = _fx_unfit(module, len(inputs))
    if reason is None:
        try:
            gm = fx.symbolic_trace(module)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for control flow
            reason = f"torch.fx could not trace {type(module).__name__}: {_first_line(exc)}"
    if reason is None:
        try:
            _propagate_shapes(gm, inputs)
        except Exception as exc:  # noqa: BLE001
            bad = _runs(module, inputs)
            if bad is not None:
                raise _shape_error(module, inputs, bad) from exc
            reason = f"torch.fx shape propagation failed: {_first_line(exc)}"
    if reason is not None:
        return _check(_via_export(module, inputs, reason))
    try:
        b = GraphBuilder(gm.graph, lookup, get_attr=lambda t: _fetch(gm, t),
                         modules=dict(gm.named_modules()), tracer="torch.fx",
                         unsupported_text=SUPPORTED)
        return _check(b.run())
    except UnsupportedOpError as fx_exc:
        try:
            return _check(_via_export(module, inputs, _first_line(fx_exc)))
        except Exception:  # noqa: BLE001 - report what fx said, it names the module/function
            raise fx_exc from None
