"""Pruning: structured channel/neuron pruning and unstructured magnitude pruning.

**Level.** Structured pruning works on the ``torch.nn.Module``: it returns a
*new, smaller* module of the same topology (same class and ``forward``; the
pruned ``nn.Linear`` / ``nn.Conv2d`` / batch-norm sub-modules are replaced by
narrower ones), which :func:`mapping.graph.trace` turns into a smaller
``DataflowGraph`` — fewer MACs, smaller ``LoopNest`` s, less hardware.
Unstructured magnitude pruning only zeroes weights (the array has no sparse
datapath, so shapes and MACs stay the same); it exists on the module
(:func:`prune_magnitude`, masks for fine-tuning) and on a graph
(:func:`prune_graph`). Nothing here mutates its input.

**Structured semantics.** Removing output channel ``j`` of a layer (weight row /
filter and bias) and the matching input columns of the next compute layer is
exactly the same function as the original model with channel ``j`` *zeroed*
(:func:`mask_channels`: its weight row, bias, and the ``gamma``, ``beta``,
``running_mean`` of a batch norm on the path set to 0), because every op
allowed between the two layers maps 0 to 0. Between a ``Conv2d`` and a
``Linear``, a flatten of ``(B, C, H, W)`` makes channel ``c`` the block of
``H*W`` columns ``c*H*W .. (c+1)*H*W - 1``.

A layer is prunable when its output reaches exactly one ``nn.Linear`` /
``nn.Conv2d`` (``groups=1``) through a single chain of: ReLU, Identity,
Dropout, max/avg pooling, flatten/view/reshape to ``(B, C*H*W)``, and
``BatchNorm1d/2d`` (pruned with it). The layer producing the model output,
layers whose output branches (residual adds) and weight-shared modules are
not prunable; :func:`prunable_layers` says why for each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from math import prod

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from mapping.graph import DataflowGraph

NORMS = ("l1", "l2")
SCOPES = ("global", "layer")
_COMPUTE = (nn.Linear, nn.Conv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_ELEMENTWISE_MODULES = (nn.ReLU, nn.Identity, nn.Dropout)
_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ELEMENTWISE_FUNCS = (F.relu, torch.relu, F.dropout)
_POOL_FUNCS = (F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d)
_ALIAS_METHODS = ("relu", "contiguous", "clone", "detach")
_SHAPE_METHODS = ("size", "dim")
_FLATTEN_METHODS = ("view", "reshape", "flatten")
SUPPORTED = ("prunable layers: nn.Linear, nn.Conv2d (groups=1); between a pruned layer and "
             "the next: ReLU, Identity, Dropout, MaxPool2d/AvgPool2d (and adaptive), "
             "flatten/view/reshape to (B, C*H*W), BatchNorm1d/2d")


class PruneError(ValueError):
    """Bad pruning request: says what was wrong and what is allowed."""


@dataclass(frozen=True)
class Link:
    """How a prunable layer's output channels reach the next compute layer.

    ``block``: consumer input columns per channel (1, or ``H*W`` after a
    flatten); ``norms``: batch-norm modules on the path (pruned alongside).
    """

    producer: str
    consumer: str
    block: int = 1
    norms: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChannelPlan:
    """Which output channels each pruned layer keeps (sorted original indices)."""

    keep: dict[str, tuple[int, ...]]
    out_sizes: dict[str, int]

    def removed(self, name: str) -> tuple[int, ...]:
        """The removed output channels of layer ``name`` (sorted)."""
        kept = set(self.keep[name])
        return tuple(i for i in range(self.out_sizes[name]) if i not in kept)


# ---------------------------------------------------------------- analysis
def _data_users(n: fx.Node) -> list[fx.Node]:
    """Users that consume the tensor's values (shape queries like ``x.size(0)`` excluded)."""
    return [u for u in n.users
            if not (u.op == "call_method" and u.target in _SHAPE_METHODS)
            and not (u.op == "call_function" and getattr(u.target, "__name__", "") == "getattr")]


def _shape(n: fx.Node) -> tuple[int, ...] | None:
    tm = n.meta.get("tensor_meta")
    return tuple(int(d) for d in tm.shape) if hasattr(tm, "shape") else None


