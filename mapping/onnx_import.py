"""ONNX front end: an ``.onnx`` file -> a ``torch.nn.Module`` (:func:`load_onnx`).

Design decision: ONNX is imported *into torch*, not into the DataflowGraph. The result
is a ``torch.fx.GraphModule`` whose submodules are standard torch layers
(``nn.Conv2d``, ``nn.Linear``, ``nn.BatchNorm2d``, ``nn.ReLU``, ...) holding the
ONNX initializers as parameters, and whose other nodes are plain torch
functions (``torch.cat``, ``torch.reshape``, ``operator.add``, ...). Why: the
rest of the flow (fx tracing, float calibration, fake-quant, accuracy checks)
is then the one code path a PyTorch model takes, and ONNX semantics
(padding, pooling, broadcasting, Gemm's alpha/beta) are checked against torch
once, here, instead of in every pass.

Import rules:

* one float32 graph input and one output; a symbolic batch dimension becomes 1
  (other symbolic dimensions need ``input_shape``);
* nodes whose inputs are all constants are folded (ONNX reference evaluator),
  and ``Shape`` is folded at the imported input shape, so the shape
  arithmetic exporters emit for ``x.view(x.size(0), -1)`` disappears;
* a ``Reshape`` that keeps dimension 0 is written with ``-1`` there, so the
  module also runs other batch sizes;
* every node's torch output shape is compared with ONNX shape inference;
* asymmetric padding is accepted only where the symmetric padding of its
  leading side gives the same windows (same output size, no ceil mode);
* ``MatMul`` by a constant matrix followed by ``Add`` of a bias becomes one
  ``nn.Linear``; the Erf form of GELU becomes ``nn.GELU``.

Module layout: this module holds :func:`load_onnx`, the input-shape handling and the
``_Importer`` core (state, errors, attributes and operands, fx emission, and the driver
``run``/``convert``/``fold``/``check_shapes``). The per-op handlers (``op_<OnnxOp>``), the
``SUPPORTED`` op list and the Erf-GELU pattern matcher live in :mod:`mapping.onnx_ops`,
mixed into ``_Importer`` as :class:`mapping.onnx_ops.OnnxOps`.
"""

from __future__ import annotations

import keyword
import re
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn

from mapping.graph import GraphError, UnsupportedOpError
from mapping.onnx_ops import SUPPORTED, OnnxOps, _erf_gelu

_RANDOM_OPS = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
               "Multinomial", "Bernoulli")


def load_onnx(path, input_shape=None) -> tuple[nn.Module, tuple[int, ...]]:
    """Import the ONNX model at ``path``: ``(module in eval mode, input shape with batch)``.

    ``input_shape`` (optional) fixes symbolic dimensions; it must agree with the static ones.
    Raises :class:`GraphError` for a file that is not a valid ONNX model and
    :class:`UnsupportedOpError` for an op or attribute torch cannot express here.
    """
    import onnx
    from onnx import shape_inference

    path = Path(path)
    if not path.is_file():
        raise GraphError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...
        raise GraphError(f"{str(path)!r} is not a valid ONNX model: {_first_line(exc)}") from exc
    if len(model.graph.node) == 0:
        raise GraphError(f"{str(path)!r} is not a valid ONNX model: the graph has no nodes")
    shape = _input_shape(model.graph, input_shape)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    x_info = _graph_inputs(fixed.graph)[0]
    for dim, n in zip(x_info.type.tensor_type.shape.dim, shape, strict=True):
        dim.Clear()
        dim.dim_value = n
    try:
        inferred = shape_inference.infer_shapes(fixed).graph
        infos = list(inferred.value_info) + list(inferred.output)
    except Exception:  # inference is only a cross-check
        infos = []
    shapes = {vi.name: _dims(vi) for vi in infos if vi.type.HasField("tensor_type")}
    return _Importer(model, shapes).run(shape), shape


# ----------------------------------------------------------------------------- helpers
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _graph_inputs(graph) -> list:
    inits = {t.name for t in graph.initializer}
    return [vi for vi in graph.input if vi.name not in inits]


def _dims(vi) -> tuple | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)


