"""Row bands: how a layer whose tensors do not fit the activation scratchpad runs in pieces.

A *spilled* program keeps its tensors in external memory (docs/timing.md, "Activations in
external memory"). Each layer then runs band by band: a band is a range of output rows
``[p0, p1)``; its input rows ``[lo, hi)`` (the rows the band's windows touch, the halo of
a kernel taller than its stride included, clipped to the tensor: padding rows are never
loaded) are loaded into the scratchpad, the layer runs on them, and the band's output rows
are stored back. Rows of an NHWC tensor are contiguous, so every load and store is one
burst.

:class:`RowWindow` describes how a layer's output rows read its main input's rows;
:func:`plan_bands` cuts the output into the fewest equal bands whose buffers fit the
scratchpad (``capacity``), or raises :class:`BandError` naming the layer and the smallest
scratchpad that would hold one row. The compiler (``hwgen.compiler.spill``) and the cost
model use this one plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping import timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


class BandError(ValueError):
    """Even one output row of a layer does not fit the activation scratchpad."""


@dataclass(frozen=True)
class RowWindow:
    """Rows of a layer's main input read by its output rows (a convolution or pooling
    window along H; a pointwise layer has ``taps = stride = 1``, ``pad = 0``).

    ``extra_row``: elements of other operands per output row (a residual add's second
    operand); ``extra_fixed``: elements loaded once per band whatever its size (a
    squeeze-excitation gate); ``buffers``: scratchpad buffers of a band (each may waste up
    to ``act_per_word - 1`` elements to keep its external words aligned).
    """

    rows_in: int
    rows_out: int
    in_row: int
    out_row: int
    taps: int = 1
    stride: int = 1
    dilation: int = 1
    pad: int = 0
    extra_row: int = 0
    extra_fixed: int = 0
    buffers: int = 2

    def input_rows(self, p0: int, p1: int) -> tuple[int, int]:
        """Input rows ``[lo, hi)`` from the first to the last row that output rows
        ``[p0, p1)`` read (padding rows are not read; ``lo == hi`` if only padding)."""
        read = [h for p in range(p0, p1) for t in range(self.taps)
                if 0 <= (h := p * self.stride - self.pad + t * self.dilation) < self.rows_in]
        return (min(read), max(read) + 1) if read else (0, 0)

    def need(self, rows: int, slack: int) -> int:
        """Scratchpad elements of a band of ``rows`` output rows (its tallest input band)."""
        span = min(self.rows_in, (rows - 1) * self.stride + (self.taps - 1) * self.dilation + 1)
        return (span * self.in_row + rows * (self.out_row + self.extra_row) + self.extra_fixed
                + self.buffers * slack)


@dataclass(frozen=True)
class Band:
    """Output rows ``[p0, p1)`` and the input rows ``[lo, hi)`` they read."""

    p0: int
    p1: int
    lo: int
    hi: int


def plan_bands(win: RowWindow, capacity: int, apw: int, name: str,
               align: int = 1) -> list[Band]:
    """The fewest equal bands (the last may be shorter) of ``win``'s output rows whose
    buffers fit ``capacity`` elements; ``apw`` activations per external word (the
    alignment slack of each buffer); band heights a multiple of ``align`` when that fits
    (``align`` = ``apw`` for one-element rows keeps every band on a word boundary)."""
    slack = 2 * (apw - 1)  # a buffer starts at its first element's lane, ends on a word
    if win.need(1, slack) > capacity:
        rows = min(win.rows_in, win.taps)
        raise BandError(
            f"layer {name}: the activation scratchpad (act_words={capacity}) cannot hold one "
            f"output row of it ({win.need(1, slack)} elements: {win.in_row} per input row x "
            f"{rows} row{'s' if rows != 1 else ''}, {win.out_row + win.extra_row} per output "
            f"row{f', {win.extra_fixed} fixed' if win.extra_fixed else ''}); raise act_words "
            f"to at least {win.need(1, slack)}")
    lo, hi = 1, win.rows_out
    while lo < hi:  # the tallest band that fits (need grows with rows)
        mid = (lo + hi + 1) // 2
        if win.need(mid, slack) <= capacity:
            lo = mid
        else:
            hi = mid - 1
    rows = lo
    if align > 1 and rows > align:
        rows -= rows % align
    bands = []
    for p0 in range(0, win.rows_out, rows):
        p1 = min(win.rows_out, p0 + rows)
        bands.append(Band(p0, p1, *win.input_rows(p0, p1)))
    return bands


def band_mapping(lm: LayerMapping, pixels: int) -> LayerMapping:
    """The mapping of a band of ``pixels`` of ``lm``'s output pixels (its GEMM M): the same
    weight tiles, loop order and dataflow, ``tile_m`` at most the band (the GEMM view is
    all ``mapping.timing`` reads, with the kernel's ``C``, ``R``, ``S`` and ``dil_w`` kept:
    ``gemm_k = C*R*S``, and ``mapping.timing.gather_run`` reads the others)."""
    n = lm.nest
    if pixels == n.gemm_m:
        return lm
    nest = LoopNest(kind="gemm", N=pixels, K=n.gemm_n, C=n.C, R=n.R, S=n.S, dil_w=n.dil_w,
                    in_bits=n.in_bits, w_bits=n.w_bits, out_bits=n.out_bits)
    return LayerMapping(lm.layer, nest, lm.dataflow, min(lm.tile_m, pixels), lm.tile_n,
                        lm.tile_k, tuple(lm.order))


def nest_window(nest: LoopNest) -> RowWindow:
    """The row window of a compute layer (a GEMM: ``M`` rows of ``K`` in, ``N`` out)."""
    if nest.kind == "gemm":
        return RowWindow(nest.gemm_m, nest.gemm_m, nest.gemm_k, nest.gemm_n)
    return RowWindow(nest.H, nest.P, nest.W * nest.C, nest.Q * nest.gemm_n, nest.R,
                     nest.stride_h, nest.dil_h, nest.pad_h)


@dataclass(frozen=True)
class ComputeBand:
    """One band of a compute layer: its input elements ``[in_first, in_first + in_count)``
    and output elements ``[out_first, ...)`` (NHWC, whole rows), its ``pixels`` (GEMM M)
    from pixel ``m_off``."""

    in_first: int
    in_count: int
    out_first: int
    out_count: int
    m_off: int
    pixels: int
    key: tuple = ()  # bands with one key in a row have the same code but for row offsets


def loop_runs(keys: list) -> list[tuple[int, int]]:
    """The runs ``[i, j)`` of two or more consecutive equal ``keys``: the bands a spilled
    program runs as one LOOP (``hwgen.compiler.spill``; each LOOP word costs
    ``LAYER_SETUP``)."""
    runs, i = [], 0
    while i < len(keys):
        j = i + 1
        while j < len(keys) and keys[j] == keys[i]:
            j += 1
        if j - i >= 2:
            runs.append((i, j))
        i = j
    return runs


def compute_bands(lm: LayerMapping, arch: ArchSpec) -> list[ComputeBand]:
    """The bands of a compute layer of a spilled program (``hwgen.compiler.spill`` emits
    one input load, the band's tile loop and one output store per band)."""
    n = lm.nest
    w = nest_window(n)
    q = 1 if n.kind == "gemm" else n.Q
    apw = timing.act_per_word(arch)
    out = []
    for b in plan_bands(w, arch.act_words, apw, lm.layer):
        cb = ComputeBand(b.lo * w.in_row, (b.hi - b.lo) * w.in_row, b.p0 * w.out_row,
                         (b.p1 - b.p0) * w.out_row, b.p0 * q, (b.p1 - b.p0) * q)
        # what the band's code depends on besides its row offset: its sizes, the lanes its
        # transfers start at, and how many of its top rows are padding (clipped)
        clip = b.lo - (b.p0 * w.stride - w.pad)
        out.append(ComputeBand(*(getattr(cb, f) for f in ("in_first", "in_count",
                                                            "out_first", "out_count", "m_off",
                                                            "pixels")),
                               key=(cb.pixels, cb.in_count, cb.out_count, cb.in_first % apw,
                                    cb.out_first % apw, clip)))
    return out


@dataclass(frozen=True)
class SpilledCost:
    """A compute layer run in bands: its cycles (loads + tile loops + stores + LOOP words), the
    activation words it reads and writes in external memory and the cycles of those
    transfers (estimated: ``mapping.timing``)."""

    cycles: int
    act_read_words: int
    act_write_words: int
    xfer_cycles: int
    bands: int


def spilled_cost(lm: LayerMapping, arch: ArchSpec) -> SpilledCost:
    """:class:`SpilledCost` of ``lm`` in a spilled program (docs/timing.md)."""
    cycles = rd = wr = xc = 0
    bands = compute_bands(lm, arch)
    runs = loop_runs([b.key for b in bands])
    cycles += timing.LAYER_SETUP * len(runs)  # LOOP words over alike bands
    looped = {k for i, j in runs for k in range(i, j)}
    for k, b in enumerate(bands):  # a band outside those may loop over its n tiles
        if k not in looped:
            cycles += tile_loop_cycles(band_mapping(lm, b.pixels), arch)
        for first, count, store in ((b.in_first, b.in_count, False),
                                    (b.out_first, b.out_count, True)):
            if count:
                words = timing.xfer_words(first, count, arch)
                c = timing.xfer_cycles(words, store, arch)
                xc += c
                if store:
                    wr += words
                else:
                    rd += words
        cycles += timing.layer_cycles(band_mapping(lm, b.pixels), arch).cycles
    return SpilledCost(cycles + xc, rd, wr, xc, len(bands))


def tile_loop(lm: LayerMapping, arch: ArchSpec) -> tuple[int, int] | None:
    """``(tiles per block, blocks)`` when the tile loop of ``lm`` (a band of a spilled
    program that is not itself in a LOOP) runs as one LOOP over its n tiles: the tiles of
    each n block are consecutive (n the outermost loop of more than one tile) and two or more
    blocks from the first on are alike (the same tile sizes, k positions and weight loads;
    an even number of loads per block when double-buffered, whose halves alternate; and,
    double-buffered, the next block alike too: a block's last STEP fetches its weights).
    Their STEPs then differ only by the block's weight address, output column and parameter
    row: ``hwgen.compiler.spill`` emits each block as its own LAYER group, the alike ones as
    one LOOP (:func:`tile_loop_cycles`). Else None."""
    t = lm.tiles
    dims = [d for d in lm.order if t[d] > 1]
    if t["n"] < 2 or dims[0] != "n":
        return None
    tiles = list(timing.iter_tiles(lm))
    size = len(tiles) // t["n"]

    def sig(j):
        blk = tiles[j * size:(j + 1) * size]
        return tuple((x.mi, x.ki, x.m, x.n, x.k, x.first_k, x.last_k, x.load_weights)
                     for x in blk)

    first = sig(0)
    if arch.double_buffer and sum(x[-1] for x in first) % 2:
        return None
    alike = [sig(j) == first for j in range(t["n"])]
    count = 0
    while count < t["n"] and alike[count] and (
            not arch.double_buffer or (count + 1 < t["n"] and alike[count + 1])):
        count += 1
    return (size, count) if count >= 2 else None


def tile_loop_cycles(lm: LayerMapping, arch: ArchSpec) -> int:
    """Cycles a band's n-block LOOP (:func:`tile_loop`) adds to its tile loop: the LOOP word,
    and a LAYER header (fetch, decode) for each block after the first, for the blocks after
    the loop and, double-buffered, for the first weight burst on its own; 0 without one."""
    tl = tile_loop(lm, arch)
    if tl is None:
        return 0
    _, count = tl
    tail = count < lm.tiles["n"]
    return timing.LAYER_SETUP * (1 + count - 1 + int(tail) + int(arch.double_buffer))