def _describe(u: fx.Node, modules: dict[str, nn.Module]) -> str:
    if u.op == "call_module":
        return f"module {u.target!r} ({type(modules[u.target]).__name__})"
    if u.op == "call_function":
        return f"function {getattr(u.target, '__name__', u.target)}"
    return f"{u.op} {u.target!r}"


def _walk(start: fx.Node, modules: dict[str, nn.Module]) -> Link | str:
    """Follow the output of compute node ``start`` to its consumer; a ``Link`` or a reason."""
    name = start.target
    cur, block, norms = start, 1, []
    axis = 1 if isinstance(modules[name], nn.Conv2d) else len(_shape(start)) - 1
    while True:
        users = _data_users(cur)
        if len(users) != 1:
            what = "nothing" if not users else f"{len(users)} nodes (a branch or residual)"
            return f"its output feeds {what}; only a single chain can be pruned"
        u, shape = users[0], _shape(cur)
        mod = modules.get(u.target) if u.op == "call_module" else None
        if u.op == "output":
            return "it produces the model output"
        extra = [a for a in (*u.args[1:], *u.kwargs.values()) if isinstance(a, fx.Node)]
        shape_args = u.op == "call_method" and u.target in _FLATTEN_METHODS
        if u.args[:1] != (cur,) or (extra and not shape_args):
            return f"its output goes through {_describe(u, modules)} with several tensor inputs"
        if isinstance(mod, _COMPUTE):
            if isinstance(mod, nn.Conv2d):
                if mod.groups != 1:
                    return f"its consumer {u.target!r} is a grouped Conv2d (groups={mod.groups})"
                if axis != 1 or len(shape) != 4 or block != 1:
                    return f"its channels do not reach {u.target!r} on the channel axis"
            elif axis != len(shape) - 1:
                return f"its channels do not reach {u.target!r} on the feature axis"
            return Link(name, u.target, block, tuple(norms))
        if isinstance(mod, _BN):
            if axis != 1:
                return f"batch norm {u.target!r} normalises dim 1, not the channel axis {axis}"
            norms.append(u.target)
        elif isinstance(mod, _POOL_MODULES) or (u.op == "call_function" and u.target in
                                                _POOL_FUNCS):
            if len(shape) != 4 or axis != 1:
                return f"pooling {_describe(u, modules)} on a non-(B, C, H, W) tensor"
        elif isinstance(mod, nn.Flatten) or (u.op == "call_function" and u.target is
                                              torch.flatten) or (
                u.op == "call_method" and u.target in _FLATTEN_METHODS):
            out = _shape(u)
            if out == shape:
                pass
            elif len(shape) == 4 and axis == 1 and out == (shape[0], prod(shape[1:])):
                block, axis = block * shape[2] * shape[3], 1
            else:
                return (f"{_describe(u, modules)} reshapes {shape} to {out}; only a flatten "
                        "(B, C, H, W) -> (B, C*H*W) is supported")
        elif not (isinstance(mod, _ELEMENTWISE_MODULES)
                  or (u.op == "call_function" and u.target in _ELEMENTWISE_FUNCS)
                  or (u.op == "call_method" and u.target in _ALIAS_METHODS)):
            return f"its output goes through {_describe(u, modules)}, which is not supported"
        cur = u


def analyse(model: nn.Module, example_input) -> tuple[dict[str, Link], dict[str, str]]:
    """Trace ``model`` (a deep copy, eval mode) with ``torch.fx`` and shape propagation.

    Returns ``(links, reasons)``: a :class:`Link` per prunable layer and, for
    every other ``nn.Linear`` / ``nn.Conv2d``, why it cannot be pruned.
    """
    try:
        gm = fx.symbolic_trace(copy.deepcopy(model).eval())
    except Exception as e:  # fx raises TraceError, TypeError, ... for dynamic control flow
        raise PruneError(f"channel pruning needs a torch.fx-traceable model; tracing "
                         f"{type(model).__name__} failed: {e}") from e
    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(
        np.asarray(example_input))
    with torch.no_grad():
        ShapeProp(gm).propagate(x.to(next(gm.parameters()).dtype))
    modules = dict(gm.named_modules())
    calls: dict[str, list[fx.Node]] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(modules[n.target], _COMPUTE):
            calls.setdefault(n.target, []).append(n)
    links, reasons = {}, {}
    for name, nodes in calls.items():
        mod = modules[name]
        if len(nodes) > 1:
            reasons[name] = f"it is called {len(nodes)} times (shared weights)"
        elif isinstance(mod, nn.Conv2d) and mod.groups != 1:
            reasons[name] = f"it is a grouped Conv2d (groups={mod.groups})"
        else:
            r = _walk(nodes[0], modules)
            if isinstance(r, Link):
                links[name] = r
            else:
                reasons[name] = r
    for lk in list(links.values()):
        if len(calls[lk.consumer]) > 1:
            del links[lk.producer]
            reasons[lk.producer] = f"its consumer {lk.consumer!r} is weight-shared"
    return links, reasons


