"""The timing contract: cycles of one layer on the generated accelerator.

This module *is* the contract of docs/timing.md in executable form. The
hardware (``hwgen.rtl.sequencer``) implements the same phases with the same
lengths; ``sim`` measures them with the hardware cycle counters and checks
them against these functions. Change both sides together.

Everything here is a plain, readable reference implementation (a loop over
tiles). ``mapping.cost`` may evaluate the same formulas in closed or
vectorised form for speed, and is tested against this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from mapping.arch import ArchSpec
from mapping.schedule import LayerMapping, MappingError

# ---- fixed latencies of the generated hardware (cycles) ----------------------
LAYER_SETUP = 2  # controller: fetch + decode of a layer header
DMA_SETUP = 2  # DMA engine: take the burst parameters, then present the request
ROM_LATENCY = 1  # baked weight ROM: word i presented ROM_LATENCY + 1 + i cycles after the request
POST_LATENCY = 3  # acc/parameter read (1) + PostProc pipeline (hwgen.rtl.postproc.PostProc.latency)


def ws_pipeline_depth(arch: ArchSpec) -> int:
    """WS tile overhead besides the issue slots: tile start (1), scratchpad read (1),
    array latency (``rows + cols``, hwgen.rtl.array.SystolicArray.latency) and the
    accumulator read-modify-write (1)."""
    return arch.rows + arch.cols + 3


def os_pipeline_depth(arch: ArchSpec) -> int:
    """OS tile overhead besides the issue slots: tile start (1), scratchpad read (1),
    array latency to the first drained row (``cols + 1``), the other ``rows - 1``
    rows, and the accumulator read-modify-write (1)."""
    return arch.rows + arch.cols + 3


RUN_OVERHEAD = 4  # start..done beyond streams + layers: 1 after the last input,
#                   2 to fetch and decode END, 1 output read latency


def run_cycles(input_elements: int, layer_cycles_total: int, output_elements: int) -> int:
    """Cycles from ``start`` to ``done`` of one inference (docs/timing.md, "Whole model")."""
    return input_elements + layer_cycles_total + output_elements + RUN_OVERHEAD


# ---- tiles ------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """One tile of the tile loop nest, in execution order."""

    mi: int
    ni: int
    ki: int
    m: int  # size of this tile along M (edge tiles are smaller)
    n: int
    k: int
    first_k: bool  # first k tile of its output tile: the accumulator is overwritten
    last_k: bool  # last k tile: the output tile is post-processed after it
    load_weights: bool  # its weight tile differs from the previous tile's: one DMA
    k0: int = 0  # first reduction index of the tile (ki * tile_k)


def iter_tiles(lm: LayerMapping) -> Iterator[Tile]:
    dims = {"m": lm.nest.gemm_m, "n": lm.nest.gemm_n, "k": lm.nest.gemm_k}
    tsz = {"m": lm.tile_m, "n": lm.tile_n, "k": lm.tile_k}
    counts = {d: math.ceil(dims[d] / tsz[d]) for d in dims}
    outer, middle, inner = lm.order
    prev_w: tuple[int, int] | None = None
    for a in range(counts[outer]):
        for b in range(counts[middle]):
            for c in range(counts[inner]):
                idx = {outer: a, middle: b, inner: c}
                size = {d: min(tsz[d], dims[d] - idx[d] * tsz[d]) for d in dims}
                w_id = (idx["k"], idx["n"])
                yield Tile(
                    mi=idx["m"], ni=idx["n"], ki=idx["k"],
                    m=size["m"], n=size["n"], k=size["k"],
                    first_k=idx["k"] == 0, last_k=idx["k"] == counts["k"] - 1,
                    load_weights=w_id != prev_w, k0=idx["k"] * tsz["k"],
                )
                prev_w = w_id


# ---- phase lengths ------------------------------------------------------------
def passes(tile: Tile, dataflow: str, arch: ArchSpec) -> int:
    """Array passes in a tile: rows x cols blocks of the spatial dimensions."""
    if dataflow == "ws":
        return math.ceil(tile.k / arch.rows) * math.ceil(tile.n / arch.cols)
    return math.ceil(tile.m / arch.rows) * math.ceil(tile.n / arch.cols)


def gather_run(nest, arch: ArchSpec) -> int | None:
    """With ``act_gather = "runs"``: the reduction indices of one *run*, consecutive
    scratchpad addresses of one input pixel row: a kernel row of ``S`` taps of ``C``
    channels (``S*C``; one tap, ``C``, when ``dil_w > 1`` spreads the taps), a GEMM's ``K``
    (a ``LoopNest.gemm`` holds it in ``C``, with ``S = 1``); ``None`` with ``"lanes"``
    (every lane reads any address)."""
    if arch.act_gather != "runs":
        return None
    return nest.C * nest.S if nest.dil_w == 1 else nest.C


def block_runs(k0: int, k: int, run: int, rows: int) -> list[int]:
    """Runs (of ``run`` reduction indices, :func:`gather_run`) each ``rows``-lane reduction
    block of a tile spans: block ``b`` holds indices ``k0 + b*rows`` up to
    ``min(k0 + (b+1)*rows, k0 + k) - 1``."""
    out = []
    for lo in range(k0, k0 + k, rows):
        hi = min(lo + rows, k0 + k) - 1
        out.append(hi // run - lo // run + 1)
    return out


def ws_streams(tile: Tile, arch: ArchSpec, run: int | None = None) -> list[int]:
    """Stream cycles of each WS pass of a tile, in issue order (n blocks outer, k blocks
    inner): ``tile.m`` input vectors, once per run the block spans when the scratchpad
    gathers by runs (``run``, :func:`gather_run`)."""
    nnb = math.ceil(tile.n / arch.cols)
    if run is None:
        return [tile.m] * (math.ceil(tile.k / arch.rows) * nnb)
    return [g * tile.m for g in block_runs(tile.k0, tile.k, run, arch.rows)] * nnb


def compute_cycles(tile: Tile, dataflow: str, arch: ArchSpec, run: int | None = None) -> int:
    """Cycles to run all passes of a tile, including the final pipeline drain.

    WS: a pass preloads a rows x cols weight block (``rows`` cycles, overlapped
    with the previous pass's stream) and streams its input vectors (:func:`ws_streams`):
    ``rows + sum(max(stream, rows) of every pass but the last) + last stream + depth``.
    OS: a pass streams ``tile.k`` operand pairs into a rows x cols block of
    output accumulators, whose results drain (``rows`` cycles) under the next pass.
    """
    if dataflow == "ws":
        s = ws_streams(tile, arch, run)
        return (arch.rows + sum(max(x, arch.rows) for x in s[:-1]) + s[-1]
                + ws_pipeline_depth(arch))
    p = passes(tile, dataflow, arch)
    return (p - 1) * max(tile.k, arch.rows) + tile.k + os_pipeline_depth(arch)


def postproc_cycles(tile: Tile, arch: ArchSpec) -> int:
    """Requantise an output tile: one row of ``cols`` accumulators per cycle."""
    return tile.m * math.ceil(tile.n / arch.cols) + POST_LATENCY


def weight_words(tile: Tile, arch: ArchSpec) -> int:
    """External/ROM words of one weight tile (packed contiguously)."""
    return math.ceil(tile.k * tile.n / arch.weights_per_ext_word)


def dma_cycles(words: int, arch: ArchSpec) -> int:
    """One DMA burst of ``words`` words from the weight store."""
    if arch.weight_store == "rom":
        return DMA_SETUP + ROM_LATENCY + words
    return DMA_SETUP + arch.ext_latency + math.ceil(words / arch.ext_bandwidth)


# ---- validity ---------------------------------------------------------------
def acc_footprint(lm: LayerMapping) -> int:
    """Accumulator entries live at once: output tiles visited inside the k loop."""
    t = lm.tiles
    inside_k = lm.order[lm.order.index("k") + 1:]
    f = lm.tile_m * lm.tile_n
    for d in inside_k:
        f *= t[d]
    return f


def check(lm: LayerMapping, arch: ArchSpec) -> None:
    """Raise MappingError if the hardware cannot run ``lm`` on ``arch``."""
    if lm.dataflow != arch.dataflow:
        raise MappingError(
            f"{lm.layer}: mapping dataflow {lm.dataflow!r} differs from the array's {arch.dataflow!r}"
        )
    if sorted(lm.order) != ["k", "m", "n"]:
        raise MappingError(f"{lm.layer}: order {lm.order} must be a permutation of m, n, k")
    for d, full in (("m", lm.nest.gemm_m), ("n", lm.nest.gemm_n), ("k", lm.nest.gemm_k)):
        t = getattr(lm, f"tile_{d}")
        if not isinstance(t, int) or not 1 <= t <= full:
            raise MappingError(f"{lm.layer}: tile_{d} = {t!r} must be between 1 and {full}")
    halves = 2 if arch.double_buffer else 1
    if lm.tile_k * lm.tile_n * halves > arch.w_words:
        raise MappingError(
            f"{lm.layer}: weight tile {lm.tile_k}x{lm.tile_n}"
            f"{' (x2, double-buffered)' if halves == 2 else ''} exceeds w_words={arch.w_words}"
        )
    fp = acc_footprint(lm)
    if fp > arch.acc_words:
        raise MappingError(
            f"{lm.layer}: {fp} live partial sums exceed acc_words={arch.acc_words} "
            f"(order {lm.order}, tiles m={lm.tile_m} n={lm.tile_n})"
        )


# ---- the layer --------------------------------------------------------------
@dataclass(frozen=True)
class LayerTiming:
    """Cycles of one compute layer, with the phase sums (which overlap when
    double-buffered, so they need not add up to ``cycles``)."""

    cycles: int
    compute: int
    postproc: int
    dma: int
    dma_stall: int  # cycles the array waited for weights
    tiles: int
    dma_bursts: int


def layer_cycles(lm: LayerMapping, arch: ArchSpec) -> LayerTiming:
    """Cycles of one compute layer from its ``LAYER`` instruction to the last output write.

    Tiles run one after another (compute, then post-processing after a last-k
    tile). A tile whose weights differ from its predecessor's needs a DMA burst.
    Single-buffered: the burst runs before the tile. Double-buffered: the burst
    for tile i+1 starts when tile i starts, so tile i+1 starts at
    ``max(end of tile i, end of its burst)``.
    """
    check(lm, arch)
    durs: list[int] = []
    dmas: list[int] = []
    comp_sum = post_sum = 0
    run = gather_run(lm.nest, arch)
    for t in iter_tiles(lm):
        c = compute_cycles(t, lm.dataflow, arch, run)
        p = postproc_cycles(t, arch) if t.last_k else 0
        comp_sum += c
        post_sum += p
        durs.append(c + p)
        dmas.append(dma_cycles(weight_words(t, arch), arch) if t.load_weights else 0)
    if arch.double_buffer:
        total = dmas[0]
        for i in range(len(durs) - 1):
            total += max(durs[i], dmas[i + 1])
        total += durs[-1]
    else:
        total = sum(durs) + sum(dmas)
    busy = sum(durs)
    return LayerTiming(
        cycles=LAYER_SETUP + total,
        compute=comp_sum,
        postproc=post_sum,
        dma=sum(dmas),
        dma_stall=total - busy,
        tiles=len(durs),
        dma_bursts=sum(1 for d in dmas if d),
    )


# ---- non-GEMM layers executed on the accelerator --------------------------------
# The element-wise engine (hwgen.rtl.eltwise_engine) issues one activation-scratchpad
# read of ``rows`` elements per cycle from the cycle after the ELT word's decode;
# each result is written ELT_LATENCY cycles after its last read.
ELT_LATENCY = 3  # scratchpad read (1) + Pool / ResidualAdd / Lookup pipeline (2)


def pool_issues(out_pixels: int, channels: int, window: int, arch: ArchSpec) -> int:
    """Reads of a pooling layer: one per window tap, per ``rows`` channels, per output pixel."""
    return out_pixels * math.ceil(channels / arch.rows) * window


def pool_cycles(out_pixels: int, channels: int, window: int, arch: ArchSpec) -> int:
    """Max/avg pooling: fetch + decode, then ``rows`` channels of one output pixel per
    window element (``window`` = kernel height x width, padding taps included)."""
    return LAYER_SETUP + pool_issues(out_pixels, channels, window, arch) + ELT_LATENCY


def lut_cycles(elements: int, arch: ArchSpec) -> int:
    """Lookup-table activation (``act``): fetch + decode, then one read of ``rows``
    consecutive elements per cycle, each looked up and written ``ELT_LATENCY`` later."""
    return LAYER_SETUP + math.ceil(elements / arch.rows) + ELT_LATENCY


def add_cycles(elements: int, arch: ArchSpec) -> int:
    """Residual add: fetch + decode, then both operands ``rows`` elements at a time,
    one operand per cycle."""
    return LAYER_SETUP + 2 * math.ceil(elements / arch.rows) + ELT_LATENCY


DW_LATENCY = 4  # scratchpad read (1) + DepthwiseMac: MAC (1), x mult (1), round/saturate (1)


def dw_cycles(out_pixels: int, channels: int, window: int, arch: ArchSpec) -> int:
    """Depthwise convolution (``groups`` = in = out channels) on the element-wise engine:
    fetch + decode, the pooling walk (one read of one kernel tap of ``rows`` channels of one
    output pixel per cycle, ``window`` = kh x kw taps, padding taps included), each output
    written ``DW_LATENCY`` after the read of its last tap."""
    return LAYER_SETUP + pool_issues(out_pixels, channels, window, arch) + DW_LATENCY


def copy_cycles(pixels: int, channels: int, arch: ArchSpec) -> int:
    """Strided channel copy (concatenation, broadcast) on the element-wise engine: fetch +
    decode, one read of ``rows`` channels of one pixel per cycle, each written
    ``ELT_LATENCY`` later (through the ``Pool`` unit as a one-tap max)."""
    return LAYER_SETUP + pixels * math.ceil(channels / arch.rows) + ELT_LATENCY


MUL_LATENCY = 4  # scratchpad read (1) + product, wrapped to acc_bits (1) + ResidualAdd (2)


def mul_cycles(pixels: int, channels: int, arch: ArchSpec) -> int:
    """Tensor multiply (``mul`` of two tensors: a squeeze-excitation gate ``x * s`` with one
    ``s`` per channel, or a same-shape product as one pixel of all its elements) on the
    element-wise engine: fetch + decode, two reads per ``rows`` channels of a pixel (``x``,
    then ``s``), each result written ``MUL_LATENCY`` after the second."""
    return LAYER_SETUP + 2 * pixels * math.ceil(channels / arch.rows) + MUL_LATENCY


# ---- activation transfers (spilled programs: activations in external memory) ----------
XFER_REQUEST = 1  # the activation DMA presents a burst's request (each run of an XFER)


def act_per_word(arch: ArchSpec) -> int:
    """Activations per external-memory word: as many ``in_bits`` elements as the word holds,
    at most ``rows`` (the scratchpad's read lanes, which a store packs a word from)."""
    return max(1, min(arch.ext_word_bits // arch.in_bits, arch.rows))


def xfer_words(first: int, count: int, arch: ArchSpec) -> int:
    """External words a transfer of ``count`` elements touches, from element ``first`` of a
    word-aligned tensor (``first % act_per_word`` is the lane of the first element)."""
    apw = act_per_word(arch)
    return math.ceil((first % apw + count) / apw)


def xfer_cycles(words: int, store: bool, arch: ArchSpec, runs: int = 1) -> int:
    """One ``XFER`` instruction of ``runs`` bursts of ``words`` words: fetch + decode, then
    per burst its request and its words at the memory's bandwidth; a load also waits the
    memory's latency (word ``i`` arrives ``ext_latency + ceil((i+1)/b)`` after the request),
    a store's words are posted (taken at ``ceil((i+1)/b)``, no acknowledgement). The next
    burst's request is the cycle after the last word."""
    lat = 0 if store else arch.ext_latency
    return LAYER_SETUP + runs * (XFER_REQUEST + lat + math.ceil(words / arch.ext_bandwidth))