def _input_shape(graph, given) -> tuple[int, ...]:
    ins, outs = _graph_inputs(graph), list(graph.output)
    if len(ins) != 1:
        raise GraphError(f"the ONNX graph has {len(ins)} inputs "
                         f"({', '.join(v.name for v in ins)}); exactly one is supported")
    if len(outs) != 1:
        raise GraphError(f"the ONNX graph has {len(outs)} outputs "
                         f"({', '.join(v.name for v in outs)}); exactly one is supported")
    x = ins[0]
    tt = x.type.tensor_type
    if not x.type.HasField("tensor_type") or tt.elem_type != 1:
        raise GraphError(f"ONNX input {x.name!r} must be a float32 tensor")
    dims = _dims(x)
    if dims is None:
        if given is None:
            raise GraphError(f"ONNX input {x.name!r} has no shape; give the input shape")
        return tuple(int(d) for d in given)
    if given is not None:
        given = tuple(int(d) for d in given)
        if len(given) != len(dims) or any(d is not None and d != g
                                          for d, g in zip(dims, given, strict=True)):
            shown = tuple("?" if d is None else d for d in dims)
            raise GraphError(f"input shape {given} does not fit ONNX input {x.name!r} "
                             f"of shape {shown}")
        return given
    if any(d is None for d in dims[1:]):
        raise GraphError(f"ONNX input {x.name!r} has a symbolic dimension after the batch "
                         f"dimension {tuple('?' if d is None else d for d in dims)}; "
                         "give the input shape")
    return (1 if dims[0] is None else dims[0], *dims[1:])


def _ident(name: str, fallback: str) -> str:
    s = re.sub(r"\W+", "_", name).strip("_") or fallback
    return f"n_{s}" if s[0].isdigit() or keyword.iskeyword(s) else s