def prunable_layers(model: nn.Module, example_input) -> dict[str, str]:
    """Every ``nn.Linear`` / ``nn.Conv2d``: ``"prunable"`` or the reason it is not."""
    links, reasons = analyse(model, example_input)
    return {**{k: "prunable" for k in links}, **reasons}


# ---------------------------------------------------------------- planning
def channel_scores(weight: torch.Tensor, norm: str = "l2") -> np.ndarray:
    """Per-output-channel L1 or L2 norm of a weight (rows of a Linear, filters of a conv)."""
    if norm not in NORMS:
        raise PruneError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    w = weight.detach().double().reshape(weight.shape[0], -1).cpu().numpy()
    return np.abs(w).sum(1) if norm == "l1" else np.sqrt((w * w).sum(1))


def _n_remove(name: str, amount, n: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.integer,
                                                           np.floating)):
        raise PruneError(f"layer {name!r}: amount must be a fraction in [0, 1) or a channel "
                         f"count, got {amount!r}")
    if isinstance(amount, (int, np.integer)):
        if not 0 <= amount < n:
            raise PruneError(f"layer {name!r}: cannot remove {amount} of its {n} output "
                             f"channels; remove 0..{n - 1} (at least one must remain)")
        return int(amount)
    if not 0.0 <= float(amount) < 1.0:
        raise PruneError(f"layer {name!r}: amount {amount} is outside [0, 1) (the fraction "
                         "of output channels to remove; pruning every channel is not allowed)")
    return int(np.floor(float(amount) * n + 1e-9))


def plan_channels(model: nn.Module, example_input, amount, norm: str = "l2",
                  layers=None) -> ChannelPlan:
    """Rank output channels by weight norm and keep the largest ones.

    ``amount``: a fraction in [0, 1) (``floor(amount * channels)`` removed) or
    an int count, for every layer; or a dict layer name -> fraction/count
    (only those layers). ``layers``: the layer names the scalar ``amount``
    applies to (default: every prunable layer). Ties keep the lower index.
    """
    links, reasons = analyse(model, example_input)
    mods = dict(model.named_modules())
    if isinstance(amount, dict):
        if layers is not None:
            raise PruneError("give either a per-layer amount dict or layers=, not both")
        request = dict(amount)
    else:
        request = {n: amount for n in (links if layers is None else layers)}
    keep, sizes = {}, {}
    for name, a in request.items():
        if name not in mods:
            raise PruneError(f"no layer named {name!r}; prunable layers: "
                             f"{', '.join(links) or 'none'}")
        if not isinstance(mods[name], _COMPUTE):
            raise PruneError(f"layer {name!r} is a {type(mods[name]).__name__}; {SUPPORTED}")
        if name not in links:
            raise PruneError(f"layer {name!r} cannot be pruned: {reasons[name]}; "
                             f"prunable layers: {', '.join(links) or 'none'}")
        w = mods[name].weight
        k = _n_remove(name, a, w.shape[0])
        order = np.argsort(-channel_scores(w, norm), kind="stable")
        keep[name] = tuple(sorted(int(i) for i in order[: w.shape[0] - k]))
        sizes[name] = int(w.shape[0])
    return ChannelPlan(keep, sizes)


# ---------------------------------------------------------------- rewriting
def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t.detach().clone(), requires_grad=like.requires_grad)


