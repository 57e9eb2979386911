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


def collapse(rows: list[dict], keys: list[str], prefer=None) -> list[tuple[dict, list[dict]]]:
    """Group ``rows`` with equal values of ``keys`` (e.g. frontier points with the same
    objective vector); ``(representative, members)`` per group, in first-seen order.

    The representative is the member with the smallest ``prefer(row)`` (default: the
    row's position). Pareto semantics are unchanged: equal vectors are all non-dominated
    or all dominated, so a group is one point of the front shown once.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    out = []
    for members in groups.values():
        rep = min(members, key=prefer) if prefer else members[0]
        out.append((rep, members))
    return out


def varying(members: list[dict], names) -> dict[str, list]:
    """Parameters of ``names`` whose value differs among ``members`` -> sorted values."""
    out = {}
    for n in names:
        vals = sorted({m.get(n) for m in members}, key=lambda v: (str(type(v)), v))
        if len(vals) > 1:
            out[n] = vals
    return out
