"""``sim.golden``: integer-only numpy executor of a quantised ``DataflowGraph``.

It models exactly the arithmetic of :mod:`mapping.quant` (what the hardware
computes): int64 accumulation wrapped to ``acc_bits``, per-channel
``requantize``, the residual-add rescale, integer pooling. Convolutions run
through their ``LoopNest`` GEMM view: an implicit-im2col gather (rows =
output pixels ``(n, p, q)``, columns ordered ``(r, s, c)`` with ``c``
fastest, exactly :meth:`mapping.loopnest.LoopNest.im2col_index`) times the
``(gemm_k, gemm_n)`` weight matrix of :func:`mapping.quant.gemm_weights`. A grouped
convolution (``attrs["groups"]`` = G; depthwise when G = in = out channels) is G such
products, group ``g`` reading input channels ``g*C/G ..`` and writing outputs ``g*K/G ..``.
Host-executed ops (softmax, layernorm, gelu) use :func:`mapping.quant.host_op`.

Everything is vectorised over dim 0 (the batch), which may differ from the
traced batch size.
"""

from __future__ import annotations

import numpy as np

from mapping import quant as Q
from mapping.graph import DataflowGraph, GraphError, Node, pair
from mapping.loopnest import LoopNest
from mapping.windows import avg_windows


class GoldenError(ValueError):
    """The graph cannot be run by the golden model (not quantised, wrong input)."""


def conv_nest(node: Node) -> LoopNest:
    """The node's ``LoopNest`` (built from its attributes when the graph is not lowered or
    the node has no array nest: a depthwise conv). For a grouped conv it is one group's
    (``C`` = in channels / groups, ``K`` all out channels: the im2col is per group)."""
    if node.nest is not None and int(node.attrs.get("groups", 1)) == 1:
        return node.nest
    a, (k, c, r, s) = node.in_shapes[0], node.params["weight"].shape
    at = node.attrs
    return LoopNest.conv(a[0], k, c, a[2], a[3], r, s, stride=pair(at["stride"]),
                         padding=pair(at["padding"]), dilation=pair(at["dilation"]))