def _shrunk(mod: nn.Module, out_idx, in_idx) -> nn.Module:
    w = mod.weight[out_idx][:, in_idx]
    kw = {"bias": mod.bias is not None, "device": w.device, "dtype": w.dtype}
    if isinstance(mod, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], **kw)
    else:
        new = nn.Conv2d(w.shape[1], w.shape[0], mod.kernel_size, mod.stride, mod.padding,
                        mod.dilation, 1, padding_mode=mod.padding_mode, **kw)
    new.weight = _param(w, mod.weight)
    if mod.bias is not None:
        new.bias = _param(mod.bias[out_idx], mod.bias)
    return new.train(mod.training)


def _shrunk_bn(bn: nn.Module, idx) -> nn.Module:
    new = type(bn)(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                   device=bn.weight.device if bn.affine else None,
                   dtype=bn.weight.dtype if bn.affine else None)
    if bn.affine:
        new.weight, new.bias = _param(bn.weight[idx], bn.weight), _param(bn.bias[idx], bn.bias)
    if bn.track_running_stats:
        new.running_mean = bn.running_mean[idx].clone()
        new.running_var = bn.running_var[idx].clone()
        new.num_batches_tracked = bn.num_batches_tracked.clone()
    return new.train(bn.training)


def _expand(idx, block: int) -> torch.Tensor:
    return torch.tensor([c * block + j for c in idx for j in range(block)], dtype=torch.long)


def _checked_links(model: nn.Module, example_input, plan: ChannelPlan) -> dict[str, Link]:
    links, reasons = analyse(model, example_input)
    mods = dict(model.named_modules())
    for name, idx in plan.keep.items():
        if name not in links:
            raise PruneError(f"plan prunes {name!r}, which cannot be pruned: "
                             f"{reasons.get(name, 'not a Linear/Conv2d layer of this model')}")
        n = mods[name].weight.shape[0]
        if plan.out_sizes.get(name) != n or not idx or len(set(idx)) != len(idx) \
                or min(idx) < 0 or max(idx) >= n:
            raise PruneError(f"plan for {name!r} must keep 1..{n} distinct channel indices "
                             f"in 0..{n - 1} (out_sizes {n}), got {idx} / "
                             f"{plan.out_sizes.get(name)}")
    return links


def apply_plan(model: nn.Module, example_input, plan: ChannelPlan) -> nn.Module:
    """A new, smaller module: pruned layers, their batch norms and consumers narrowed."""
    links = _checked_links(model, example_input, plan)
    mods = dict(model.named_modules())
    out = copy.deepcopy(model)
    outs = {n: torch.tensor(i, dtype=torch.long) for n, i in plan.keep.items()}
    ins = {links[p].consumer: _expand(i, links[p].block) for p, i in plan.keep.items()}
    for name in set(outs) | set(ins):
        mod = mods[name]
        o = outs.get(name, torch.arange(mod.weight.shape[0]))
        i = ins.get(name, torch.arange(mod.weight.shape[1]))
        _set_module(out, name, _shrunk(mod, o, i))
        for bn in links[name].norms if name in outs else ():
            _set_module(out, bn, _shrunk_bn(mods[bn], o))
    return out


def mask_channels(model: nn.Module, example_input, plan: ChannelPlan) -> nn.Module:
    """A copy of ``model`` (same shapes) with the plan's removed channels zeroed."""
    links = _checked_links(model, example_input, plan)
    out = copy.deepcopy(model)
    mods = dict(out.named_modules())
    with torch.no_grad():
        for name in plan.keep:
            gone = torch.tensor(plan.removed(name), dtype=torch.long)
            for m in (mods[name], *(mods[b] for b in links[name].norms)):
                for attr in ("weight", "bias", "running_mean"):
                    t = getattr(m, attr, None)
                    if t is not None:
                        t[gone] = 0
    return out


def prune_channels(model: nn.Module, example_input, amount, norm: str = "l2",
                   layers=None) -> nn.Module:
    """Structured pruning: :func:`plan_channels` then :func:`apply_plan` (new module)."""
    return apply_plan(model, example_input,
                      plan_channels(model, example_input, amount, norm, layers))


