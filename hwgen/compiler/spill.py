"""Spilled programs: the tensors in external memory, every layer run in row bands.

When a program's live tensors do not fit the activation scratchpad
(``hwgen.compiler.buffers.allocate`` fails), :func:`compile_program` compiles it
*spilled* (docs/timing.md, "Activations in external memory"):

- every tensor gets a word-aligned region of external memory (by live range, like the
  scratchpad), after the weight image when the weights are external; the host writes
  the input there before ``start`` (no input stream);
- each hardware layer runs band by band (``mapping.bands``): XFER loads of the band's
  input rows (and of its other operands), the layer's own instruction(s) on the band
  (the unchanged engines: a band is a range of the layer's output pixels, its input
  addressed as if the whole tensor were there), an XFER store of its output rows;
- the consecutive copies of one channel concatenation run band by band together (the
  band of the concatenated tensor is stored once all its parts are copied);
- at the end the output is loaded into the scratchpad and streamed out.

A layer's cycles are the sum of its instructions' (the hardware counter adds them up).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hwgen.compiler.buffers import Buffer, allocate
from hwgen.compiler.codegen import (
    add_instruction,
    compute_params,
    compute_words,
    dw_fields,
    dw_tables,
    flatten_permutation,
    geometry,
    lut_table,
    lut_word,
    pool_fields,
    weight_tiles,
)
from hwgen.compiler.copy_layer import CopyLayer, copy_instruction
from hwgen.compiler.isa import (
    EXT_ADDR_BITS,
    LOOP_BODY_BITS,
    Op,
    elt_layout,
    encode,
    layer_layout,
    loop_layout,
    step_layout,
    xfer_layout,
)
from hwgen.compiler.layers import (
    AddLayer,
    ComputeLayer,
    DwLayer,
    LutLayer,
    PoolLayer,
    ProgramError,
)
from hwgen.compiler.loops import LOOP_DELTAS, loop_deltas, shifted
from hwgen.compiler.mul_layer import MulLayer, mul_instruction
from mapping import timing
from mapping.arch import ArchSpec
from mapping.bands import (
    BandError,
    RowWindow,
    band_mapping,
    compute_bands,
    loop_runs,
    plan_bands,
    tile_loop,
    tile_loop_cycles,
)
from mapping.timing import act_per_word, xfer_words


class _Scratch:
    """Band buffers in the scratchpad: each starts at its first element's lane of a word."""

    def __init__(self, apw: int, capacity: int, name: str):
        self.apw, self.capacity, self.name, self.at = apw, capacity, name, 0

    def place(self, first: int, count: int) -> int:
        base = self.at + first % self.apw
        self.at = -(-(base + count) // self.apw) * self.apw
        if base + count > self.capacity:  # mapping.bands planned with this slack
            raise ProgramError(f"{self.name}: band buffers need {base + count} elements, "
                               f"act_words={self.capacity} (internal: band plan)")
        return base


class _Code:
    """The instruction stream of a spilled program and the predicted cycles of each layer.

    Words are kept as ``(kind, field values)`` (or encoded ints) until the external base of
    the activations is known; the bands of a layer (:meth:`band`) are compared when the
    layer ends (:meth:`end_layer`) and a run of bands that differ only by constant steps
    of their rows (XFER ``ext``, STEP ``p0``/``hp0``, ELT ``hp0``) becomes one LOOP."""

    def __init__(self, arch: ArchSpec, ext_of: dict[str, int]):
        self.arch, self.apw, self.ext_of = arch, act_per_word(arch), ext_of
        self.words: list = []
        self.bands: list[list] | None = None  # the current layer's bands
        self.layer_id = -1
        self.cycles: dict[int, int] = {}
        # per layer: activation words read / written in external memory, XFER cycles
        self.traffic: dict[int, list[int]] = {}

    def _add(self, layer_id: int, cycles: int) -> None:
        self.cycles[layer_id] = self.cycles.get(layer_id, 0) + cycles

    def _emit(self, items: list) -> None:
        (self.bands[-1] if self.bands is not None else self.words).extend(items)

    def band(self, layer_id: int) -> None:
        """The following words are one band of layer ``layer_id``."""
        if self.bands is None:
            self.bands, self.layer_id = [], layer_id
        self.bands.append([])

    def end_layer(self, keys: list | None = None, tiles: list | None = None) -> None:
        """The layer's bands, a run of alike bands as one LOOP. ``keys`` (a compute layer's:
        ``mapping.bands.ComputeBand.key``) fix the runs, as the cost model counts them:
        every run of equal keys is one LOOP (an internal error if its code is not alike);
        ``tiles`` (per band, ``mapping.bands.tile_loop`` or None): a band outside those runs
        loops over its n blocks of tiles."""
        bands, self.bands = self.bands or [], None
        runs = dict(loop_runs(keys)) if keys is not None else None
        i = 0
        while i < len(bands):
            j, deltas = i + 1, None
            if runs is not None:
                if i in runs:
                    j = runs[i]
                    deltas = loop_deltas(bands[i], bands[i + 1])
                    if deltas is None or any(shifted(bands[i], deltas, k - i) != bands[k]
                                             for k in range(i + 1, j)):
                        raise ProgramError(f"layer {self.layer_id}: bands {i}..{j - 1} have "
                                           "one key but not one LOOP body (internal)")
            else:
                if i + 1 < len(bands):
                    deltas = loop_deltas(bands[i], bands[i + 1])
                if deltas is not None:
                    while j < len(bands) and shifted(bands[i], deltas, j - i) == bands[j]:
                        j += 1
            if j - i >= 2:
                self._loop(bands[i], j - i, deltas)
            elif tiles is not None and tiles[i] is not None:
                self._tile_loop(bands[i], *tiles[i])
                j = i + 1
            else:
                j = i + 1
                self.words.extend(bands[i])
            i = j

    def _loop(self, body: list, count: int, deltas: dict) -> None:
        if len(body) >= 1 << LOOP_BODY_BITS:
            raise ProgramError(f"layer {self.layer_id}: a LOOP body of {len(body)} words is "
                               "too long")
        self.words.append(("loop", dict(op=Op.LOOP, layer_id=self.layer_id, count=count,
                                        body=len(body),
                                        **{f"d_{k}": deltas[k] for k in LOOP_DELTAS})))
        self._add(self.layer_id, timing.LAYER_SETUP)
        for n, item in enumerate(body):
            if isinstance(item, tuple) and item[0] == "xfer":
                item = ("xfer", {**item[1], "dsel": deltas["dsel"].get(n, 0)})
            self.words.append(item)

    def _tile_loop(self, band: list, size: int, count: int) -> None:
        """One band whose first ``count`` blocks of ``size`` tile STEPs are alike: a LAYER
        group for the first burst (double-buffered), one LOOP over LAYER groups of one block
        each, and a LAYER group of the blocks after it (mapping.bands.tile_loop_cycles)."""
        k0 = next(k for k, it in enumerate(band) if isinstance(it, tuple) and it[0] == "layer")
        hdr = band[k0]
        s0 = next(k for k, it in enumerate(band)
                  if isinstance(it, tuple) and it[0] == "step" and it[1].get("tile_en"))
        steps_end = max(k for k, it in enumerate(band)
                        if isinstance(it, tuple) and it[0] == "step") + 1

        def group(steps):  # a LAYER group: the header, the steps, the last one marked
            steps = [(kind, dict(f)) for kind, f in steps]
            for _, f in steps:
                f["last"] = 0
            steps[-1][1]["last"] = 1
            return [hdr, *steps]

        blocks = [group(band[s0 + k * size:s0 + (k + 1) * size]) for k in range(count)]
        deltas = loop_deltas(blocks[0], blocks[1])
        if deltas is None or any(shifted(blocks[0], deltas, k) != blocks[k]
                                 for k in range(2, count)):
            raise ProgramError(f"layer {self.layer_id}: the n blocks of a band are not one "
                               "LOOP body (internal)")
        self.words.extend(band[:k0])
        if s0 > k0 + 1:  # the first weight burst (double-buffered) as its own group
            self.words.extend(group(band[k0 + 1:s0]))
        self._loop(blocks[0], count, deltas)
        tail = band[s0 + count * size:steps_end]
        if tail:
            self.words.extend(group(tail))
        self.words.extend(band[steps_end:])

    def xfer(self, layer_id: int, store: bool, tensor: str, first: int, count: int,
             base: int, runs: int = 1, stride: int = 0, sp_stride: int = 0) -> None:
        """Move elements ``first + r*stride .. + count-1`` of ``tensor`` from (to) scratchpad
        ``base + r*sp_stride`` for each run ``r < runs`` (strides: multiples of a word)."""
        if count <= 0 or runs <= 0:
            return
        off = first % self.apw
        if runs > 1 and (stride % self.apw or sp_stride % self.apw):
            raise ProgramError(f"layer {layer_id}: XFER strides {stride}, {sp_stride} must be "
                               f"multiples of {self.apw} elements (internal)")
        words = xfer_words(first, count, self.arch)
        self._emit([("xfer", dict(op=Op.XFER, layer_id=layer_id, store=int(store),
                                  ext=self.ext_of[tensor] + first // self.apw, words=words,
                                  sp=base - off, off=off, count=count, runs=runs,
                                  wstride=stride // self.apw, sp_stride=sp_stride))])
        cyc = timing.xfer_cycles(words, store, self.arch, runs)
        self._add(layer_id, cyc)
        t = self.traffic.setdefault(layer_id, [0, 0, 0])
        t[int(store)] += runs * words
        t[2] += cyc

    def op(self, layer_id: int, items: list, cycles: int) -> None:
        """Words of a layer's engine (encoded ints or ``(kind, fields)``) and their cycles."""
        self._emit(items)
        self._add(layer_id, cycles)

    def encoded(self, act_base: int) -> list[int]:
        a = self.arch
        lays = {"xfer": xfer_layout(a), "loop": loop_layout(a), "step": step_layout(a),
                "layer": layer_layout(a), "elt": elt_layout(a)}
        out = []
        for w in self.words:
            if isinstance(w, tuple):
                kind, f = w
                if kind == "xfer":
                    f = {**f, "ext": f["ext"] + act_base}
                w = encode(lays[kind], f, f"layer {f.get('layer_id', '')} {kind.upper()}")
            out.append(w)
        return out


def _bands(win: RowWindow, arch: ArchSpec, name: str, align: int = 1):
    try:
        return plan_bands(win, arch.act_words, act_per_word(arch), name, align)
    except BandError as exc:
        raise ProgramError(str(exc)) from None


def compile_spilled(arch: ArchSpec, plan: list, tensors, out_name: str, n_hw: int,
                    image: list[int], params: list[int], luts: list[int], dww: list[int],
                    dwp: list[int]) -> dict:
    """Code of a spilled program from ``compile_program``'s plan (``(layer, index, source
    names, destination name, source tensor)`` per hardware layer) and tensors (``_Tensors``:
    names, buffers, live ranges). Appends to the tables given; returns the instructions,
    predicted cycles per layer, the external regions and the output."""
    apw = act_per_word(arch)
    bufs = tensors.bufs
    # --- external regions: word-aligned, by live range (sizes in words)
    wbufs = [Buffer(b.name, -(-b.size // apw), b.first, b.last) for b in bufs]
    allocate(wbufs, [f"layer {i}" for i in range(n_hw + 1)], 1 << (EXT_ADDR_BITS - 1))
    ext_of = {name: wbufs[t.buf].base for name, t in tensors.t.items()}
    code = _Code(arch, ext_of)
    k = 0
    while k < len(plan):
        x, i, srcs, dst, ts = plan[k]
        if isinstance(x, CopyLayer):  # the copies into one tensor run band by band together
            group = [plan[k]]
            while k + 1 < len(plan) and isinstance(plan[k + 1][0], CopyLayer) \
                    and plan[k + 1][3] == dst:
                k += 1
                group.append(plan[k])
            _copies(arch, code, group)
        elif isinstance(x, ComputeLayer):
            _compute(arch, code, x, i, srcs[0], dst, ts, image, params)
        elif isinstance(x, (PoolLayer, DwLayer)):
            _window(arch, code, x, i, srcs[0], dst, dww, dwp)
        elif isinstance(x, MulLayer) and x.broadcast:
            _gate(arch, code, x, i, srcs, dst)
        else:
            _pointwise(arch, code, x, i, srcs, dst, luts)
        k += 1
    for name in {p[3] for p in plan} - set(code.ext_of):
        raise ProgramError(f"tensor '{name}' has no external region")  # pragma: no cover
    out_size = bufs[tensors.t[out_name].buf].size
    if out_size > arch.act_words:
        raise ProgramError(f"the output tensor '{out_name}' ({out_size} elements) must fit the "
                           f"activation scratchpad (act_words={arch.act_words}) to be streamed "
                           "out")
    code.xfer(plan[-1][1], False, out_name, 0, out_size, 0)  # streamed out from 0
    act_base = len(image) if arch.weight_store == "external" else 0
    ext_words = act_base + max((b.base + b.size for b in wbufs), default=0)
    return dict(instructions=code.encoded(act_base), cycles=code.cycles, traffic=code.traffic,
                ext_tensors={name: (act_base + ext_of[name], bufs[t.buf].size)
                             for name, t in tensors.t.items()},
                ext_words=ext_words, output_count=out_size)


def _compute(arch, code, x: ComputeLayer, i, src, dst, ts, image, params) -> None:
    lm, nest = x.mapping, x.mapping.nest
    g = geometry(lm)
    if g["N"] != 1:
        raise ProgramError(f"{x.name}: a batch of {g['N']} images cannot run in bands "
                           "(spilled programs take one image)")
    wmat = np.asarray(x.weights, dtype=np.int64)
    if ts.flattened and ts.hwc is not None and nest.kind == "gemm":
        wmat = wmat[flatten_permutation(ts.hwc)]
    par_base = compute_params(arch, x, params)
    wloc = weight_tiles(arch, lm, wmat, image)
    try:
        bands = compute_bands(lm, arch)
    except BandError as exc:
        raise ProgramError(str(exc)) from None
    in_runs = {k for a, z in loop_runs([b.key for b in bands]) for k in range(a, z)}
    for k, b in enumerate(bands):
        code.band(i)
        sc = _Scratch(code.apw, arch.act_words, x.name)
        b_in, b_out = sc.place(b.in_first, b.in_count), sc.place(b.out_first, b.out_count)
        code.xfer(i, False, src, b.in_first, b.in_count, b_in)
        bm = band_mapping(lm, b.pixels)
        extra = 0  # an n-block LOOP of this band (its LOOP word is counted where emitted)
        if k not in in_runs and tile_loop(bm, arch) is not None:
            extra = tile_loop_cycles(bm, arch) - timing.LAYER_SETUP
        code.op(i, compute_words(arch, x, i, b_in - b.in_first, b_out, par_base, wloc,
                                 band=(b.m_off, b.pixels), as_fields=True),
                timing.layer_cycles(bm, arch).cycles + extra)
        code.xfer(i, True, dst, b.out_first, b.out_count, b_out)
    code.end_layer([b.key for b in bands],
                   [None if k in in_runs else tile_loop(band_mapping(lm, b.pixels), arch)
                    for k, b in enumerate(bands)])


def _window(arch, code, x, i, src, dst, dww, dwp) -> None:
    """Pooling and depthwise convolution: the engine's window walk from output row ``p0``,
    in channel slices when one row of all channels does not fit (mapping.bands)."""
    g = x.geometry()
    if x.N != 1:
        raise ProgramError(f"{x.name}: a batch of {x.N} images cannot run in bands "
                           "(spilled programs take one image)")
    H, W, C, P, Q = x.H, x.W, x.C, g["P"], g["Q"]  # noqa: N806
    kh, kw, sh, ph, pw = g["kh"], g["kw"], g["sh"], g["ph"], g["pw"]
    dw = isinstance(x, DwLayer)
    dh = g["dh"] if dw else 1
    if dw:
        tab, par = dw_tables(arch, x, dww, dwp)
    cb = channel_slice(RowWindow(H, P, W * C, Q * C, kh, sh, dh, ph), C, arch, code.apw)
    for c0 in range(0, C, cb):
        n_c = min(cb, C - c0)
        win = RowWindow(H, P, W * n_c, Q * n_c, kh, sh, dh, ph)
        for b in _bands(win, arch, x.name):
            code.band(i)
            sc = _Scratch(code.apw, arch.act_words, x.name)
            rows = b.p1 - b.p0
            pix_in, pix_out = (b.hi - b.lo) * W, rows * Q
            if n_c == C:  # whole rows: one contiguous run each way
                b_in = sc.place(b.lo * W * C, pix_in * C)
                b_out = sc.place(b.p0 * Q * C, pix_out * C)
                code.xfer(i, False, src, b.lo * W * C, pix_in * C, b_in)
            else:  # a channel slice: one run per pixel
                b_in, b_out = sc.place(0, pix_in * n_c), sc.place(0, pix_out * n_c)
                code.xfer(i, False, src, b.lo * W * C + c0, n_c, b_in, runs=pix_in, stride=C,
                          sp_stride=n_c)
            if dw:
                f = dw_fields(arch, x, i, b_in, b_out, tab + c0 // arch.rows * kh * kw,
                              par + c0 // arch.rows, channels=n_c)
            else:
                f = pool_fields(arch, x, i, b_in, b_out, channels=n_c)
            f.update(P=rows, hp0=b.p0 * sh - ph,
                     pix0=b_in + (b.p0 * sh - ph - b.lo) * W * n_c - pw * n_c)
            cyc = (timing.dw_cycles(pix_out, n_c, kh * kw, arch) if dw
                   else timing.pool_cycles(pix_out, n_c, kh * kw, arch))
            code.op(i, [("elt", f)], cyc)
            if n_c == C:
                code.xfer(i, True, dst, b.p0 * Q * C, pix_out * C, b_out)
            else:
                code.xfer(i, True, dst, b.p0 * Q * C + c0, n_c, b_out, runs=pix_out, stride=C,
                          sp_stride=n_c)
        code.end_layer()


def channel_slice(win: RowWindow, channels: int, arch: ArchSpec, apw: int) -> int:
    """Channels per slice of a per-channel window layer: all of them if one output row
    fits, else the most (a multiple of ``rows`` and ``apw``) whose row does; ProgramError
    naming the layer's minimum when not even that fits."""
    slack = 2 * (apw - 1)
    if win.need(1, slack) <= arch.act_words:
        return channels
    unit = math.lcm(arch.rows, apw)
    per_channel = RowWindow(win.rows_in, win.rows_out, win.in_row // channels,
                            win.out_row // channels, win.taps, win.stride, win.dilation,
                            win.pad, buffers=0).need(1, 0)
    cb = (arch.act_words - win.buffers * slack) // per_channel // unit * unit
    if channels % apw or cb < unit:
        return channels  # plan_bands names the layer and the minimum act_words
    return min(cb, channels)


def _pointwise(arch, code, x, i, srcs, dst, luts) -> None:
    """Residual add, lookup-table activation, same-shape multiply: bands of elements."""
    two = isinstance(x, AddLayer) or isinstance(x, MulLayer)
    n_all = x.elements
    tab = lut_table(arch, x, luts) if isinstance(x, LutLayer) else None
    win = RowWindow(n_all, n_all, 1, 1, extra_row=int(two), buffers=2 + int(two))
    for b in _bands(win, arch, x.name, align=code.apw):
        code.band(i)
        sc = _Scratch(code.apw, arch.act_words, x.name)
        e0, n = b.p0, b.p1 - b.p0
        bases = [sc.place(e0, n) for _ in srcs]
        b_out = sc.place(e0, n)
        for s, base in zip(srcs, bases, strict=True):
            code.xfer(i, False, s, e0, n, base)
        if isinstance(x, AddLayer):
            words = [add_instruction(arch, dataclasses.replace(x, shape=(n,)), i, *bases, b_out)]
            cyc = timing.add_cycles(n, arch)
        elif isinstance(x, MulLayer):
            words = [mul_instruction(arch, dataclasses.replace(x, pixels=1, channels=n), i,
                                     *bases, b_out)]
            cyc = timing.mul_cycles(1, n, arch)
        else:
            words = [lut_word(arch, x, i, bases[0], b_out, tab, n)]
            cyc = timing.lut_cycles(n, arch)
        code.op(i, words, cyc)
        code.xfer(i, True, dst, e0, n, b_out)
    code.end_layer()


def _gate(arch, code, x: MulLayer, i, srcs, dst) -> None:
    """A squeeze-excitation gate ``x * s``: bands of pixels, the gate loaded with each."""
    C = x.channels  # noqa: N806
    win = RowWindow(x.pixels, x.pixels, C, C, extra_fixed=C, buffers=3)
    for b in _bands(win, arch, x.name):
        code.band(i)
        sc = _Scratch(code.apw, arch.act_words, x.name)
        n = b.p1 - b.p0
        b_x, b_s = sc.place(b.p0 * C, n * C), sc.place(0, C)
        b_out = sc.place(b.p0 * C, n * C)
        code.xfer(i, False, srcs[0], b.p0 * C, n * C, b_x)
        code.xfer(i, False, srcs[1], 0, C, b_s)
        code.op(i, [mul_instruction(arch, dataclasses.replace(x, pixels=n), i, b_x, b_s, b_out)],
                timing.mul_cycles(n, C, arch))
        code.xfer(i, True, dst, b.p0 * C, n * C, b_out)
    code.end_layer()


def _copies(arch, code, group: list) -> None:
    """The copies into one tensor (a concatenation's parts, or one copy): per band of its
    pixels, each part's source rows loaded and copied in, then the band stored."""
    parts = [p[0] for p in group]
    x0, dst = parts[0], group[0][3]
    for x in parts:
        x.check(arch)
        if x.pixels != x0.pixels or x.dst_stride != x0.dst_stride:
            raise ProgramError(f"{x.name}: copies into '{dst}' disagree on pixels / pixel "
                               "stride")
    T, ds = x0.pixels, x0.dst_stride  # noqa: N806
    win = RowWindow(T, T, max(x.src_stride for x in parts), ds,
                    extra_fixed=max([x.channels for x in parts if x.src_stride == 0] or [0]))
    for b in _bands(win, arch, x0.name):
        code.band(group[-1][1])
        sc = _Scratch(code.apw, arch.act_words, x0.name)
        n = b.p1 - b.p0
        b_out = sc.place(b.p0 * ds, n * ds)
        mark = sc.at
        for (x, i, srcs, _, _) in group:
            sc.at = mark
            if x.src_stride == 0:
                e_src, n_src = x.src_offset, x.channels
            else:
                e_src, n_src = x.src_offset + b.p0 * x.src_stride, (n - 1) * x.src_stride + x.channels
            b_src = sc.place(e_src, n_src)
            code.xfer(i, False, srcs[0], e_src, n_src, b_src)
            xb = dataclasses.replace(x, pixels=n, src_offset=0, src_elements=n_src,
                                     dst_elements=n * ds)
            code.op(i, [copy_instruction(arch, xb, i, b_src, b_out)],
                    timing.copy_cycles(n, x.channels, arch))
        code.xfer(group[-1][1], True, dst, b.p0 * ds, n * ds, b_out)
    code.end_layer()


__all__ = ["compile_spilled"]