def im2col_indices(nest: LoopNest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample gather indices ``(c, h, w)``, each ``(P*Q, C*R*S)``, into the input
    *padded* by ``pad_h`` rows and ``pad_w`` columns on each side (so padding zeros are
    real zeros)."""
    m = np.arange(nest.P * nest.Q)
    k = np.arange(nest.C * nest.R * nest.S)
    p, q = np.divmod(m, nest.Q)
    rs, c = np.divmod(k, nest.C)
    r, s = np.divmod(rs, nest.S)
    h = p[:, None] * nest.stride_h + r[None, :] * nest.dil_h
    w = q[:, None] * nest.stride_w + s[None, :] * nest.dil_w
    return np.broadcast_to(c[None, :], h.shape), h, w


def im2col(x: np.ndarray, nest: LoopNest) -> np.ndarray:
    """Virtual im2col matrix of a batch ``x (B, C, H, W)``: ``(B, P*Q, C*R*S)``."""
    ph, pw = nest.pad_h, nest.pad_w
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    c, h, w = im2col_indices(nest)
    return xp[:, c, h, w]


def _pool_windows(x: np.ndarray, node: Node, fill: int):
    (kh, kw), (sh, sw), (ph, pw) = (node.attrs[k] for k in ("kernel", "stride", "padding"))
    p, q = node.out_shape[2], node.out_shape[3]
    # ceil_mode: the last windows run past the padded end (clipped: extra fill there)
    eh = max(0, (p - 1) * sh + kh - x.shape[2] - 2 * ph)
    ew = max(0, (q - 1) * sw + kw - x.shape[3] - 2 * pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=fill)
    for i in range(kh):
        for j in range(kw):
            yield xp[:, :, i:i + sh * (p - 1) + 1:sh, j:j + sw * (q - 1) + 1:sw]


def _grouped_conv(x: np.ndarray, nest: LoopNest, w: np.ndarray, groups: int) -> np.ndarray:
    """``(B, P*Q, K)`` sums of a conv with ``groups`` groups: ``w`` is the
    ``(C/G*R*S, K)`` GEMM view, group ``g`` owns its columns ``g*K/G ..``."""
    cg, kg = x.shape[1] // groups, w.shape[1] // groups
    return np.concatenate([np.matmul(im2col(x[:, g * cg:(g + 1) * cg], nest),
                                     w[:, g * kg:(g + 1) * kg]) for g in range(groups)], axis=2)


def _avg_varying(x: np.ndarray, node: Node) -> np.ndarray:
    """Average pooling whose windows differ (adaptive to a non-divisor size, ceil_mode):
    each window's sum from the summed-area table of ``x``, requantised with its own
    ``mult``/``shift`` (one pair per output pixel, or one for all)."""
    rows, cols = avg_windows(node.attrs, x.shape[2], x.shape[3])
    sat = np.zeros(x.shape[:2] + (x.shape[2] + 1, x.shape[3] + 1), np.int64)
    sat[:, :, 1:, 1:] = x.cumsum(2).cumsum(3)
    hl, hh = (np.array([r[i] for r in rows])[:, None] for i in (0, 1))
    wl, wh = (np.array([c[i] for c in cols])[None, :] for i in (0, 1))
    acc = sat[:, :, hh, wh] - sat[:, :, hl, wh] - sat[:, :, hh, wl] + sat[:, :, hl, wl]
    q = node.quant
    shape = (1, 1, len(rows), len(cols)) if q.mult.size > 1 else (1,)
    return Q.requantize(Q.wrap(acc, q.acc_bits), q.mult.reshape(shape), q.shift.reshape(shape),
                        q.bits, q.relu)


class GoldenModel:
    """Integer reference executor of a quantised graph (see module docstring)."""

    def __init__(self, graph: DataflowGraph):
        missing = [n.name for n in graph.nodes() if n.quant is None]
        if missing:
            raise GoldenError(f"graph is not quantised (no QuantSpec on {', '.join(missing[:5])}"
                              "); run mapping.passes.quantize (or prepare) first")
        self.graph = graph
        self.nodes = graph.nodes()
        self._w: dict[str, np.ndarray] = {}
        self._nest: dict[str, LoopNest] = {}
        for n in self.nodes:
            if n.op in ("linear", "conv2d"):
                self._w[n.name] = Q.gemm_weights(n.params["qweight"]).astype(np.int64)
            if n.op == "conv2d":
                self._nest[n.name] = conv_nest(n)

    # ------------------------------------------------------------------ ops
    def _gemm(self, n: Node, x: np.ndarray) -> np.ndarray:
        q = n.quant
        w = self._w[n.name]
        if n.op == "linear":
            acc = np.matmul(x, w) + n.params["qbias"]
            ch_axis = -1
        else:
            nest = self._nest[n.name]
            acc = _grouped_conv(x, nest, w, int(n.attrs.get("groups", 1)))
            acc = acc + n.params["qbias"]  # (B, P*Q, K)
            acc = acc.transpose(0, 2, 1).reshape(x.shape[0], nest.K, nest.P, nest.Q)
            ch_axis = 1
        acc = Q.wrap(acc, q.acc_bits)
        shape = [1] * acc.ndim
        shape[ch_axis] = -1
        return Q.requantize(acc, q.mult.reshape(shape), q.shift.reshape(shape), q.bits, q.relu)

    def _op(self, n: Node, xs: list[np.ndarray]) -> np.ndarray:
        q, op = n.quant, n.op
        x = xs[0] if xs else None
        b = x.shape[0] if x is not None else None
        if op in ("linear", "conv2d"):
            return self._gemm(n, x)
        if op in ("matmul", "mul") and "scalar" not in n.attrs:
            acc = np.matmul(xs[0], xs[1]) if op == "matmul" else xs[0] * xs[1]
            acc = Q.wrap(acc, q.acc_bits)
            return Q.requantize(acc, q.mult[0], q.shift[0], q.bits, q.relu)
        if op == "mul":
            return Q.clamp(-x, q.bits) if q.extra.get("negate") else x
        if op == "add":
            return Q.requantize_add(xs[0], xs[1], q.mult[0], q.mult[1], q.shift[0], q.bits,
                                    q.relu)
        if op == "relu":
            return np.maximum(x, 0)
        if op == "maxpool2d":
            lo = np.iinfo(np.int64).min
            return np.maximum.reduce(list(_pool_windows(x, n, lo)))
        if op == "avgpool2d" and avg_windows(n.attrs, x.shape[2], x.shape[3]) is not None:
            return _avg_varying(x, n)
        if op == "avgpool2d":
            acc = Q.wrap(np.add.reduce(list(_pool_windows(x, n, 0))), q.acc_bits)
            return Q.requantize(acc, q.mult[0], q.shift[0], q.bits, q.relu)
        if op in ("flatten", "reshape"):
            return x.reshape((b,) + tuple(n.out_shape[1:]))
        if op == "transpose":
            return np.ascontiguousarray(x.transpose(n.attrs["perm"]))
        if op == "select":  # channels in index order (exact: same scale)
            return np.take(x, list(n.attrs["index"]), axis=1)
        if op == "concat":  # inputs share one scale (mapping.passes.quant_concat)
            return np.concatenate(xs, axis=n.attrs["dim"])
        if op == "act":  # the lookup table built at quantisation (mapping.quant.act_table)
            return Q.lut(x, n.params["qtable"])
        if op in Q.HOST_OPS:
            y = Q.host_op(op, Q.dequantize(x, q.in_scales[0]), n.attrs, n.params)
            return Q.quantize_act(y, q.scale, q.bits)
        if op == "output":
            return x
        raise GoldenError(f"node {n.name!r}: golden model has no op {op!r}")

    # ------------------------------------------------------------------ run
    def run(self, *x_int, trace: bool = False):
        """Run on integer inputs (one int array per graph input, batch on dim 0).

        Returns the int64 output (a list for several outputs), or with
        ``trace=True`` a dict node name -> int64 tensor of every node.
        """
        names = self.graph.inputs
        if len(x_int) != len(names):
            raise GoldenError(f"graph has {len(names)} input(s), got {len(x_int)}")
        env: dict[str, np.ndarray] = {}
        for name, x in zip(names, x_int, strict=True):
            node = self.graph.node(name)
            x = np.asarray(x)
            if tuple(x.shape[1:]) != tuple(node.out_shape[1:]):
                raise GoldenError(f"input {name!r} has shape {x.shape}; expected "
                                  f"(batch, {', '.join(map(str, node.out_shape[1:]))})")
            if not np.issubdtype(x.dtype, np.integer):
                raise GoldenError(f"input {name!r} must be integers (use quantize_input)")
            lo, hi = Q.qrange(node.quant.bits)
            if x.size and (x.min() < lo or x.max() > hi):
                raise GoldenError(f"input {name!r} has values outside the "
                                  f"{node.quant.bits}-bit range [{lo}, {hi}]")
            env[name] = x.astype(np.int64)
        for n in self.nodes:
            if n.op != "input":
                env[n.name] = self._op(n, [env[i] for i in n.inputs])
        if trace:
            return env
        outs = [env[o] for o in self.graph.outputs]
        return outs[0] if len(outs) == 1 else outs


def quantize_input(graph: DataflowGraph, x_float, name: str | None = None) -> np.ndarray:
    """Host-side input quantisation ``clamp(floor(x / s + 0.5))`` with the input's scale."""
    name = name or graph.inputs[0]
    q = graph.node(name).quant
    if q is None:
        raise GoldenError("graph is not quantised; run mapping.passes.quantize first")
    x = x_float.detach().numpy() if hasattr(x_float, "detach") else np.asarray(x_float)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise GoldenError(f"inputs must be real numbers, got dtype {x.dtype}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        where = tuple(int(v) for v in np.unravel_index(bad[0], x.shape))
        raise GoldenError(f"inputs hold {bad.size} NaN/inf value(s) (first at index {where}); "
                          "inputs must be finite")
    return Q.quantize_act(x, q.scale, q.bits)


def run(graph: DataflowGraph, *x_int, trace: bool = False):
    """``GoldenModel(graph).run(*x_int, trace=trace)``."""
    return GoldenModel(graph).run(*x_int, trace=trace)


def run_float(graph: DataflowGraph, x_float) -> tuple[np.ndarray, np.ndarray]:
    """Quantise a float input, run the integer model: ``(q_out, q_out * s_out)``."""
    q_out = run(graph, quantize_input(graph, x_float))
    if isinstance(q_out, list):
        raise GraphError("run_float supports single-output graphs; use run() instead")
    return q_out, Q.dequantize(q_out, graph.node(graph.outputs[0]).quant.scale)


def predict(graph: DataflowGraph, x_float) -> np.ndarray:
    """Class labels: argmax over the last dim of the integer output."""
    return np.argmax(run_float(graph, x_float)[0], axis=-1)
