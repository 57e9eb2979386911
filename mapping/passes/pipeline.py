"""``prepare``: the standard front-end pipeline trace -> fold -> fuse -> quantize -> lower."""

from __future__ import annotations

import dataclasses

from mapping.graph import DataflowGraph, trace
from mapping.passes.fold import fold_batchnorm
from mapping.passes.fuse import fuse_activations
from mapping.passes.lower import lower
from mapping.passes.qat_import import QatImport, import_brevitas, is_brevitas
from mapping.passes.quantize import quantize


def prepare(module, example_input, calib_inputs, bits: int = 8, w_bits: int | None = None,
            acc_bits: int = 32, per_layer_bits: dict | None = None,
            qat: QatImport | bool = True) -> DataflowGraph:
    """Trace ``module`` and return the folded, fused, quantised and lowered graph.

    ``calib_inputs``: a float batch (numpy or torch, batch on dim 0) for
    max-abs calibration; see :func:`mapping.passes.quantize.quantize` for the rest.
    ``qat``: a model with Brevitas layers keeps their learned scales, bit widths and integer
    weights (:mod:`mapping.passes.qat_import`; ``False``: calibrate it like a float model;
    a :class:`QatImport`: already imported, ``module`` is its plain module).
    """
    if qat is True and is_brevitas(module):
        qat = import_brevitas(module)
    if isinstance(qat, QatImport):
        module = qat.module
    g = fuse_activations(fold_batchnorm(trace(module, example_input)))
    fixed = None
    if isinstance(qat, QatImport):
        probe = calib_inputs[0] if isinstance(calib_inputs, (tuple, list)) else calib_inputs
        fixed = qat.fixed_for(g, probe[:16])
    g = quantize(g, calib_inputs, bits=bits, w_bits=w_bits, acc_bits=acc_bits,
                 per_layer_bits=per_layer_bits, fixed=fixed)
    return lower(g)


def shapes_for_mapping(entry, bits: int = 8, w_bits: int | None = None) -> DataflowGraph:
    """The lowered graph of a zoo entry or a user's model (``entry``) whose compute nests have
    ``bits``-bit activations and ``w_bits``-bit weights (default ``bits``), without calibration:
    the mapper needs shapes and operand widths, not scales (:func:`prepare_entry` calibrates
    the quantiser on a batch, which dominates ``hwgen map`` on ImageNet-size inputs). The nests
    equal :func:`prepare_entry`'s with the same widths. A model with Brevitas layers keeps its
    learned widths: it is prepared in full."""
    module = entry.load()
    if getattr(entry, "qat", None) is not None or is_brevitas(module):
        return prepare_entry(entry, bits=bits, w_bits=w_bits)
    g = lower(fuse_activations(fold_batchnorm(trace(module, entry.example_input()))))
    wb = bits if w_bits is None else w_bits
    for n in g.compute_nodes():
        n.nest = dataclasses.replace(n.nest, in_bits=bits, w_bits=bits if n.op == "matmul"
                                     else wb, out_bits=bits)
    return g


def calibration_inputs(entry, n_random: int = 32, seed: int = 1):
    """Calibration batch for a zoo entry (duck-typed ``models.ModelEntry``).

    The whole training split when the entry has a data set; otherwise
    ``n_random`` standard-normal samples from ``torch.Generator(seed)`` (ReLU'd
    for ``input_kind == "relu-normal"``), shaped like ``entry.input_shape``.
    """
    import numpy as np
    import torch

    ds = entry.dataset()
    shape = tuple(entry.input_shape[1:])
    if ds is not None:
        return np.array(ds.x_train, dtype=np.float32).reshape((-1,) + shape)  # writable copy
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn((n_random,) + shape, generator=g)
    if getattr(entry, "input_kind", "normal") == "relu-normal":
        x = torch.relu(x)
    return x.numpy()


def prepare_entry(entry, bits: int = 8, w_bits: int | None = None, acc_bits: int = 32,
                  per_layer_bits: dict | None = None, n_random: int = 32) -> DataflowGraph:
    """:func:`prepare` for a zoo entry: its loaded model, example input and calibration data."""
    qat = getattr(entry, "qat", None) or True  # a source's Brevitas import (mapping.source)
    return prepare(entry.load(), entry.example_input(), calibration_inputs(entry, n_random),
                   bits=bits, w_bits=w_bits, acc_bits=acc_bits, per_layer_bits=per_layer_bits,
                   qat=qat)
