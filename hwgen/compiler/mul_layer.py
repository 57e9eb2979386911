"""The tensor multiply layer (``EltKind.MUL``): squeeze-excitation gates and ``x * y``.

A :class:`MulLayer` multiplies tensor ``src`` (``pixels`` pixels of ``channels``
channels, NHWC) by tensor ``src2``, element by element: ``src2`` is either one pixel of
``channels`` values, the same for every pixel (``broadcast``: the gate ``x * s`` of a
squeeze-excitation block, ``s`` of shape ``N x C x 1 x 1``), or a tensor of ``src``'s
shape. The product of the two integers is wrapped to ``acc_bits`` and requantised with
one ``mult``/``shift`` (``mapping.quant``: ``mul`` of two tensors), exactly
``sim.golden``'s ``mul``. On the element-wise engine it is the copy walk with a second
read per channel group (``hwgen.rtl.eltwise_engine``); a same-shape product is one pixel
of all its elements. Timing: ``mapping.timing.mul_cycles``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.compiler.isa import EltKind, Op, elt_layout, encode
from hwgen.compiler.layers import ProgramError
from mapping import timing
from mapping.arch import ArchSpec
from mapping.quant import MULT_BITS, SHIFT_MAX, SHIFT_MIN


@dataclass
class MulLayer:
    """``dst[t, c] = requantize(wrap(src[t, c] * src2[c], acc_bits), mult, shift, out_bits,
    relu)`` for pixel ``t < pixels`` and channel ``c < channels`` (``src2[t, c]`` when not
    ``broadcast``). The output keeps ``src``'s layout."""

    name: str
    pixels: int
    channels: int
    mult: int
    shift: int
    out_bits: int = 8
    relu: bool = False
    broadcast: bool = True  # src2 holds one pixel (a per-channel gate), else src's shape
    src: str | None = None
    src2: str | None = None
    dst: str | None = None

    @property
    def elements(self) -> int:
        """Elements of ``src`` and of the output."""
        return self.pixels * self.channels

    @property
    def gate_elements(self) -> int:
        """Elements of ``src2``."""
        return self.channels if self.broadcast else self.elements

    def check(self, arch: ArchSpec) -> None:
        """ProgramError naming the layer for a geometry or requantisation out of range."""
        for f in ("pixels", "channels", "mult", "shift", "out_bits"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise ProgramError(f"{self.name}: {f} = {v!r} must be an integer")
        if self.pixels < 1 or self.channels < 1:
            raise ProgramError(f"{self.name}: pixels = {self.pixels} and channels = "
                               f"{self.channels} must be >= 1")
        if not 0 <= self.mult < 1 << MULT_BITS or not SHIFT_MIN <= self.shift <= SHIFT_MAX:
            raise ProgramError(f"{self.name}: mult = {self.mult} must be 0..{(1 << MULT_BITS) - 1}"
                               f" and shift = {self.shift} {SHIFT_MIN}..{SHIFT_MAX}")
        if not 2 <= self.out_bits <= arch.in_bits:
            raise ProgramError(f"{self.name}: out_bits={self.out_bits} must be 2..in_bits="
                               f"{arch.in_bits} (outputs are stored in the activation "
                               "scratchpad)")
        if self.src2 is None:
            raise ProgramError(f"{self.name}: a MulLayer needs src2, the name of its second "
                               "operand (an earlier tensor)")


def mul_geometry(in_shapes, out_shape) -> tuple[int, int, bool, int] | None:
    """``(pixels, channels, broadcast, gate)`` of a ``mul`` of two tensors with these torch
    shapes (``gate``: the index of the second operand, 1 unless the per-channel gate comes
    first, as in ``s * x``), or None when the hardware cannot run it: the operands must have
    the output's shape, or one of them be one value per channel of a single image
    (``1 x C x 1 x 1`` beside ``1 x C x H x W``)."""
    shapes = [tuple(int(d) for d in s) for s in in_shapes]
    out = tuple(int(d) for d in out_shape)
    if len(shapes) != 2 or not out:
        return None
    if shapes[0] == shapes[1] == out:
        return 1, max(1, int(np.prod(out))), False, 1
    if len(out) != 4 or out[0] != 1:
        return None
    gate = (1, out[1], 1, 1)
    for g in (1, 0):
        if shapes[g] == gate and shapes[1 - g] == out:
            return out[2] * out[3], out[1], True, g
    return None


def mul_walk(x: MulLayer) -> tuple[int, int]:
    """``(pixels, channels)`` the engine walks: a same-shape product is one pixel of all its
    elements (its second operand then steps with the first)."""
    return (x.pixels, x.channels) if x.broadcast else (1, x.elements)


def mul_instruction(arch: ArchSpec, x: MulLayer, layer_id: int, src: int, src2: int,
                    dst: int) -> int:
    """The ELT word of a multiply of the tensors at ``src`` and ``src2`` into ``dst``: the copy
    walk (pixel stride = channels, for source and destination) with the gate read at
    ``src2 + c0``."""
    x.check(arch)
    n, c = mul_walk(x)
    f = dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.MUL, relu=int(x.relu),
             out_bits=x.out_bits, ma=x.mult, shift=x.shift, src=src, src2=src2, dst=dst,
             count=c, N=n, P=1, Q=1, H=1, W=1, kh=1, kw=1, pix0=src, dq=c, dp=c)
    return encode(elt_layout(arch), f, f"{x.name} ELT")


def mul_cycles(arch: ArchSpec, x: MulLayer) -> int:
    return timing.mul_cycles(*mul_walk(x), arch)
