"""Structured pruning to a MAC budget.

:func:`prune_to_macs` finds the smallest uniform structured-pruning fraction
that brings a model's MACs (of its traced ``DataflowGraph``) under a budget;
fine-tune the result with ``models.finetune.finetune``.
"""

from __future__ import annotations

from torch import nn

from mapping.graph import trace
from mapping.passes.prune import ChannelPlan, PruneError, apply_plan, plan_channels


def prune_to_macs(model: nn.Module, example_input, mac_fraction: float, norm: str = "l2",
                  layers=None, resolution: int = 256) -> tuple[nn.Module, ChannelPlan]:
    """Structured pruning with the smallest uniform fraction ``k / resolution`` whose
    pruned model has at most ``mac_fraction`` of the original MACs (traced graph).

    Raises :class:`PruneError` when even the largest fraction (keeping one channel
    per layer at most) cannot reach the budget.
    """
    if isinstance(mac_fraction, bool) or not isinstance(mac_fraction, (int, float)) \
            or not 0.0 < float(mac_fraction) <= 1.0:
        raise PruneError(f"mac_fraction must be in (0, 1], got {mac_fraction!r}")
    total = trace(model, example_input).total_macs

    def attempt(k: int) -> tuple[nn.Module, ChannelPlan, float]:
        plan = plan_channels(model, example_input, k / resolution, norm, layers)
        pruned = apply_plan(model, example_input, plan)
        return pruned, plan, trace(pruned, example_input).total_macs / total

    lo, hi = 0, resolution - 1  # MAC fraction is non-increasing in k
    best = attempt(hi)
    if best[2] > mac_fraction:
        raise PruneError(f"cannot reach {mac_fraction:.3f} of the MACs by pruning "
                         f"{layers or 'the prunable layers'}: the most pruned model still "
                         f"has {best[2]:.3f}")
    while lo < hi:
        mid = (lo + hi) // 2
        cand = attempt(mid)
        if cand[2] <= mac_fraction:
            hi, best = mid, cand
        else:
            lo = mid + 1
    return best[0], best[1]
