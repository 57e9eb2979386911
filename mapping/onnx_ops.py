"""ONNX op handlers for :mod:`mapping.onnx_import`: the op table of its ``_Importer``.

:class:`OnnxOps` is a mixin holding one ``op_<OnnxOp>`` method per supported ONNX op (plus the
helpers they share: ``binary``, ``fuse_bias``, ``padding``, ``geometry``, ``reshape``, ``axes``);
each turns ``self.node`` into torch layers/functions through the importer core
(``self.module``, ``self.call``, ``self.const``, ``self.err``, ...). Also here: the
``SUPPORTED`` op list used in error messages and :func:`_erf_gelu`, the matcher that finds the
Erf form of GELU so the importer can emit one ``nn.GELU``.
"""

from __future__ import annotations

import math
import operator
from collections import Counter

import numpy as np
import torch
from torch import fx, nn

_BINARY = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul,
           "Div": operator.truediv}


def _out_size(n, b, e, k, s, d, ceil=False) -> int:
    span = n + b + e - (d * (k - 1) + 1)
    return (-(-span // s) if ceil else span // s) + 1


class OnnxOps:
    """The op table of ``mapping.onnx_import._Importer`` (a mixin: it uses the importer core's
    ``node``, ``opset``, ``consts``, ``vals``, ``uses``, ``matmul_linear`` and emission methods)."""

    # ------------------------------------------------------------ geometry
    def padding(self, spatial, kernel, strides, dilations, ceil=False) -> tuple[int, ...]:
        r = len(kernel)
        auto = self.attr("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for n, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
                total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
                lo, hi = total // 2, total - total // 2
                begin.append(lo if auto == "SAME_UPPER" else hi)
                end.append(hi if auto == "SAME_UPPER" else lo)
        elif auto == "VALID":
            begin, end = [0] * r, [0] * r
        else:
            pads = list(self.attr("pads", [0] * 2 * r))
            begin, end = pads[:r], pads[r:]
        for n, b, e, k, s, d in zip(spatial, begin, end, kernel, strides, dilations, strict=True):
            if b != e and (ceil or _out_size(n, b, b, k, s, d) != _out_size(n, b, e, k, s, d)):
                raise self.err(f"asymmetric padding (begin {begin}, end {end}) is not expressible "
                               "as a torch padding (symmetric, or asymmetric where the extra "
                               "end padding is never read, without ceil_mode)")
        return tuple(int(b) for b in begin)

    def geometry(self, what: str, kernel=None):
        x_shape = self.shape(self.node.input[0])
        kernel = tuple(int(k) for k in self.attr("kernel_shape", kernel))
        r = len(kernel)
        if r not in (1, 2) or len(x_shape) != r + 2:
            raise self.err(f"{r}-D {what} on a rank-{len(x_shape)} input; only 1-D and 2-D "
                           "(input (N, C, L) or (N, C, H, W))")
        strides = tuple(self.attr("strides", [1] * r))
        dilations = tuple(self.attr("dilations", [1] * r))
        ceil = bool(self.attr("ceil_mode", 0))
        pads = self.padding(x_shape[2:], kernel, strides, dilations, ceil)
        return r, kernel, strides, dilations, pads, ceil

    # ------------------------------------------------------------ ops: compute
    def op_Conv(self):
        w = self.const(1, "the weight")
        r, kernel, strides, dilations, pads, _ = self.geometry("Conv", w.shape[2:])
        groups = self.attr("group", 1)
        b = self.opt_const(2)
        cls = nn.Conv1d if r == 1 else nn.Conv2d
        m = cls(w.shape[1] * groups, w.shape[0], kernel, strides, pads, dilations, groups,
                bias=b is not None)
        self.load(m, weight=w, bias=b)
        return self.module(m, self.x())

    def op_Gemm(self):
        if self.attr("transA", 0):
            raise self.err("transA=1 is not supported (the activation must be (M, K))")
        b = self.const(1, "B")
        alpha, beta = self.attr("alpha", 1.0), self.attr("beta", 1.0)
        w = alpha * (b if self.attr("transB", 0) else b.T)
        c = self.opt_const(2)
        bias = None
        if c is not None and beta != 0:
            if c.size == 1:
                bias = np.full(w.shape[0], float(c.reshape(())), np.float32)
            elif c.shape[-1] == w.shape[0] and c.size == w.shape[0]:
                bias = c.reshape(-1)
            else:
                raise self.err(f"bias C of shape {c.shape} is not a per-output vector "
                               f"({w.shape[0]},)")
            bias = beta * bias
        m = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
        self.load(m, weight=w, bias=bias)
        return self.module(m, self.x())

    def op_MatMul(self):
        a, b = self.node.input[0], self.node.input[1]
        if self.is_const(b) and self.consts[b].ndim == 2:
            w = self.consts[b]
            m = nn.Linear(w.shape[0], w.shape[1], bias=False)
            self.load(m, weight=w.T)
            self.matmul_linear[self.node.output[0]] = m
            return self.module(m, self.value(a))
        return self.call(torch.matmul, self.value(a), self.value(b))

    # ------------------------------------------------------------ ops: element-wise
    def binary(self):
        op = self.node.op_type
        a, b = self.node.input[0], self.node.input[1]
        if op == "Add":
            for lin_out, c in ((a, b), (b, a)):
                if self.fuse_bias(lin_out, c):
                    return self.vals[lin_out]
        if self.is_const(a) or self.is_const(b):
            act, c = (b, a) if self.is_const(a) else (a, b)
            cv, xs = self.consts[c], self.shape(act)
            if cv.size == 1 and cv.ndim <= len(xs):
                s = float(cv.reshape(()))
                if op == "Sub" and c == b:  # x - c == x + (-c) exactly
                    return self.call(operator.add, self.value(act), -s)
                args = (self.value(act), s) if c == b else (s, self.value(act))
                return self.call(_BINARY[op], *args)
            try:
                out = tuple(torch.broadcast_shapes(xs, cv.shape))
            except RuntimeError:
                out = None
            if out != xs:
                raise self.err(f"constant of shape {tuple(cv.shape)} does not broadcast to the "
                               f"activation's shape {xs} (only the constant may be broadcast)")
        else:
            try:
                torch.broadcast_shapes(self.shape(a), self.shape(b))
            except RuntimeError as exc:
                raise self.err(f"shapes {self.shape(a)} and {self.shape(b)} do not "
                               "broadcast") from exc
        return self.call(_BINARY[op], self.value(a), self.value(b))

    op_Add = op_Sub = op_Mul = op_Div = binary

    def fuse_bias(self, lin_out: str, c: str) -> bool:
        m = self.matmul_linear.get(lin_out)
        if m is None or not self.is_const(c) or self.uses[lin_out] != 1:
            return False
        cv = self.consts[c]
        rank = len(self.shape(lin_out))
        if not 0 < cv.ndim <= rank or cv.size != m.out_features or cv.shape[-1] != cv.size:
            return False
        m.bias = nn.Parameter(torch.from_numpy(np.array(cv, np.float32).reshape(-1)))
        return True

    def op_Relu(self):
        return self.module(nn.ReLU(), self.x())

    def op_Clip(self):
        if self.opset < 11:
            lo, hi = self.attr("min", -math.inf), self.attr("max", math.inf)
        else:
            lo_c, hi_c = self.opt_const(1), self.opt_const(2)
            lo = -math.inf if lo_c is None else float(lo_c.reshape(()))
            hi = math.inf if hi_c is None else float(hi_c.reshape(()))
        if lo == 0 and hi == 6:
            m = nn.ReLU6()
        elif lo == 0 and hi == math.inf:
            m = nn.ReLU()
        elif lo < hi:
            m = nn.Hardtanh(lo, hi)
        else:
            raise self.err(f"min {lo} must be below max {hi}")
        return self.module(m, self.x())

    def op_LeakyRelu(self):
        return self.module(nn.LeakyReLU(self.attr("alpha", 0.01)), self.x())

    def op_Sigmoid(self):
        return self.module(nn.Sigmoid(), self.x())

    def op_Tanh(self):
        return self.module(nn.Tanh(), self.x())

    def op_HardSigmoid(self):
        alpha, beta = self.attr("alpha", 0.2), self.attr("beta", 0.5)
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and beta == 0.5):
            raise self.err(f"alpha={alpha}, beta={beta}: only torch's Hardsigmoid "
                           "(alpha=1/6, beta=0.5) is supported")
        return self.module(nn.Hardsigmoid(), self.x())

    def op_HardSwish(self):
        return self.module(nn.Hardswish(), self.x())

    def op_Elu(self):
        return self.module(nn.ELU(self.attr("alpha", 1.0)), self.x())

    def op_Gelu(self):
        return self.module(nn.GELU(approximate=self.attr("approximate", "none")), self.x())

    def op_Softmax(self):
        rank = len(self.shape(self.node.input[0]))
        axis = self.attr("axis", -1 if self.opset >= 13 else 1) % rank
        if self.opset < 13 and axis != rank - 1:
            raise self.err(f"opset {self.opset} Softmax over the flattened axes {axis}.. of a "
                           f"rank-{rank} input; only the last axis is supported")
        return self.module(nn.Softmax(dim=axis), self.x())

    def op_BatchNormalization(self):
        if self.attr("training_mode", 0):
            raise self.err("training_mode=1; only inference BatchNormalization is supported")
        scale, bias = self.const(1, "scale"), self.const(2, "B")
        mean, var = self.const(3, "mean"), self.const(4, "var")
        rank = len(self.shape(self.node.input[0]))
        if rank not in (2, 3, 4):
            raise self.err(f"rank-{rank} input; only (N, C), (N, C, L) and (N, C, H, W)")
        cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
        m = cls(scale.shape[0], eps=self.attr("epsilon", 1e-5))
        self.load(m, weight=scale, bias=bias, running_mean=mean, running_var=var)
        return self.module(m.eval(), self.x())

    # ------------------------------------------------------------ ops: pooling
    def op_MaxPool(self):
        if self.attr("storage_order", 0):
            raise self.err("storage_order=1 is not supported")
        r, k, s, d, p, ceil = self.geometry("MaxPool")
        cls = nn.MaxPool1d if r == 1 else nn.MaxPool2d
        return self.module(cls(k, s, p, d, ceil_mode=ceil), self.x())

    def op_AveragePool(self):
        r, k, s, d, p, ceil = self.geometry("AveragePool")
        if any(v != 1 for v in d):
            raise self.err(f"dilations {list(d)} are not supported (torch's AvgPool has none)")
        cls = nn.AvgPool1d if r == 1 else nn.AvgPool2d
        inc = bool(self.attr("count_include_pad", 0))
        return self.module(cls(k, s, p, ceil_mode=ceil, count_include_pad=inc), self.x())

    def op_GlobalAveragePool(self):
        rank = len(self.shape(self.node.input[0]))
        if rank not in (3, 4):
            raise self.err(f"rank-{rank} input; only (N, C, L) and (N, C, H, W)")
        cls = nn.AdaptiveAvgPool1d if rank == 3 else nn.AdaptiveAvgPool2d
        return self.module(cls(1), self.x())

    # ------------------------------------------------------------ ops: shapes
    def reshape(self, target) -> fx.Node:
        xs = self.shape(self.node.input[0])
        target = tuple(int(t) for t in target)
        if target == xs:
            return self.x()
        if len(target) > 1 and len(xs) > 0 and target[0] == xs[0]:
            target = (-1, *target[1:])  # keeps the batch dimension free
        return self.call(torch.reshape, self.x(), target)

    def op_Reshape(self):
        target = [int(t) for t in self.const(1, "the shape")]
        xs = self.shape(self.node.input[0])
        if not self.attr("allowzero", 0):
            target = [xs[i] if t == 0 else t for i, t in enumerate(target)]
        try:
            out = np.empty(xs, np.uint8).reshape(target).shape
        except ValueError as exc:
            raise self.err(f"cannot reshape {xs} to {tuple(target)}") from exc
        return self.reshape(out)

    def op_Flatten(self):
        xs = self.shape(self.node.input[0])
        axis = self.attr("axis", 1) % (len(xs) + 1) if xs else 0
        if axis == 1 and len(xs) >= 2:
            return self.module(nn.Flatten(), self.x())
        return self.reshape((math.prod(xs[:axis]), math.prod(xs[axis:])))

    def axes(self) -> list[int] | None:
        if self.opset >= 13 and self.node.op_type in ("Squeeze", "Unsqueeze"):
            a = self.opt_const(1)
            return None if a is None else [int(v) for v in np.atleast_1d(a)]
        a = self.attr("axes")
        return None if a is None else list(a)

    def op_Squeeze(self):
        xs = self.shape(self.node.input[0])
        axes = self.axes()
        axes = [i for i, n in enumerate(xs) if n == 1] if axes is None else \
            [a % len(xs) for a in axes]
        if any(xs[a] != 1 for a in axes):
            raise self.err(f"cannot squeeze axes {axes} of shape {xs}")
        return self.reshape([n for i, n in enumerate(xs) if i not in axes])

    def op_Unsqueeze(self):
        xs = list(self.shape(self.node.input[0]))
        axes = self.axes()
        if axes is None:
            raise self.err("axes are missing")
        rank = len(xs) + len(axes)
        for a in sorted(v % rank for v in axes):
            xs.insert(a, 1)
        return self.reshape(xs)

    def op_Transpose(self):
        rank = len(self.shape(self.node.input[0]))
        perm = self.attr("perm") or list(range(rank))[::-1]
        return self.call(torch.permute, self.x(), tuple(int(p) for p in perm))

    def op_Concat(self):
        rank = len(self.shape(next(i for i in self.node.input if i in self.vals)))
        axis = self.attr("axis") % rank
        return self.call(torch.cat, [self.value(i) for i in self.node.input if i], axis)

    def op_Slice(self):
        """``x[..., start:end:step, ...]`` (positive steps): the tracer takes channel slices."""
        rank = len(self.shape(self.node.input[0]))
        if self.opset < 10:
            starts, ends = self.attr("starts"), self.attr("ends")
            axes, steps = self.attr("axes"), None
        else:
            starts, ends = self.const(1, "starts"), self.const(2, "ends")
            axes, steps = self.opt_const(3), self.opt_const(4)
        axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        if any(s <= 0 for s in steps):
            raise self.err(f"steps {steps}: only positive steps are supported")
        idx = [slice(None)] * rank
        for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
            idx[a] = slice(int(s), int(e), st)
        return self.call(operator.getitem, self.x(), tuple(idx))

    def op_Split(self):
        """``torch.split`` into the node's outputs (sizes from the input, the attribute, or
        equal parts as ``num_outputs`` / the output count say)."""
        xs = self.shape(self.node.input[0])
        axis = self.attr("axis", 0) % len(xs)
        sizes = self.opt_const(1) if self.opset >= 13 else self.attr("split")
        if sizes is None:  # equal parts, as torch.chunk cuts them
            from mapping.passes.trace_layers import chunk_sizes

            sizes = chunk_sizes(xs[axis], self.attr("num_outputs", len(self.node.output)))
        sizes = [int(s) for s in np.atleast_1d(sizes)]
        pieces = self.call(torch.split, self.x(), sizes, axis)
        return [self.call(operator.getitem, pieces, k) for k in range(len(sizes))]

    def op_Identity(self):
        return self.x()

    def op_Dropout(self):
        return self.x()

    def op_Constant(self):  # folded before dispatch; kept for the supported list
        raise AssertionError("Constant is folded")


SUPPORTED = (
    ", ".join(sorted(k[3:] for k in vars(OnnxOps) if k.startswith("op_")))
    + ", Shape (folded), any node with constant inputs (folded), the Erf GELU pattern"
)


# ----------------------------------------------------------------------------- Erf GELU
def _erf_gelu(nodes, consts: dict, uses: Counter) -> dict:
    """``x * 0.5 * (1 + erf(x / sqrt(2)))`` in the forms exporters write: ``{last Mul's output:
    (x, [member nodes to skip])}``. ``consts`` are the initializers and Constant nodes."""
    from onnx import helper, numpy_helper

    known = dict(consts)
    for n in nodes:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            known[n.output[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def cval(name, value):
        v = known.get(name)
        return v is not None and v.size == 1 and math.isclose(float(v.reshape(())), value,
                                                               rel_tol=1e-6)

    def split(n, value):  # (other operand, ok) of a binary node with a constant ``value``
        a, b = n.input[0], n.input[1]
        if cval(b, value):
            return a
        if n.op_type in ("Add", "Mul") and cval(a, value):
            return b
        return None

    def only(name, op):
        c = consumers.get(name, [])
        return c[0] if len(c) == 1 and uses[name] == 1 and c[0].op_type == op else None

    found = {}
    for erf in (n for n in nodes if n.op_type == "Erf"):
        d = producer.get(erf.input[0])
        if d is None or uses[d.output[0]] != 1:
            continue
        x = split(d, math.sqrt(2)) if d.op_type == "Div" else \
            split(d, 1 / math.sqrt(2)) if d.op_type == "Mul" else None
        add = only(erf.output[0], "Add")
        if x is None or add is None or split(add, 1.0) is None:
            continue
        members, cur, kinds = [d, erf, add], add.output[0], []
        for _ in range(2):
            m = only(cur, "Mul")
            if m is None:
                break
            other = m.input[1] if m.input[0] == cur else m.input[0]
            h = producer.get(other)
            if other == x:
                kinds.append("x")
            elif cval(other, 0.5):
                kinds.append("half")
            elif h is not None and h.op_type == "Mul" and uses[other] == 1 and \
                    split(h, 0.5) == x:
                kinds.append("xhalf")
                members.append(h)
            else:
                break
            members.append(m)
            cur = m.output[0]
            if sorted(kinds) in (["xhalf"], ["half", "x"]):
                found[m.output[0]] = (x, members[:-1])
                break
    return found