# ----------------------------------------------------------------------------- importer
class _Importer(OnnxOps):
    """One ONNX graph -> one fx.GraphModule; the op handlers come from :class:`OnnxOps`."""

    def __init__(self, model, shapes: dict):
        self.graph_proto = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.shapes = shapes
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.consts: dict[str, np.ndarray] = {}
        self.vals: dict[str, fx.Node] = {}
        self.ex: dict[fx.Node, torch.Tensor] = {}
        self.const_nodes: dict[str, fx.Node] = {}
        self.matmul_linear: dict[str, nn.Linear] = {}
        self.uses = Counter(i for n in self.graph_proto.node for i in n.input if i)
        self.uses.update(o.name for o in self.graph_proto.output)
        self.node = None

    # ------------------------------------------------------------ errors
    def err(self, what: str) -> UnsupportedOpError:
        n = self.node
        return UnsupportedOpError(f"ONNX node {n.name or n.output[0]!r} ({n.op_type}): {what}")

    def unsupported(self) -> UnsupportedOpError:
        dom = f" in domain {self.node.domain!r}" if self.node.domain not in ("", "ai.onnx") else ""
        return self.err(f"unsupported op{dom}; supported: {SUPPORTED}")

    # ------------------------------------------------------------ attributes, operands
    def attr(self, name: str, default=None):
        from onnx import helper

        for a in self.node.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, i: int, what: str) -> np.ndarray:
        name = self.node.input[i] if i < len(self.node.input) else ""
        if name not in self.consts:
            raise self.err(f"{what} must be a constant (initializer or Constant)")
        return self.consts[name]

    def opt_const(self, i: int):
        name = self.node.input[i] if i < len(self.node.input) else ""
        return self.const(i, f"input {i}") if name else None

    def value(self, name: str) -> fx.Node:
        if name in self.vals:
            return self.vals[name]
        if name in self.consts:
            if name not in self.const_nodes:
                attr = _ident("c_" + name, "c")
                while hasattr(self.root, attr) or hasattr(fx.GraphModule, attr):
                    attr += "_"
                self.root.register_buffer(attr, torch.from_numpy(np.array(self.consts[name])))
                self.const_nodes[name] = self.add("get_attr", attr, ())
            return self.const_nodes[name]
        raise self.err(f"input {name!r} is not produced by any node")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.ex[self.value(name)].shape)

    # ------------------------------------------------------------ fx emission
    def add(self, kind: str, target, args: tuple, kwargs=None) -> fx.Node:
        n = self.graph.create_node(kind, target, args, kwargs or {})
        if kind == "get_attr":
            self.ex[n] = getattr(self.root, target)
            return n
        ex_args = fx.node.map_arg(args, lambda a: self.ex[a])
        ex_kwargs = fx.node.map_arg(kwargs or {}, lambda a: self.ex[a])
        fn = getattr(self.root, target) if kind == "call_module" else target
        try:
            with torch.no_grad():
                self.ex[n] = fn(*ex_args, **ex_kwargs)
        except Exception as exc:
            raise self.err(f"torch rejects it: {_first_line(exc)}") from exc
        return n

    def module(self, module: nn.Module, *args) -> fx.Node:
        name = _ident(self.node.name or self.node.output[0], self.node.op_type.lower())
        base, k = name, 1
        while hasattr(self.root, name) or hasattr(fx.GraphModule, name):
            name, k = f"{base}_{k}", k + 1
        self.root.add_module(name, module)
        return self.add("call_module", name, args)

    def call(self, fn, *args, **kwargs) -> fx.Node:
        return self.add("call_function", fn, args, kwargs)

    def load(self, m: nn.Module, **tensors) -> None:
        """Copy the ONNX constants into ``m``'s parameters/buffers (float32, shapes checked)."""
        for k, v in tensors.items():
            if v is None:
                continue
            t = torch.from_numpy(np.array(v, dtype=np.float32))
            cur = getattr(m, k)
            if tuple(cur.shape) != tuple(t.shape):
                raise self.err(f"{k} of shape {tuple(t.shape)} does not fit "
                               f"{type(m).__name__} {k} {tuple(cur.shape)}")
            with torch.no_grad():
                cur.copy_(t)

    def x(self) -> fx.Node:
        return self.value(self.node.input[0])

    # ------------------------------------------------------------ driver
    def run(self, shape: tuple[int, ...]) -> fx.GraphModule:
        g = self.graph_proto
        from onnx import numpy_helper

        for t in g.initializer:
            self.consts[t.name] = numpy_helper.to_array(t)
        x_name = _graph_inputs(g)[0].name
        ph = self.graph.placeholder(_ident(x_name, "x"))
        self.ex[ph] = torch.zeros(shape)
        self.vals[x_name] = ph
        gelu = _erf_gelu(g.node, self.consts, self.uses)
        skip = {m.output[0] for _x, members in gelu.values() for m in members}
        for node in g.node:
            self.node = node
            if node.output[0] in skip:
                continue
            if node.output[0] in gelu:
                x = self.value(gelu[node.output[0]][0])
                self.vals[node.output[0]] = self.module(nn.GELU(), x)
            else:
                self.convert(node)
            self.check_shapes(node)
        out = g.output[0].name
        if out not in self.vals:
            raise GraphError(f"ONNX output {out!r} is a constant; the model must compute it "
                             "from its input")
        self.graph.output(self.vals[out])
        self.graph.lint()
        gm = fx.GraphModule(self.root, self.graph, class_name="OnnxModule")
        return gm.eval()

    def convert(self, node) -> None:
        used = [o for o in node.output[1:] if o and self.uses[o]]
        if used and node.op_type != "Split":
            raise self.err(f"output {used[0]!r} is used; only the first output is supported")
        if node.domain not in ("", "ai.onnx"):
            raise self.unsupported()
        ins = [i for i in node.input if i]
        if node.op_type == "Shape" and ins[0] in self.vals:
            s = self.shape(ins[0])
            start, end = self.attr("start", 0), self.attr("end", len(s))
            self.consts[node.output[0]] = np.array(s[start:end], dtype=np.int64)
            return
        if all(i in self.consts for i in ins) and node.op_type not in _RANDOM_OPS:
            self.fold(node)
            return
        handler = getattr(self, "op_" + node.op_type, None)
        if handler is None:
            raise self.unsupported()
        try:
            result = handler()
        except GraphError:
            raise
        except Exception as exc:  # a torch layer constructor refusing the attributes
            raise self.err(f"torch rejects it: {_first_line(exc)}") from exc
        if isinstance(result, fx.Node):
            self.vals[node.output[0]] = result
        elif isinstance(result, list):  # one value per output (Split)
            self.vals.update((o, r) for o, r in zip(node.output, result, strict=True) if o)

    def fold(self, node) -> None:
        import onnx
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        ins = [i for i in node.input if i]
        # a one-node graph run at the model's opset (a bare NodeProto is run at the newest
        # opset: Unsqueeze-11's ``axes`` attribute would be refused)
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(
                np.asarray(self.consts[i]).dtype), np.shape(self.consts[i])) for i in ins],
            [helper.make_value_info(o, onnx.TypeProto()) for o in node.output if o])
        try:
            ev = ReferenceEvaluator(graph, opsets={"": self.opset})
            outs = ev.run(None, {i: self.consts[i] for i in ins})
        except Exception as exc:
            raise self.err(f"cannot fold its constant inputs: {_first_line(exc)}") from exc
        for name, v in zip(node.output, outs, strict=False):
            if name:
                self.consts[name] = np.asarray(v)

    def check_shapes(self, node) -> None:
        if node.op_type in ("MaxPool", "AveragePool") and self.attr("ceil_mode", 0):
            return  # onnx's inference counts windows starting in the end padding; the spec
            # (and torch) drop them
        for name in node.output:
            want = self.shapes.get(name)
            if name not in self.vals or want is None:
                continue
            got = self.shape(name)
            if len(got) != len(want) or any(w is not None and w != g
                                            for g, w in zip(got, want, strict=True)):
                raise self.err(f"torch output shape {got} differs from ONNX shape inference "
                               f"{tuple('?' if w is None else w for w in want)}")
