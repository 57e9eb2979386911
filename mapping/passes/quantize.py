"""``quantize``: attach a :class:`mapping.quant.QuantSpec` to every node.

Per-channel weights, per-tensor activations, calibration = max-abs of each
node's float output over ``calib_inputs`` (a float64 run of the graph, see
:mod:`mapping.passes.float_exec`). The integer semantics are in
:mod:`mapping.quant`. Quantised parameters are added to ``node.params`` as
``qweight`` (int64, torch layout) and ``qbias`` (int64, accumulator units); an
``act`` node gets its lookup table ``qtable`` (:func:`mapping.quant.act_table`).
A grouped / depthwise conv2d (weight ``(K, C/groups, R, S)``) is quantised like any conv:
per output channel (axis 0), so a depthwise channel has its own weight scale, bias,
multiplier and shift; its accumulator needs the same ``in_bits + w_bits`` at least (the
depthwise unit sums ``R*S`` products in ``acc_bits``, wrapping like the array).
"""

from __future__ import annotations

import numpy as np

from mapping import quant as Q
from mapping.graph import DataflowGraph, Node
from mapping.passes.float_exec import run_float_graph
from mapping.passes.quant_concat import concat_scales, concat_spec
from mapping.quant import QuantError, QuantSpec
from mapping.windows import avg_windows, divisors

PASS_THROUGH = ("maxpool2d", "flatten", "reshape", "transpose", "select", "output")


def _bits_table(g: DataflowGraph, bits: int, w_bits: int, per_layer_bits) -> dict:
    table = {}
    for name, v in (per_layer_bits or {}).items():
        if name not in g:
            raise QuantError(f"per_layer_bits names {name!r}, which is not a node; "
                             f"nodes: {', '.join(n.name for n in g.nodes())}")
        a, w = (v, v) if not isinstance(v, (tuple, list)) else tuple(v)
        table[name] = (Q.check_bits(a, f"per_layer_bits[{name!r}] activation bits"),
                       Q.check_bits(w, f"per_layer_bits[{name!r}] weight bits"))
    return {n.name: table.get(n.name, (bits, w_bits)) for n in g.nodes()}


def calibrate(g: DataflowGraph, calib_inputs) -> dict[str, float]:
    """Max-abs of every node's float output over the calibration batch."""
    if not isinstance(calib_inputs, (tuple, list)):
        calib_inputs = (calib_inputs,)
    for i, x in enumerate(calib_inputs):
        a = x.detach().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            where = np.unravel_index(bad[0], a.shape)
            raise QuantError(f"calibration input {i} has {bad.size} NaN/inf value(s) (first at "
                             f"index {tuple(int(v) for v in where)}); calibration samples must "
                             "be finite floats")
    acts = run_float_graph(g, *calib_inputs, trace=True)
    return {k: float(np.abs(v).max()) if v.size else 0.0 for k, v in acts.items()}


def _compute_spec(node: Node, s_in: float, in_bits: int, s_out: float, a_bits: int,
                  w_bits: int, acc_bits: int) -> QuantSpec:
    if acc_bits < in_bits + w_bits:
        raise QuantError(f"node {node.name!r}: acc_bits = {acc_bits} must be at least "
                         f"input bits + weight bits = {in_bits + w_bits}")
    bias = node.params.get("bias")
    floor = Q.bias_scale_floor(bias, s_in, acc_bits) if bias is not None else None
    qw, s_w = Q.quantize_weights(node.params["weight"], w_bits, min_scale=floor)
    qb = Q.quantize_bias(bias, s_in, s_w) if bias is not None else np.zeros(len(s_w), np.int64)
    node.params["qweight"], node.params["qbias"] = qw, qb
    mult, shift = Q.quantize_multipliers(s_in * s_w / s_out)
    return QuantSpec(bits=a_bits, scale=s_out, relu=bool(node.attrs.get("fused_relu")),
                     in_scales=(s_in,), w_bits=w_bits, w_scale=s_w, acc_bits=acc_bits,
                     mult=mult, shift=shift)


