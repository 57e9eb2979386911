"""The strided copy layer (``EltKind.COPY``): channel concatenation and broadcasts.

A :class:`CopyLayer` copies ``pixels`` pixels of ``channels`` channels from tensor
``src`` (pixel ``t`` at element ``t*src_stride``) into tensor ``dst`` (pixel ``t`` at
element ``t*dst_stride + dst_offset``). Concatenation along channels of NHWC tensors is
one copy per input into its channel slice of the wider tensor (``dst_stride`` = all
channels, ``dst_offset`` = the input's first channel); several copies may write one
``dst`` (``dst_elements`` its size, the same in every copy). ``src_stride = 0``
broadcasts one pixel (adaptive average pooling of a 1x1 map to a larger size).

The values are copied unchanged (the inputs of a concat share one scale:
``mapping.passes.quant_concat``). Timing: ``mapping.timing.copy_cycles``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwgen.compiler.isa import EltKind, Op, elt_layout, encode
from hwgen.compiler.layers import ProgramError
from mapping import timing
from mapping.arch import ArchSpec


@dataclass
class CopyLayer:
    """``dst[t*dst_stride + dst_offset + c] = src[t*src_stride + c]`` for every pixel
    ``t < pixels`` and channel ``c < channels`` (elements of the NHWC tensors; the
    source starts at element ``src_offset``)."""

    name: str
    pixels: int
    channels: int
    src_stride: int
    dst_stride: int
    dst_offset: int
    src_elements: int
    dst_elements: int
    out_bits: int = 8
    src: str | None = None
    dst: str | None = None
    dst_hwc: tuple[int, int, int] | None = None  # the destination's (H, W, C) (for flatten)
    src_offset: int = 0  # element of ``src`` where pixel 0 starts

    def check(self, arch: ArchSpec) -> None:
        """ProgramError naming the layer if the geometry is not a copy inside both tensors."""
        vals = {f: getattr(self, f) for f in ("pixels", "channels", "src_stride", "dst_stride",
                                              "dst_offset", "src_elements", "dst_elements",
                                              "src_offset")}
        for f, v in vals.items():
            lo = 1 if f in ("pixels", "channels", "src_elements", "dst_elements") else 0
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ProgramError(f"{self.name}: {f} = {v!r} must be an integer >= {lo}")
        if self.src_offset + (self.pixels - 1) * self.src_stride + self.channels \
                > self.src_elements:
            raise ProgramError(f"{self.name}: copy reads past the end of its source "
                               f"({self.src_elements} elements)")
        if self.pixels > 1 and self.dst_stride < self.channels:
            raise ProgramError(f"{self.name}: destination pixel stride {self.dst_stride} is "
                               f"smaller than the {self.channels} channels copied")
        if (self.pixels - 1) * self.dst_stride + self.dst_offset + self.channels \
                > self.dst_elements:
            raise ProgramError(f"{self.name}: copy writes past the end of its destination "
                               f"({self.dst_elements} elements)")
        if not isinstance(self.out_bits, (int, np.integer)) or \
                not 2 <= self.out_bits <= arch.in_bits:
            raise ProgramError(f"{self.name}: out_bits={self.out_bits} must be "
                               f"2..in_bits={arch.in_bits}")


def copy_instruction(arch: ArchSpec, x: CopyLayer, layer_id: int, src: int, dst: int) -> int:
    """The ELT word of a copy from tensor base ``src`` into tensor base ``dst``: a one-tap
    max pool (``kh = kw = H = W = 1``, so the ``Pool`` unit passes values through) whose
    pixel walk steps the source by ``dq`` and the destination by ``dp``."""
    x.check(arch)
    f = dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.COPY, relu=0, out_bits=x.out_bits,
             src=src, dst=dst + x.dst_offset, count=x.channels, N=x.pixels, P=1, Q=1,
             H=1, W=1, kh=1, kw=1, pix0=src + x.src_offset, dq=x.src_stride, dp=x.dst_stride)
    return encode(elt_layout(arch), f, f"{x.name} ELT")


def copy_cycles(arch: ArchSpec, x: CopyLayer) -> int:
    return timing.copy_cycles(x.pixels, x.channels, arch)
