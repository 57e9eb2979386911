"""``LoopNest``: the 7-D loop nest of one compute layer, and its GEMM view.

A convolution is ``out[n, k, p, q] += in[n, c, p*stride_h + r*dil_h - pad_h,
q*stride_w + s*dil_w - pad_w] * w[k, c, r, s]`` (per-axis geometry: a Conv1d is
the height-1 case ``H=R=1``). A GEMM ``out[m, n] += a[m, k] * w[k, n]`` is the
special case ``N=M, K=N, C=K, P=Q=R=S=1``.

The array never sees the 7-D form: every nest is executed in its *GEMM view*
(implicit im2col, never materialised):

- ``gemm_m = N * P * Q``   output pixels (rows of the im2col matrix)
- ``gemm_k = C * R * S``   reduction length, ordered ``(r, s, c)`` with ``c`` fastest
- ``gemm_n = K``           output channels

``im2col_index(m, k)`` gives the input-tensor coordinate an element of the
virtual im2col matrix comes from (or None for a padding zero); the hardware's
address generator and the golden model both follow it.
"""

from __future__ import annotations

from dataclasses import dataclass


class LoopNestError(ValueError):
    """A loop nest with impossible dimensions; the message names the field."""


def axis_pair(v: int | tuple[int, int] | list[int], what: str) -> tuple[int, int]:
    """A conv geometry argument as ``(h, w)``: an int means the same on both axes
    (``mapping.graph.pair``'s rule; restated here because ``mapping.graph`` imports us)."""
    if isinstance(v, (tuple, list)) and len(v) == 2:
        h, w = v
    elif isinstance(v, (tuple, list)):
        raise LoopNestError(f"LoopNest {what} = {v!r}; allowed: an int or an (h, w) pair")
    else:
        h = w = v
    out = []
    for x in (h, w):
        if not hasattr(x, "__index__") or isinstance(x, bool):
            raise LoopNestError(f"LoopNest {what} = {v!r}; allowed: an int or an (h, w) pair")
        out.append(int(x))
    return out[0], out[1]


def _out_size(size: int, taps: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (taps - 1) - 1) // stride + 1


@dataclass(frozen=True)
class LoopNest:
    """One compute layer's loop nest. ``kind`` is ``"gemm"`` or ``"conv"``.

    ``in_bits``/``w_bits``/``out_bits`` are operand widths after quantisation.
    For a GEMM built with :meth:`gemm`, ``N`` holds M, ``K`` holds N and ``C``
    holds K (see the module docstring); use the ``gemm_*`` properties. A conv's
    stride, padding and dilation are per axis (``_h`` along H/P/R, ``_w`` along
    W/Q/S); :meth:`conv` takes an int or an ``(h, w)`` pair for each.
    """

    kind: str
    N: int = 1
    K: int = 1
    C: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dil_h: int = 1
    dil_w: int = 1
    H: int = 1  # input height (conv); P = (H + 2*pad_h - dil_h*(R-1) - 1)//stride_h + 1
    W: int = 1  # input width;         Q = (W + 2*pad_w - dil_w*(S-1) - 1)//stride_w + 1
    in_bits: int = 8
    w_bits: int = 8
    out_bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("gemm", "conv"):
            raise LoopNestError(f"LoopNest.kind = {self.kind!r}; allowed: 'gemm', 'conv'")
        for f in ("N", "K", "C", "P", "Q", "R", "S", "stride_h", "stride_w", "dil_h", "dil_w",
                  "H", "W"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise LoopNestError(f"LoopNest.{f} = {v!r}; must be a positive integer")
        for f in ("pad_h", "pad_w"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise LoopNestError(f"LoopNest.{f} = {v!r}; must be >= 0")
        if self.kind == "conv":
            for dim, size, r, st, pd, dl in (
                    ("P", self.H, self.R, self.stride_h, self.pad_h, self.dil_h),
                    ("Q", self.W, self.S, self.stride_w, self.pad_w, self.dil_w)):
                want = _out_size(size, r, st, pd, dl)
                if want != getattr(self, dim):
                    raise LoopNestError(
                        f"LoopNest.{dim} = {getattr(self, dim)} does not match the input size "
                        f"and kernel (expected {want})"
                    )

    # ----------------------------------------------------------- constructors
    @classmethod
    def gemm(cls, M: int, N: int, K: int, **bits: int) -> LoopNest:
        """``out[M, N] = a[M, K] @ w[K, N]``."""
        return cls(kind="gemm", N=M, K=N, C=K, **bits)

    @classmethod
    def conv(cls, N: int, K: int, C: int, H: int, W: int, R: int, S: int,
             stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
             dilation: int | tuple[int, int] = 1, **bits: int) -> LoopNest:
        """A convolution of an ``N x C x H x W`` input with ``K x C x R x S`` weights;
        ``stride``/``padding``/``dilation``: an int (both axes) or an ``(h, w)`` pair."""
        (sh, sw), (ph, pw), (dh, dw) = (axis_pair(v, n) for v, n in (
            (stride, "stride"), (padding, "padding"), (dilation, "dilation")))
        P, Q = _out_size(H, R, sh, ph, dh), _out_size(W, S, sw, pw, dw)
        if P < 1 or Q < 1:
            raise LoopNestError(f"convolution output would be {P}x{Q}: kernel larger than input")
        return cls(kind="conv", N=N, K=K, C=C, P=P, Q=Q, R=R, S=S, stride_h=sh, stride_w=sw,
                   pad_h=ph, pad_w=pw, dil_h=dh, dil_w=dw, H=H, W=W, **bits)

    # -------------------------------------------------------------- GEMM view
    @property
    def gemm_m(self) -> int:
        return self.N * self.P * self.Q

    @property
    def gemm_k(self) -> int:
        return self.C * self.R * self.S

    @property
    def gemm_n(self) -> int:
        return self.K

    @property
    def macs(self) -> int:
        return self.gemm_m * self.gemm_k * self.gemm_n

    @property
    def weight_count(self) -> int:
        return self.gemm_k * self.gemm_n

    def im2col_index(self, m: int, k: int) -> tuple[int, int, int, int] | None:
        """Input coordinate ``(n, c, h, w)`` of im2col element ``(m, k)``; None = padding zero.

        For a GEMM the "input" is ``a[m, k]`` and this returns ``(m, k, 0, 0)``.
        """
        if self.kind == "gemm":
            return (m, k, 0, 0)
        n, pq = divmod(m, self.P * self.Q)
        p, q = divmod(pq, self.Q)
        rs, c = divmod(k, self.C)
        r, s = divmod(rs, self.S)
        h = p * self.stride_h + r * self.dil_h - self.pad_h
        w = q * self.stride_w + s * self.dil_w - self.pad_w
        if 0 <= h < self.H and 0 <= w < self.W:
            return (n, c, h, w)
        return None

    def describe(self) -> str:
        if self.kind == "gemm":
            return f"gemm M={self.gemm_m} N={self.gemm_n} K={self.gemm_k}"

        def ax(h: int, w: int) -> str:
            return str(h) if h == w else f"{h}x{w}"

        return (f"conv N={self.N} K={self.K} C={self.C} {self.H}x{self.W}->{self.P}x{self.Q} "
                f"k={self.R}x{self.S} s={ax(self.stride_h, self.stride_w)} "
                f"p={ax(self.pad_h, self.pad_w)} d={ax(self.dil_h, self.dil_w)}")
