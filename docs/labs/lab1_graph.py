"""Lab 1 — get to know the framework: models, DataflowGraphs, quantisation, the golden model.

Run:  python docs/labs/lab1_graph.py [--fast]

What you learn
--------------
1. The model zoo (``models``): named PyTorch models with their data sets and
   trained checkpoints.
2. ``mapping.graph.trace`` turns a ``torch.nn.Module`` into a
   ``DataflowGraph``: one node per operation, one edge per tensor. Every
   later step (passes, mapper, hardware generator) reads this graph, never the
   PyTorch module.
3. What a node holds (``mapping.graph.Node``):

   - ``name``      unique key (the torch.fx node name: ``fc1``, ``relu1``, ...),
   - ``op``        the canonical operation (``linear``, ``conv2d``, ``relu``, ...),
   - ``inputs``    names of the nodes it reads, in argument order,
   - ``in_shapes`` / ``out_shape``  tensor shapes *including the batch dim*,
   - ``attrs``     op attributes (stride, padding, kernel, ``fused_relu``, ...),
   - ``params``    numpy arrays (``weight``, ``bias``; after quantisation also
                   ``qweight`` / ``qbias``, the integers the hardware stores),
   - ``quant``     a ``QuantSpec`` once quantised (bits, scale, requantisation),
   - ``nest``      a ``LoopNest`` (the GEMM / convolution loop bounds) once lowered.

   ``node.macs`` counts multiply-accumulates (linear: in x out; conv2d:
   output elements x C x R x S).
4. The graph *is* a ``networkx.DiGraph`` (``g.nx``): you can run any graph
   algorithm on it (topological order, longest path, degrees, ...).
5. Quantisation (``mapping.passes.prepare``) and the integer reference
   ``sim.golden``: what the accelerator will compute, in plain numpy.

Quantisation semantics (``mapping/quant.py`` is the contract): symmetric
signed integers, zero point 0. An activation tensor with calibration maximum
``max|x|`` gets the scale ``s = max|x| / (2**(b-1) - 1)`` and is stored as
``q = clamp(floor(x / s + 0.5))``; weights get one scale per output channel.
A layer accumulates ``sum(q_in * q_w) + q_bias`` exactly in an
``acc_bits``-wide integer and *requantises* to the next layer's scale with an
integer multiply and shift: ``(acc * mult + 2**(shift-1)) >> shift``, then
clamps to ``b`` bits (to ``[0, 2**(b-1)-1]`` when a ReLU is fused in). No
floating point is left anywhere between the input and the output logits.
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np

import models
from mapping.graph import trace
from mapping.passes import calibration_inputs, prepare
from sim import golden

MODELS = ("mlp-digits", "cnn-digits")


def inspect_graph(name: str) -> dict:
    """Trace zoo model ``name`` and print what its graph holds; return the figures."""
    entry = models.get(name)
    model = entry.load()                 # eval mode, shipped checkpoint
    x = entry.example_input(seed=0)      # one test image, shape entry.input_shape
    g = trace(model, x)                  # torch.fx + shape propagation -> DataflowGraph

    print(f"\n== {name}: {entry.description}")
    print(g.summary())                   # one row per node: op, inputs, shape, params, MACs

    # One node, field by field (the first compute node).
    node = next(n for n in g.nodes() if n.op in ("linear", "conv2d"))
    print(f"\nnode {node.name!r}: op={node.op}, inputs={node.inputs}, "
          f"in_shapes={node.in_shapes}, out_shape={node.out_shape}")
    print(f"  attrs={node.attrs}")
    print(f"  params={ {k: v.shape for k, v in node.params.items()} }, macs={node.macs:,}")

    # The graph is a networkx DiGraph: node key = name, attribute "node" = the Node,
    # edge u -> v = the tensor u produces and v reads (attribute "arg": its argument slot).
    nxg = g.nx
    order = list(nx.topological_sort(nxg))
    longest = nx.dag_longest_path(nxg)
    print(f"\nnetworkx: {nxg.number_of_nodes()} nodes, {nxg.number_of_edges()} edges, "
          f"DAG={nx.is_directed_acyclic_graph(nxg)}")
    print(f"  topological order: {' -> '.join(order)}")
    print(f"  longest path has {len(longest)} nodes; edges: "
          + ", ".join(f"{u}->{v}(arg {d['arg']})" for u, v, d in nxg.edges(data=True)))
    per_op: dict[str, int] = {}
    for n in g.nodes():
        per_op[n.op] = per_op.get(n.op, 0) + 1
    return {
        "nodes": len(g), "edges": nxg.number_of_edges(), "ops": per_op,
        "order": order, "total_macs": g.total_macs,
        "macs": {n.name: n.macs for n in g.nodes() if n.macs},
        "parameters": sum(n.param_count for n in g.nodes()),
        "out_shapes": {n.name: list(n.out_shape) for n in g.nodes()},
    }


def quantised_accuracy(name: str, bits: int) -> dict:
    """Quantise ``name`` to ``bits`` and measure the golden model on the test split."""
    entry = models.get(name)
    model = entry.load()
    ds = entry.dataset()
    # prepare = trace -> fold batch norms -> fuse ReLUs -> quantise (calibrated on
    # the training split: the max |activation| of every tensor) -> lower to LoopNests.
    gq = prepare(model, entry.example_input(), calibration_inputs(entry), bits=bits)
    # golden.predict: quantise the float images with the input scale, run the
    # integer-only model, argmax of the int logits. Any batch size works.
    if bits == 8:  # what prepare changed: ReLUs fused ("linear+relu"), a QuantSpec per node
        print(gq.summary())
    pred = golden.predict(gq, ds.x_test)
    acc_int = float(np.mean(pred == ds.y_test))
    acc_float = models.evaluate(model, ds, "test")
    fc = next(n for n in gq.nodes() if n.op in ("linear", "conv2d"))
    q = fc.quant
    print(f"{name} int{bits}: golden accuracy {acc_int:.4f} vs float {acc_float:.4f} "
          f"({len(ds.y_test)} test images); {fc.name}: {q.describe()}, "
          f"qweight range [{fc.params['qweight'].min()}, {fc.params['qweight'].max()}], "
          f"mult[0]={int(q.mult[0])} shift[0]={int(q.shift[0])}")
    return {"bits": bits, "int_accuracy": acc_int, "float_accuracy": acc_float,
            "ops_after_prepare": [n.op for n in gq.nodes()],
            "predictions": pred.tolist()}


def main(fast: bool = False) -> dict:
    """Inspect both digits models and measure their integer accuracy.

    fast: 8-bit only. Full: 8, 6, 4 and 3 bits.
    """
    t0 = time.perf_counter()
    bit_widths = (8,) if fast else (8, 6, 4, 3)
    out: dict = {"models": {}}
    for name in MODELS:
        info = inspect_graph(name)
        info["quantised"] = {b: quantised_accuracy(name, b) for b in bit_widths}
        out["models"][name] = info
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"\nlab 1 done in {out['seconds']} s")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="8-bit only")
    main(fast=parser.parse_args().fast)
