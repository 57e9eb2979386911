"""``prepare``: the standard front-end pipeline trace -> fold -> fuse -> quantize -> lower."""

from __future__ import annotations

from mapping.graph import DataflowGraph, trace
from mapping.passes.fold import fold_batchnorm
from mapping.passes.fuse import fuse_activations
from mapping.passes.lower import lower
from mapping.passes.quantize import quantize


def prepare(module, example_input, calib_inputs, bits: int = 8, w_bits: int | None = None,
            acc_bits: int = 32, per_layer_bits: dict | None = None) -> DataflowGraph:
    """Trace ``module`` and return the folded, fused, quantised and lowered graph.

    ``calib_inputs``: a float batch (numpy or torch, batch on dim 0) for
    max-abs calibration; see :func:`mapping.passes.quantize.quantize` for the rest.
    """
    g = fuse_activations(fold_batchnorm(trace(module, example_input)))
    g = quantize(g, calib_inputs, bits=bits, w_bits=w_bits, acc_bits=acc_bits,
                 per_layer_bits=per_layer_bits)
    return lower(g)
