"""Pooling windows as PyTorch defines them, per spatial axis.

- :func:`pool_out`: the output size of max/avg pooling, ``ceil_mode`` included (a
  window never starts in the right/bottom padding);
- :func:`pool_axis`: each output index's window ``[lo, hi)`` clipped to the input and
  ``avg_pool2d``'s divisor (``count_include_pad=True``: the window clipped to the padded
  input, so a ``ceil_mode`` window that runs past the end divides by fewer taps);
- :func:`adaptive_axis`: adaptive pooling's ``start = floor(i*H/oh)``,
  ``end = ceil((i+1)*H/oh)`` windows (the divisor is the window size);
- :func:`avg_windows`: both axes of an ``avgpool2d`` node (``None`` for a plain pool,
  whose divisor is the constant ``kh*kw``).
"""

from __future__ import annotations

import numpy as np


def pool_out(size: int, k: int, s: int, p: int, ceil_mode: bool = False) -> int:
    """Output size of a pooling axis (PyTorch's rule)."""
    num = size + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool_axis(size: int, k: int, s: int, p: int, ceil_mode: bool = False
              ) -> list[tuple[int, int, int]]:
    """``(lo, hi, divisor)`` of every output index of a max/avg pooling axis."""
    out = []
    for i in range(pool_out(size, k, s, p, ceil_mode)):
        start = i * s - p
        end = min(start + k, size + p)
        out.append((max(start, 0), min(end, size), end - start))
    return out


def adaptive_axis(size: int, n_out: int) -> list[tuple[int, int, int]]:
    """``(lo, hi, divisor)`` of every output index of an adaptive pooling axis."""
    out = []
    for i in range(n_out):
        lo, hi = (i * size) // n_out, -(-((i + 1) * size) // n_out)
        out.append((lo, hi, hi - lo))
    return out


def is_adaptive(attrs: dict) -> bool:
    """True for adaptive pooling to a size the input is not a multiple of (no kernel)."""
    return "kernel" not in attrs


def avg_windows(attrs: dict, h: int, w: int):
    """``(rows, cols)`` window lists of an ``avgpool2d`` with input ``h x w`` whose
    windows are not all ``kernel``-sized (adaptive to a non-divisor size, or
    ``ceil_mode``); ``None`` for a plain pool."""
    if is_adaptive(attrs):
        oh, ow = attrs["output_size"]
        return adaptive_axis(h, oh), adaptive_axis(w, ow)
    if not attrs.get("ceil_mode"):
        return None
    (kh, kw), (sh, sw), (ph, pw) = (attrs[k] for k in ("kernel", "stride", "padding"))
    return pool_axis(h, kh, sh, ph, True), pool_axis(w, kw, sw, pw, True)


def divisors(rows, cols) -> np.ndarray:
    """``(P, Q)`` int64 divisor of every window."""
    return np.outer([d for _, _, d in rows], [d for _, _, d in cols]).astype(np.int64)
