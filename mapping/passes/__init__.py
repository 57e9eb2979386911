"""Graph passes: plain functions ``DataflowGraph -> DataflowGraph`` that never mutate their input."""

from mapping.passes.float_exec import run_float_graph
from mapping.passes.fold import fold_batchnorm
from mapping.passes.fuse import fuse_activations
from mapping.passes.lower import lower
from mapping.passes.pipeline import (
    calibration_inputs,
    prepare,
    prepare_entry,
    shapes_for_mapping,
)
from mapping.passes.prune import (
    PruneError,
    apply_plan,
    mask_channels,
    plan_channels,
    prune_channels,
    prune_graph,
    prune_magnitude,
)
from mapping.passes.prune_budget import prune_to_macs
from mapping.passes.quantize import calibrate, quantize

__all__ = [
    "PruneError",
    "apply_plan",
    "mask_channels",
    "plan_channels",
    "prune_channels",
    "prune_graph",
    "prune_magnitude",
    "prune_to_macs",
    "calibrate",
    "calibration_inputs",
    "fold_batchnorm",
    "fuse_activations",
    "lower",
    "prepare",
    "prepare_entry",
    "shapes_for_mapping",
    "quantize",
    "run_float_graph",
]
