"""``LoopNest``: the 7-D loop nest of one compute layer, and its GEMM view.

A convolution is ``out[n, k, p, q] += in[n, c, p*stride + r*dilation - pad,
q*stride + s*dilation - pad] * w[k, c, r, s]``. A GEMM ``out[m, n] += a[m, k] *
w[k, n]`` is the special case ``N=M, K=N, C=K, P=Q=R=S=1``.

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


@dataclass(frozen=True)
class LoopNest:
    """One compute layer's loop nest. ``kind`` is ``"gemm"`` or ``"conv"``.

    ``in_bits``/``w_bits``/``out_bits`` are operand widths after quantisation.
    For a GEMM built with :meth:`gemm`, ``N`` holds M, ``K`` holds N and ``C``
    holds K (see the module docstring); use the ``gemm_*`` properties.
    """

    kind: str
    N: int = 1
    K: int = 1
    C: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    H: int = 1  # input height (conv); P = (H + 2*pad - dilation*(R-1) - 1)//stride + 1
    W: int = 1  # input width
    in_bits: int = 8
    w_bits: int = 8
    out_bits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in ("gemm", "conv"):
            raise LoopNestError(f"LoopNest.kind = {self.kind!r}; allowed: 'gemm', 'conv'")
        for f in ("N", "K", "C", "P", "Q", "R", "S", "stride", "dilation", "H", "W"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise LoopNestError(f"LoopNest.{f} = {v!r}; must be a positive integer")
        if not isinstance(self.padding, int) or self.padding < 0:
            raise LoopNestError(f"LoopNest.padding = {self.padding!r}; must be >= 0")
        if self.kind == "conv":
            for dim, size, r in (("P", self.H, self.R), ("Q", self.W, self.S)):
                want = (size + 2 * self.padding - self.dilation * (r - 1) - 1) // self.stride + 1
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
    def conv(cls, N: int, K: int, C: int, H: int, W: int, R: int, S: int, stride: int = 1,
             padding: int = 0, dilation: int = 1, **bits: int) -> LoopNest:
        P = (H + 2 * padding - dilation * (R - 1) - 1) // stride + 1
        Q = (W + 2 * padding - dilation * (S - 1) - 1) // stride + 1
        if P < 1 or Q < 1:
            raise LoopNestError(f"convolution output would be {P}x{Q}: kernel larger than input")
        return cls(kind="conv", N=N, K=K, C=C, P=P, Q=Q, R=R, S=S, stride=stride,
                   padding=padding, dilation=dilation, H=H, W=W, **bits)

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
        h = p * self.stride + r * self.dilation - self.padding
        w = q * self.stride + s * self.dilation - self.padding
        if 0 <= h < self.H and 0 <= w < self.W:
            return (n, c, h, w)
        return None

    def describe(self) -> str:
        if self.kind == "gemm":
            return f"gemm M={self.gemm_m} N={self.gemm_n} K={self.gemm_k}"
        return (f"conv N={self.N} K={self.K} C={self.C} {self.H}x{self.W}->{self.P}x{self.Q} "
                f"k={self.R}x{self.S} s={self.stride} p={self.padding} d={self.dilation}")