# ---------------------------------------------------------------- magnitude
def magnitude_keep(weights: list[np.ndarray], sparsity: float,
                   scope: str = "global") -> list[np.ndarray]:
    """Boolean keep-masks zeroing the smallest-magnitude ``round(sparsity * n)`` weights.

    ``scope="global"``: one ranking over all weights (n = total count);
    ``"layer"``: each array separately. Ties: the earlier (flat index) goes first.
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating)) \
            or not 0.0 <= float(sparsity) < 1.0:
        raise PruneError(f"sparsity must be a fraction in [0, 1), got {sparsity!r}")
    if scope not in SCOPES:
        raise PruneError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    groups = [weights] if scope == "global" else [[w] for w in weights]
    masks = []
    for group in groups:
        flat = np.concatenate([np.abs(np.asarray(w, np.float64)).ravel() for w in group])
        k = int(np.floor(float(sparsity) * flat.size + 0.5))
        keep = np.ones(flat.size, bool)
        keep[np.argsort(flat, kind="stable")[:k]] = False
        start = 0
        for w in group:
            masks.append(keep[start:start + w.size].reshape(w.shape))
            start += w.size
    return masks


def prune_magnitude(model: nn.Module, sparsity: float, scope: str = "global",
                    layers=None) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Unstructured magnitude pruning of ``nn.Linear`` / ``nn.Conv2d`` weights (not biases).

    Returns ``(pruned copy, masks)``; ``masks`` maps parameter names
    (``"fc1.weight"``) to bool tensors (True = kept), for fine-tuning with
    :func:`models.finetune.finetune` so pruned weights stay zero.
    """
    mods = dict(model.named_modules())
    names = [n for n, m in mods.items() if isinstance(m, _COMPUTE)] if layers is None \
        else list(layers)
    for n in names:
        if n not in mods or not isinstance(mods[n], _COMPUTE):
            what = "no such layer" if n not in mods else f"a {type(mods[n]).__name__}"
            raise PruneError(f"layer {n!r}: {what}; magnitude pruning supports nn.Linear and "
                             "nn.Conv2d weights")
    if not names:
        raise PruneError("model has no nn.Linear or nn.Conv2d layer to prune")
    keeps = magnitude_keep([mods[n].weight.detach().cpu().numpy() for n in names],
                           sparsity, scope)
    masks = {f"{n}.weight": torch.from_numpy(k) for n, k in zip(names, keeps, strict=True)}
    return apply_masks(model, masks), masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with every masked parameter multiplied by its mask."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, m in masks.items():
            if name not in params or tuple(params[name].shape) != tuple(m.shape):
                raise PruneError(f"mask {name!r} {tuple(m.shape)} matches no parameter of "
                                 "that shape")
            params[name].mul_(m.to(params[name].dtype))
    return out


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights over all ``nn.Linear`` / ``nn.Conv2d`` weights."""
    ws = [m.weight for m in model.modules() if isinstance(m, _COMPUTE)]
    total = sum(w.numel() for w in ws)
    return sum(int((w == 0).sum()) for w in ws) / total if total else 0.0


def prune_graph(graph: DataflowGraph, sparsity: float, scope: str = "global",
                nodes=None) -> DataflowGraph:
    """Magnitude pruning of the ``linear`` / ``conv2d`` weights of a float ``DataflowGraph``.

    A new graph (input untouched); each pruned node gets ``attrs["weight_sparsity"]``.
    Run it before ``quantize`` (quantised graphs are refused).
    """
    compute = [n for n in graph.nodes() if n.op in ("linear", "conv2d")]
    names = [n.name for n in compute] if nodes is None else list(nodes)
    for name in names:
        node = graph.node(name)
        if node.op not in ("linear", "conv2d"):
            raise PruneError(f"node {name!r} is a {node.op}; magnitude pruning supports "
                             "linear and conv2d nodes")
        if node.quant is not None or "qweight" in node.params:
            raise PruneError(f"node {name!r} is already quantised; prune the float graph "
                             "before mapping.passes.quantize")
    if not names:
        raise PruneError("graph has no linear or conv2d node to prune")
    g = graph.copy()
    keeps = magnitude_keep([g.node(n).params["weight"] for n in names], sparsity, scope)
    for name, keep in zip(names, keeps, strict=True):
        node = g.node(name)
        node.params["weight"] = np.where(keep, node.params["weight"], 0).astype(
            node.params["weight"].dtype)
        node.attrs["weight_sparsity"] = float(1.0 - keep.mean())
    return g
