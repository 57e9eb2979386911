"""Brevitas QAT import: a plain torch module plus the learned quantisation.

:func:`import_brevitas` replaces every Brevitas layer of a model (on a copy) by its
plain torch equivalent, *without tracing Brevitas*:

- ``QuantLinear`` / ``QuantConv1d`` / ``QuantConv2d`` -> ``nn.Linear`` / ``nn.Conv1d`` /
  ``nn.Conv2d`` carrying Brevitas's dequantised weights (``quant_weight().value``, i.e.
  ``int * scale`` as Brevitas computes it) and the float bias (or the dequantised bias of a
  bias quantiser with its own scale); their integer weights, scale(s) and bit width are
  recorded (:class:`WeightQuant`). An enabled ``input_quant`` / ``output_quant`` becomes an
  ``nn.Identity`` before / after the layer (an ``nn.Sequential``).
- ``QuantIdentity`` / ``QuantReLU`` / ``QuantHardTanh`` / ``QuantSigmoid`` / ``QuantTanh``
  -> their activation (``nn.Identity``, ``nn.ReLU``, ``nn.Sigmoid``, ``nn.Tanh``; Brevitas's
  hard tanh is the quantiser's own clamp) with the quantiser's scale, bit width and
  signedness recorded (:class:`ActQuant`).

The plain module traces like any model. :meth:`QatImport.fixed_for` then keys the recorded
quantisation by the traced (folded, fused) graph's node names, in the form
``mapping.passes.quantize.quantize(..., fixed=...)`` takes: a weight by the node whose float
weight equals it, an activation quantiser by the first node computing its value (float run
of the graph against the plain module on a probe input; a max pool / flatten / unfused ReLU
is walked back to the node that requantises).

Number formats: Brevitas's zero points are 0 here (else an error); a signed ``b``-bit
quantiser is our ``b``-bit format; an unsigned one (``QuantReLU``) clamps to
``[0, 2**b - 1]``: our ``b + 1``-bit format with the lower bound 0 (``relu``). Brevitas
rounds halves to even (``torch.round``), the accelerator halves up; Brevitas computes in
float32 with real-valued scales, the accelerator requantises with a 15-bit multiplier
(relative error <= 2**-15): outputs agree except on values within that of a rounding tie.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from mapping.graph import DataflowGraph, GraphError, UnsupportedOpError

LAYERS = ("QuantLinear", "QuantConv1d", "QuantConv2d")
ACTS = ("QuantIdentity", "QuantReLU", "QuantHardTanh", "QuantSigmoid", "QuantTanh")
SUPPORTED = LAYERS + ACTS
# ops whose output scale is their input's: a quantiser found there sets their producer's
WALK_BACK = ("maxpool2d", "flatten", "reshape", "transpose", "select", "relu", "output")


@dataclass
class ActQuant:
    """One activation quantiser: ``scale`` (float), ``bit_width``, ``signed``; ``bits`` and
    ``unsigned`` are our format (an unsigned ``b``-bit value is ``b + 1`` bits, lower bound
    0)."""

    path: str
    scale: float
    bit_width: int
    signed: bool

    @property
    def bits(self) -> int:
        return self.bit_width + (0 if self.signed else 1)


@dataclass
class WeightQuant:
    """One layer's quantised weight: ``w_int`` (int64, torch layout), per-output-channel
    ``w_scale`` (float64), ``bit_width``, ``signed``."""

    path: str
    w_int: np.ndarray
    w_scale: np.ndarray
    bit_width: int
    signed: bool

    @property
    def bits(self) -> int:
        return self.bit_width + (0 if self.signed else 1)


@dataclass
class QatImport:
    """The plain module (``module``) and the learned quantisation, keyed by module path in
    ``module``."""

    module: object
    acts: dict[str, ActQuant] = field(default_factory=dict)
    weights: dict[str, WeightQuant] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"QAT scales imported from Brevitas: {len(self.acts)} activation "
                f"quantiser(s), {len(self.weights)} quantised weight(s)")

    def fixed_for(self, g: DataflowGraph, probe) -> dict[str, dict]:
        """``{node name: {"scale", "bits", "signed", "w_int", "w_scale", "w_bits"}}`` for
        :func:`mapping.passes.quantize.quantize`'s ``fixed`` (see the module docstring);
        ``probe``: one float input batch for matching activations."""
        fixed: dict[str, dict] = {}
        for wq in self.weights.values():
            name = _weight_node(g, wq, self.module)
            fixed.setdefault(name, {}).update(w_int=wq.w_int, w_scale=wq.w_scale,
                                              w_bits=wq.bits)
        for path, name in _act_nodes(g, self.module, list(self.acts), probe).items():
            aq = self.acts[path]
            have = fixed.setdefault(name, {})
            if "scale" in have and (have["scale"], have["bits"]) != (aq.scale, aq.bits):
                raise GraphError(f"Brevitas quantiser {path!r} requantises the output of node "
                                 f"{name!r}, which another quantiser already sets; a "
                                 "requantisation without a layer between is not supported")
            have.update(scale=aq.scale, bits=aq.bits, signed=aq.signed, path=path)
        return fixed


def is_brevitas(module) -> bool:
    """True when ``module`` (an ``nn.Module``) contains a Brevitas layer."""
    mods = getattr(module, "modules", None)
    return mods is not None and any(type(m).__module__.startswith("brevitas.")
                                    for m in mods())


def _scalar(t) -> float:
    return float(np.asarray(t.detach().cpu(), dtype=np.float64).reshape(-1)[0])


def _act_quant(path: str, proxy) -> ActQuant:
    """Scale, bit width and signedness of an enabled activation quant proxy (eval mode)."""
    name = type(proxy).__name__
    if getattr(proxy, "is_narrow_range", False):
        raise UnsupportedOpError(f"Brevitas quantiser {path!r}: narrow-range activations are "
                                 "not supported (our activations use the full signed or "
                                 "unsigned range)")
    scale = proxy.scale()
    if scale is None or scale.numel() != 1:
        raise UnsupportedOpError(f"Brevitas quantiser {path!r} ({name}): per-tensor activation "
                                 "scales only")
    zp = proxy.zero_point()
    if zp is not None and np.any(np.asarray(zp.detach().cpu()) != 0):
        raise UnsupportedOpError(f"Brevitas quantiser {path!r}: zero point must be 0 "
                                 "(symmetric quantisation only)")
    return ActQuant(path, _scalar(scale), int(round(_scalar(proxy.bit_width()))),
                    bool(proxy.is_signed))


def _activation(path: str, layer):
    """The plain activation of a Brevitas activation layer (its ``activation_impl``)."""
    from torch import nn

    impl = getattr(getattr(layer.act_quant, "fused_activation_quant_proxy", None),
                   "activation_impl", None)
    plain = {nn.Identity: nn.Identity, nn.ReLU: nn.ReLU, nn.Sigmoid: nn.Sigmoid,
             nn.Tanh: nn.Tanh}
    for cls, make in plain.items():
        if type(impl) is cls:
            return make()
    raise UnsupportedOpError(f"Brevitas layer {path!r} ({type(layer).__name__}): activation "
                             f"{type(impl).__name__} is not supported; supported: Identity, "
                             "ReLU, Sigmoid, Tanh")


def _weight_quant(path: str, layer) -> tuple[WeightQuant, object]:
    qw = layer.quant_weight()
    zp = qw.zero_point
    if zp is not None and np.any(np.asarray(zp.detach().cpu()) != 0):
        raise UnsupportedOpError(f"Brevitas layer {path!r}: weight zero point must be 0 "
                                 "(symmetric quantisation only)")
    w_int = np.asarray(qw.int().detach().cpu(), dtype=np.int64)
    k = w_int.shape[0]
    s = np.asarray(qw.scale.detach().cpu(), dtype=np.float64)
    if s.size not in (1, k) or (s.size == k and k > 1 and s.shape[0] != k):
        raise UnsupportedOpError(f"Brevitas layer {path!r}: weight scale of shape "
                                 f"{tuple(s.shape)}; per-tensor or per-output-channel only")
    w_scale = np.broadcast_to(s.reshape(-1), (k,)).astype(np.float64).copy()
    wq = WeightQuant(path, w_int, w_scale, int(round(_scalar(qw.bit_width))), bool(qw.signed))
    return wq, qw.value.detach()


def _plain_layer(path: str, layer, out: QatImport):
    import torch
    from torch import nn

    kind = type(layer).__name__
    wq, w = _weight_quant(path, layer)
    if kind == "QuantLinear":
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    else:
        cls = nn.Conv2d if kind == "QuantConv2d" else nn.Conv1d
        if getattr(layer, "padding_mode", "zeros") != "zeros":
            raise UnsupportedOpError(f"Brevitas layer {path!r}: padding_mode "
                                     f"{layer.padding_mode!r}; only 'zeros' is supported")
        plain = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                    layer.padding, layer.dilation, layer.groups, bias=layer.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(w)
        if layer.bias is not None:
            b = layer.bias.detach()
            bq = layer.bias_quant
            if bq.is_quant_enabled and not getattr(bq, "requires_input_scale", False):
                qb = bq(layer.bias)
                b = getattr(qb, "value", qb).detach()
            plain.bias.copy_(b)  # a bias scaled by the input's: our own bias rounding
    parts, base = [], path
    if layer.input_quant.is_quant_enabled:
        out.acts[f"{path}.0"] = _act_quant(f"{path}.input_quant", layer.input_quant)
        parts.append(nn.Identity())
    wpath = f"{path}.{len(parts)}" if (parts or layer.output_quant.is_quant_enabled) else base
    parts.append(plain)
    out.weights[wpath] = WeightQuant(wpath, wq.w_int, wq.w_scale, wq.bit_width, wq.signed)
    if layer.output_quant.is_quant_enabled:
        out.acts[f"{path}.{len(parts)}"] = _act_quant(f"{path}.output_quant",
                                                      layer.output_quant)
        parts.append(nn.Identity())
    return plain if len(parts) == 1 else nn.Sequential(*parts)


def import_brevitas(module) -> QatImport:
    """The plain-torch copy of ``module`` and its Brevitas quantisation (see the module
    docstring). ``module`` itself is not modified. A Brevitas layer not in
    :data:`SUPPORTED` is an :class:`UnsupportedOpError`."""
    model = copy.deepcopy(module).eval()
    out = QatImport(model)
    replace: list[tuple[str, object]] = []
    done: list[str] = []
    for path, m in model.named_modules():
        if any(path.startswith(p + ".") for p in done):
            continue  # inside a replaced layer: Brevitas's own machinery
        kind = type(m).__name__
        if not type(m).__module__.startswith("brevitas."):
            continue
        where = path or "<model>"
        if kind in LAYERS:
            replace.append((path, _plain_layer(where, m, out)))
        elif kind in ACTS:
            act = _activation(where, m)
            if m.act_quant.is_quant_enabled:
                out.acts[path] = _act_quant(where, m.act_quant)
            replace.append((path, act))
        else:
            raise UnsupportedOpError(f"Brevitas layer {where!r} ({kind}) is not supported; "
                                     f"supported Brevitas layers: {', '.join(SUPPORTED)}")
        done.append(path)
    for path, plain in replace:
        if not path:
            raise UnsupportedOpError("the model is a single Brevitas layer; wrap it in an "
                                     "nn.Module or nn.Sequential")
        model.set_submodule(path, plain)
    return out


# ----------------------------------------------------------------- keying by graph node
def _weight_node(g: DataflowGraph, wq: WeightQuant, module) -> str:
    w = module.get_submodule(wq.path).weight.detach().cpu().numpy()
    for n in g.nodes():
        have = n.params.get("weight")
        if (n.op in ("linear", "conv2d") and have is not None and have.size == w.size
                and np.array_equal(have.reshape(-1), w.reshape(-1))):
            return n.name
    raise GraphError(f"Brevitas layer {wq.path!r}: no linear/conv2d node of the traced graph "
                     "carries its weights (was it folded or not traced?)")


def _act_nodes(g: DataflowGraph, module, paths: list[str], probe) -> dict[str, str]:
    """Module path of each quantiser -> the graph node that must produce its scale."""
    import torch

    from mapping.passes.float_exec import run_float_graph

    if not paths:
        return {}
    seen: dict[str, np.ndarray] = {}
    hooks = [module.get_submodule(p).register_forward_hook(
        lambda _m, _i, o, p=p: seen.__setitem__(p, o.detach().double().numpy()))
        for p in paths]
    x = probe if isinstance(probe, torch.Tensor) else torch.as_tensor(np.asarray(probe))
    try:
        with torch.no_grad():
            module(x.float())
    finally:
        for h in hooks:
            h.remove()
    acts = run_float_graph(g, x.double().numpy(), trace=True)
    order = [n.name for n in g.nodes()]
    out = {}
    for p in paths:
        if p not in seen:
            raise GraphError(f"Brevitas quantiser {p!r} is not used by the model's forward")
        want = seen[p].reshape(-1)
        tol = 1e-4 * max(1.0, float(np.abs(want).max(initial=0.0)))
        hit = next((k for k in order if acts[k].size == want.size and np.allclose(
            acts[k].reshape(-1), want, rtol=1e-4, atol=tol)), None)
        if hit is None:
            raise GraphError(f"Brevitas quantiser {p!r}: no node of the traced graph computes "
                             "its input (an operation between it and its layer that the "
                             "import does not see)")
        while g.node(hit).op in WALK_BACK:
            hit = g.node(hit).inputs[0]
        out[p] = hit
    return out
