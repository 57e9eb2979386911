"""Pareto (non-dominated) sets of objective vectors."""

from __future__ import annotations

import numpy as np

CHUNK = 512


def pareto_mask(values, directions: list[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n x k).

    ``directions[j]`` is ``"maximize"`` or ``"minimize"``. Row a dominates row b
    when a is at least as good in every objective and better in one. Equal rows
    are all kept.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must be (n, {len(directions)}), got shape {v.shape}")
    bad = [d for d in directions if d not in ("maximize", "minimize")]
    if bad:
        raise ValueError(f"directions {bad} are invalid; allowed: maximize, minimize")
    if np.isnan(v).any():
        raise ValueError("objective values contain NaN")
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    c = v * sign  # all minimised
    keep = np.ones(len(c), dtype=bool)
    for s in range(0, len(c), CHUNK):
        blk = c[s:s + CHUNK]
        le = (c[None, :, :] <= blk[:, None, :]).all(axis=2)  # others no worse than blk row
        lt = (c[None, :, :] < blk[:, None, :]).any(axis=2)
        keep[s:s + CHUNK] = ~(le & lt).any(axis=1)
    return keep
