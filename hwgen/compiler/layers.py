"""Program layer types: what ``hwgen.compiler.program.compile_program`` accepts.

Every layer reads and writes *named tensors* in the activation scratchpad
(NHWC, one element per word). ``src``/``src2``/``dst`` are tensor names:

- ``src=None`` reads the previous layer's output (the first layer reads the
  streamed-in input, named :data:`INPUT`);
- ``dst=None`` names the output after the layer (``ComputeLayer``: its
  ``mapping.layer``); every tensor is written once;
- ``AddLayer.src2`` names the skip operand explicitly: any earlier tensor.

The compiler allocates each tensor an address range for its live range (its
producer to its last reader; the program output lives to the end), so a
residual operand stays put across the layers in between. Shapes follow the
producer; a reader must agree on the element count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapping.schedule import LayerMapping
from mapping.windows import pool_out

INPUT = "input"  # name of the streamed-in input tensor


class ProgramError(ValueError):
    """A layer list the hardware cannot run; the message names the layer and the limit."""


def _pair(v, what: str, name: str, lo: int) -> tuple[int, int]:
    """``int`` or ``(h, w)`` -> ``(h, w)``, each an integer >= ``lo``."""
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    try:
        h, w = (int(x) for x in t)
        ok = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in t)
    except (TypeError, ValueError):
        ok = False
    if not ok or h < lo or w < lo:
        raise ProgramError(f"{name}: {what} = {v!r} must be an integer or an (h, w) pair of "
                           f"integers >= {lo}")
    return h, w


@dataclass
class ComputeLayer:
    """A GEMM or convolution with its integer operands (``mapping.quant`` semantics).

    ``weights``: GEMM view ``(gemm_k, gemm_n)`` (``mapping.quant.gemm_weights``);
    ``bias``/``mult``/``shift``: per output channel; output
    ``requantize(wrap(acc + bias), mult, shift, out_bits, relu)``. Reads
    ``N*H*W*C`` (conv) or ``M*K`` (GEMM) elements of ``src``, writes
    ``gemm_m * gemm_n`` to ``dst`` (NHWC / row-major).
    """

    mapping: LayerMapping
    weights: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    out_bits: int = 8
    relu: bool = False
    src: str | None = None
    dst: str | None = None

    @property
    def name(self) -> str:
        return self.mapping.layer


@dataclass
class FlattenLayer:
    """``torch.flatten`` of an NCHW activation before a linear layer (no instruction).

    Marks tensor ``src`` (default: the previous output) as flattened: a GEMM
    reading it gets its weight rows permuted from torch's ``(c, h, w)`` order to
    the NHWC layout. ``dst`` (default ``src``) names the flattened tensor; it
    shares ``src``'s storage.
    """

    name: str = "flatten"
    src: str | None = None
    dst: str | None = None


@dataclass
class PoolLayer:
    """Max or average pooling of an ``N x H x W x C`` (NHWC) tensor.

    ``kind``: ``"max"`` or ``"avg"``; ``kernel``/``stride``/``padding``: int or
    ``(h, w)`` (``stride=None``: the kernel, as in torch; output size
    ``floor((H + 2*pad - kernel) / stride) + 1``, padding at most half the
    kernel; ``ceil_mode`` (max only): torch's ceil rule, ``mapping.windows.pool_out``, the
    taps past the input's end are padding). Max: ``clamp(max over the window, qrange(out_bits, relu))``
    (padding never wins). Avg: ``requantize(sum over the window, mult, shift,
    out_bits, relu)`` (padding adds 0; ``mult``/``shift`` per tensor, the
    multiplier of ``1/window``), exactly ``sim.golden``'s ``avgpool2d``.
    """

    name: str
    kind: str
    H: int
    W: int
    C: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0
    mult: int = 0
    shift: int = 1
    out_bits: int = 8
    relu: bool = False
    N: int = 1
    src: str | None = None
    dst: str | None = None
    ceil_mode: bool = False  # max only: torch's ceil_mode (the last windows are clipped)

    def geometry(self) -> dict[str, int]:
        """Validated ``kh, kw, sh, sw, ph, pw, P, Q`` (raises ProgramError)."""
        if self.ceil_mode and self.kind != "max":
            raise ProgramError(f"{self.name}: ceil_mode is supported for max pooling only (an "
                               "average's clipped windows have other divisors)")
        if self.kind not in ("max", "avg"):
            raise ProgramError(f"{self.name}: pool kind {self.kind!r} must be 'max' or 'avg'")
        for f in ("N", "H", "W", "C"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ProgramError(f"{self.name}: {f} = {v!r} must be a positive integer")
        kh, kw = _pair(self.kernel, "kernel", self.name, 1)
        sh, sw = _pair(self.kernel if self.stride is None else self.stride, "stride",
                       self.name, 1)
        ph, pw = _pair(self.padding, "padding", self.name, 0)
        if ph > kh // 2 or pw > kw // 2:
            raise ProgramError(f"{self.name}: padding {(ph, pw)} must be at most half the "
                               f"kernel {(kh, kw)}")
        P, Q = (pool_out(self.H, kh, sh, ph, bool(self.ceil_mode)),  # noqa: N806
                pool_out(self.W, kw, sw, pw, bool(self.ceil_mode)))
        if P < 1 or Q < 1:
            raise ProgramError(f"{self.name}: kernel {(kh, kw)} larger than the padded input "
                               f"{(self.H + 2 * ph, self.W + 2 * pw)}")
        return dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, P=P, Q=Q)

    @property
    def in_elements(self) -> int:
        return self.N * self.H * self.W * self.C


@dataclass
class AddLayer:
    """Residual add, element by element, of tensors ``a = src`` and ``b = src2``:
    ``clamp((a*ma + b*mb + 2**(shift-1)) >> shift, qrange(out_bits, relu))``
    (``mapping.quant.requantize_add``). ``shape``: any shape of the operands
    (e.g. torch's NCHW); only its element count is used, the output keeps the
    operands' NHWC layout."""

    name: str
    shape: tuple[int, ...]
    ma: int
    mb: int
    shift: int
    out_bits: int = 8
    relu: bool = False
    src: str | None = None
    src2: str | None = None
    dst: str | None = None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class LutLayer:
    """Element-wise activation by table lookup (``act`` ops, ``mapping.quant.lut``):
    ``dst[i] = table[src[i] - qmin]`` with ``qmin = -len(table) // 2``. ``table``: the
    ``2**in_bits`` int64 entries of ``mapping.quant.act_table`` (one per input value,
    each within ``qrange(out_bits)``). ``shape``: any shape of the operand (only its
    element count is used; the output keeps the operand's layout)."""

    name: str
    shape: tuple[int, ...]
    table: np.ndarray
    out_bits: int = 8
    src: str | None = None
    dst: str | None = None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class DwLayer:
    """Depthwise convolution of an ``N x H x W x C`` (NHWC) tensor, run on the element-wise
    engine (``hwgen.rtl.depthwise``): per channel ``c`` and output pixel,
    ``acc = wrap(bias[c] + sum over taps of x[tap, c] * weights[c, i, j], acc_bits)``
    (padding taps are 0), output ``requantize(acc, mult[c], shift[c], out_bits, relu)``,
    exactly ``sim.golden``'s grouped conv with ``groups = C``.

    ``weights``: ``(C, kh, kw)`` integers (torch's ``(C, 1, kh, kw)`` accepted);
    ``bias``/``mult``/``shift``: per channel; ``stride``/``padding``/``dilation``: int or
    ``(h, w)``; output ``P x Q`` as torch's conv2d.
    """

    name: str
    H: int
    W: int
    C: int
    weights: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    out_bits: int = 8
    relu: bool = False
    N: int = 1
    src: str | None = None
    dst: str | None = None

    def geometry(self) -> dict[str, int]:
        """Validated ``kh, kw, sh, sw, ph, pw, dh, dw, P, Q`` (raises ProgramError)."""
        for f in ("N", "H", "W", "C"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ProgramError(f"{self.name}: {f} = {v!r} must be a positive integer")
        w = np.asarray(self.weights)
        if w.ndim == 4 and w.shape[1] == 1:
            w = w[:, 0]
        if w.ndim != 3 or w.shape[0] != self.C or not np.issubdtype(w.dtype, np.integer):
            raise ProgramError(f"{self.name}: weights must be integers of shape (C, kh, kw) "
                               f"with C={self.C}; got {w.dtype} of shape {np.shape(self.weights)}")
        kh, kw = int(w.shape[1]), int(w.shape[2])
        sh, sw = _pair(self.stride, "stride", self.name, 1)
        ph, pw = _pair(self.padding, "padding", self.name, 0)
        dh, dw = _pair(self.dilation, "dilation", self.name, 1)
        P = (self.H + 2 * ph - dh * (kh - 1) - 1) // sh + 1  # noqa: N806
        Q = (self.W + 2 * pw - dw * (kw - 1) - 1) // sw + 1  # noqa: N806
        if P < 1 or Q < 1:
            raise ProgramError(f"{self.name}: dilated kernel {(kh, kw)} larger than the padded "
                               f"input {(self.H + 2 * ph, self.W + 2 * pw)}")
        return dict(kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, P=P, Q=Q)

    def kernel(self) -> np.ndarray:
        """``(C, kh, kw)`` int64 weights."""
        w = np.asarray(self.weights, dtype=np.int64)
        return w[:, 0] if w.ndim == 4 else w

    @property
    def in_elements(self) -> int:
        return self.N * self.H * self.W * self.C