def quantize(g: DataflowGraph, calib_inputs, bits: int = 8, w_bits: int | None = None,
             acc_bits: int = 32, per_layer_bits: dict | None = None,
             fixed: dict | None = None) -> DataflowGraph:
    """A new, quantised graph (the input graph is not modified).

    ``bits``: activation width; ``w_bits``: weight width (default ``bits``);
    ``acc_bits``: accumulator width (8..48); ``per_layer_bits``: node name ->
    ``bits`` or ``(act_bits, w_bits)`` overriding the output/weight width of
    that node. Bit widths must be integers in 2..16 (:class:`QuantError`).
    BN must have been folded (``fold_batchnorm``) first. ``fixed``: node name -> imported
    (QAT) quantisation overriding calibration (:func:`_fixed_overrides`,
    :mod:`mapping.passes.qat_import`).
    """
    bits = Q.check_bits(bits, "bits")
    w_bits = Q.check_bits(bits if w_bits is None else w_bits, "w_bits")
    acc_bits = Q.check_acc_bits(acc_bits)
    g = g.copy()
    table = _bits_table(g, bits, w_bits, per_layer_bits)
    for node in g.nodes():
        if node.op == "batchnorm2d":
            raise QuantError(f"node {node.name!r}: batchnorm2d must be folded into the "
                             "preceding conv2d before quantisation (run fold_batchnorm; a BN "
                             "not directly after a conv2d is not supported)")
    max_abs = calibrate(g, calib_inputs)
    shared = concat_scales(g, max_abs, table)  # producers of concat inputs: one scale
    for node in g.nodes():
        a_bits, wb = table[node.name]
        ins = [g.node(i).quant for i in node.inputs]
        s_calib = shared.get(node.name, Q.act_scale(max_abs[node.name], a_bits))
        if "fused_max" in node.attrs:  # a fused ReLU6 / clamp from 0 (mapping.passes.fuse)
            s_calib = Q.act_out_scale({"fn": "clamp", "min": 0.0, "max": node.attrs["fused_max"]},
                                      max_abs[node.name], a_bits)
        a_bits, s_calib, fx = _fixed_overrides(node, (fixed or {}).get(node.name), a_bits,
                                               s_calib)
        if "fused_max" in node.attrs:
            _check_fused_max(node, s_calib, a_bits)
        relu = bool(node.attrs.get("fused_relu"))
        op = node.op
        if op == "input":
            spec = QuantSpec(bits=a_bits, scale=s_calib)
        elif op in PASS_THROUGH:
            spec = ins[0].passed_on()
        elif op == "relu":
            spec = QuantSpec(bits=ins[0].bits, scale=ins[0].scale, relu=True,
                             in_scales=(ins[0].scale,))
        elif op in ("linear", "conv2d"):
            spec = (_fixed_compute_spec(node, ins[0].scale, ins[0].bits, s_calib, a_bits, fx,
                                        acc_bits) if "w_int" in fx else
                    _compute_spec(node, ins[0].scale, ins[0].bits, s_calib, a_bits, wb, acc_bits))
        elif op == "matmul" or (op == "mul" and "scalar" not in node.attrs):
            m = ins[0].scale * ins[1].scale * node.attrs.get("scale", 1.0) / s_calib
            if m <= 0:
                raise QuantError(f"node {node.name!r}: negative matmul scale "
                                 f"{node.attrs.get('scale')} is not supported")
            need = ins[0].bits + ins[1].bits
            if acc_bits < need:
                raise QuantError(f"node {node.name!r}: acc_bits = {acc_bits} must be at least "
                                 f"the two operand widths summed = {need}")
            mult, shift = Q.quantize_multipliers(np.array([m]))
            spec = QuantSpec(bits=a_bits, scale=s_calib, relu=relu,
                             in_scales=(ins[0].scale, ins[1].scale), w_bits=ins[1].bits,
                             acc_bits=acc_bits, mult=mult, shift=shift)
        elif op == "mul":  # by a scalar: scale change only
            c = node.attrs["scalar"]
            if c == 0:
                raise QuantError(f"node {node.name!r}: multiplication by 0 is not supported")
            spec = QuantSpec(bits=ins[0].bits, scale=ins[0].scale * abs(c),
                             relu=ins[0].relu and c > 0, in_scales=(ins[0].scale,),
                             extra={"negate": c < 0})
        elif op == "add":
            ma, mb, sh = Q.add_multipliers(ins[0].scale, ins[1].scale, s_calib)
            spec = QuantSpec(bits=a_bits, scale=s_calib, relu=relu,
                             in_scales=(ins[0].scale, ins[1].scale),
                             mult=np.array([ma, mb], np.int64), shift=np.array([sh], np.int64))
        elif op == "avgpool2d":
            mult, shift, extra = avg_multipliers(node)
            spec = QuantSpec(bits=ins[0].bits, scale=ins[0].scale, relu=ins[0].relu,
                             in_scales=(ins[0].scale,), acc_bits=acc_bits, mult=mult,
                             shift=shift, extra=extra)
        elif op == "act":
            s_out = fx.get("scale") or shared.get(node.name) or Q.act_out_scale(node.attrs, max_abs[node.name],
                                                             a_bits)
            node.params["qtable"] = Q.act_table(node.attrs, ins[0].scale, ins[0].bits, s_out,
                                                a_bits)
            spec = QuantSpec(bits=a_bits, scale=s_out, in_scales=(ins[0].scale,),
                             extra={"fn": node.attrs["fn"], "in_bits": ins[0].bits})
        elif op == "concat":
            spec = concat_spec(node.name, ins)
        elif op in Q.HOST_OPS:
            node.attrs["host"] = True
            spec = QuantSpec(bits=a_bits, scale=s_calib, in_scales=(ins[0].scale,), host=True)
        else:
            raise QuantError(f"node {node.name!r}: op {op!r} has no integer semantics")
        node.quant = spec
    return g


def _check_fused_max(node: Node, scale: float, bits: int) -> None:
    """A fused clamp to ``[0, max]`` is the requantisation's clamp at ``qmax`` only when
    ``qmax * scale <= max`` (else a clamp at ``max`` would be a second bound)."""
    top = node.attrs["fused_max"]
    if Q.qmax(bits) * scale > top * (1 + 1e-12):
        raise QuantError(f"node {node.name!r}: its fused clamp to [0, {top:g}] needs an output "
                         f"scale of at most {top:g} / {Q.qmax(bits)} = {top / Q.qmax(bits):.6g} "
                         f"at {bits} bits; the imported scale is {scale:.6g}")


def _fixed_overrides(node: Node, fx: dict | None, a_bits: int,
                     s_calib: float) -> tuple[int, float, dict]:
    """``(bits, scale, fx)`` of ``node`` with its imported output quantisation ``fx``
    (``{"scale", "bits", "signed"}``; weights ``{"w_int", "w_scale", "w_bits"}``) if any. An
    unsigned quantiser clamps at 0: its compute node gets ``fused_relu``."""
    fx = fx or {}
    if "scale" not in fx:
        return a_bits, s_calib, fx
    if not fx.get("signed", True):
        if node.op in ("linear", "conv2d", "add", "matmul"):
            node.attrs["fused_relu"] = True
        elif node.op not in ("input", "relu", "act"):
            raise QuantError(f"node {node.name!r} ({node.op}): an unsigned imported quantiser "
                             "is supported after linear, conv2d, add, matmul, act or the input")
    scale = float(fx["scale"])
    if not (np.isfinite(scale) and scale > 0):
        raise QuantError(f"node {node.name!r}: imported scale {scale!r} must be positive")
    return Q.check_bits(fx["bits"], f"node {node.name!r} imported bits"), scale, fx


def _fixed_compute_spec(node: Node, s_in: float, in_bits: int, s_out: float, a_bits: int,
                        fx: dict, acc_bits: int) -> QuantSpec:
    """:func:`_compute_spec` with imported integer weights ``fx["w_int"]`` and scales
    ``fx["w_scale"]`` (per output channel); the bias is quantised at ``s_in * s_w``."""
    qw = np.asarray(fx["w_int"], dtype=np.int64)
    s_w = np.asarray(fx["w_scale"], dtype=np.float64).reshape(-1)
    w_bits = Q.check_bits(fx["w_bits"], f"node {node.name!r} imported weight bits")
    lo, hi = Q.qrange(w_bits)
    if qw.shape != node.params["weight"].shape or s_w.shape != (qw.shape[0],) or (
            qw.size and (qw.min() < lo or qw.max() > hi)):
        raise QuantError(f"node {node.name!r}: imported weights {qw.shape} / scales {s_w.shape}"
                         f" do not fit the weight {node.params['weight'].shape} at {w_bits} bits")
    if acc_bits < in_bits + w_bits:
        raise QuantError(f"node {node.name!r}: acc_bits = {acc_bits} must be at least "
                         f"input bits + weight bits = {in_bits + w_bits}")
    bias = node.params.get("bias")
    qb = Q.quantize_bias(bias, s_in, s_w) if bias is not None else np.zeros(len(s_w), np.int64)
    if qb.size and np.abs(qb).max() > 2 ** (acc_bits - 2):
        raise QuantError(f"node {node.name!r}: the bias needs more than acc_bits = {acc_bits} "
                         "at the imported scales; raise acc_bits")
    node.params["qweight"], node.params["qbias"] = qw, qb
    mult, shift = Q.quantize_multipliers(s_in * s_w / s_out)
    return QuantSpec(bits=a_bits, scale=s_out, relu=bool(node.attrs.get("fused_relu")),
                     in_scales=(s_in,), w_bits=w_bits, w_scale=s_w, acc_bits=acc_bits,
                     mult=mult, shift=shift)


def avg_multipliers(node: Node) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(mult, shift)`` of an ``avgpool2d``: one pair (``1/(kh*kw)``), or, when its
    windows differ (adaptive to a non-divisor size, ``ceil_mode``:
    :func:`mapping.windows.avg_windows`), one pair per output pixel ``(P*Q,)`` in row-major
    order (a single pair if every window has the same divisor), and ``extra`` with the
    ``(P, Q)`` window ``divisors`` (list of lists) for those."""
    _, _, h, w = node.in_shapes[0]
    win = avg_windows(node.attrs, h, w)
    if win is None:
        kh, kw = node.attrs["kernel"]
        return (*Q.quantize_multipliers(np.array([1.0 / (kh * kw)])), {})
    div2 = divisors(*win)
    div = div2.ravel()
    if np.unique(div).size == 1:
        div = div[:1]
    return (*Q.quantize_multipliers(1.0 / div), {"divisors": div2.tolist()})
