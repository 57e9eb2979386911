"""Code generation of one layer: instruction words (and weight image / parameter
table entries) for a compute, pooling or residual-add layer at given tensor bases."""

from __future__ import annotations

import math

import numpy as np

from hwgen.compiler.isa import (
    LUT_ADDR_BITS,
    PARAM_ADDR_BITS,
    EltKind,
    Op,
    elt_layout,
    encode,
    layer_layout,
    max_avg_window,
    pack_words,
    param_layout,
    step_layout,
)
from hwgen.compiler.layers import AddLayer, ComputeLayer, DwLayer, LutLayer, PoolLayer, ProgramError
from mapping import timing
from mapping.arch import ArchSpec
from mapping.bands import band_mapping
from mapping.quant import MULT_BITS, SHIFT_MAX, SHIFT_MIN
from mapping.schedule import LayerMapping, MappingError


def geometry(lm: LayerMapping) -> dict[str, int]:
    """The layer as a convolution over an NHWC input (a GEMM is H=M, W=1, C=K), with
    per-axis strides ``sh, sw``, dilations ``dh, dw`` and paddings ``ph, pw``."""
    n = lm.nest
    if n.kind == "gemm":
        return dict(N=1, H=n.gemm_m, W=1, C=n.gemm_k, P=n.gemm_m, Q=1, R=1, S=1,
                    sh=1, sw=1, dh=1, dw=1, ph=0, pw=0)
    return dict(N=n.N, H=n.H, W=n.W, C=n.C, P=n.P, Q=n.Q, R=n.R, S=n.S,
                sh=n.stride_h, sw=n.stride_w, dh=n.dil_h, dw=n.dil_w, ph=n.pad_h, pw=n.pad_w)


def check_compute(layer: ComputeLayer, arch: ArchSpec) -> None:
    lm, name = layer.mapping, layer.name
    try:
        timing.check(lm, arch)
    except MappingError as exc:
        raise ProgramError(f"mapping does not fit the hardware: {exc}") from None
    n = lm.nest
    if n.in_bits > arch.in_bits or n.w_bits > arch.w_bits:
        raise ProgramError(f"{name}: operand widths in={n.in_bits} w={n.w_bits} exceed the "
                           f"array's in_bits={arch.in_bits} w_bits={arch.w_bits}")
    if not 2 <= layer.out_bits <= arch.in_bits:
        raise ProgramError(f"{name}: out_bits={layer.out_bits} must be 2..in_bits={arch.in_bits} "
                           "(outputs are stored in the activation scratchpad)")
    w = np.asarray(layer.weights)
    if w.shape != (n.gemm_k, n.gemm_n):
        raise ProgramError(f"{name}: weights have shape {w.shape}, the GEMM view needs "
                           f"(gemm_k, gemm_n) = {(n.gemm_k, n.gemm_n)}")
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    if w.size and (w.min() < lo or w.max() > hi):
        raise ProgramError(f"{name}: weights outside the signed {arch.w_bits}-bit range {lo}..{hi}")
    for what, arr, (alo, ahi) in (
        ("bias", layer.bias, (-(1 << (arch.acc_bits - 1)), (1 << (arch.acc_bits - 1)) - 1)),
        ("mult", layer.mult, (0, (1 << MULT_BITS) - 1)),
        ("shift", layer.shift, (SHIFT_MIN, SHIFT_MAX)),
    ):
        a = np.asarray(arr)
        if a.shape != (n.gemm_n,):
            raise ProgramError(f"{name}: {what} has shape {a.shape}, needs ({n.gemm_n},)")
        if a.min() < alo or a.max() > ahi:
            raise ProgramError(f"{name}: {what} values must be in {alo}..{ahi}")


def flatten_permutation(shape_hwc: tuple[int, int, int]) -> np.ndarray:
    """Row order taking an NCHW-flattened weight to the NHWC activation layout."""
    h, w, c = shape_hwc
    idx = np.arange(c * h * w).reshape(c, h, w)  # torch flatten order (c, h, w)
    return idx.transpose(1, 2, 0).reshape(-1)  # NHWC order (h, w, c)


def weight_tiles(arch: ArchSpec, lm: LayerMapping, wmat: np.ndarray,
                 image: list[int]) -> dict[tuple[int, int], tuple[int, int, int]]:
    """Appends each weight tile ``(k index, n index)`` of ``lm`` to ``image`` once, in the
    order the tile loop first needs it; returns ``(ki, ni) -> (word address, words,
    weights)``. The tiles do not depend on ``tile_m``: a band of the layer uses them too."""
    wpw = arch.weights_per_ext_word
    wloc: dict[tuple[int, int], tuple[int, int, int]] = {}
    for t in timing.iter_tiles(lm):
        key = (t.ki, t.ni)
        if key not in wloc:
            k0, n0 = t.ki * lm.tile_k, t.ni * lm.tile_n
            blk = wmat[k0:k0 + t.k, n0:n0 + t.n].reshape(-1)
            words = pack_words(list(blk), arch.w_bits, wpw)
            wloc[key] = (len(image), len(words), t.k * t.n)
            image.extend(words)
    return wloc


def _layer_steps(arch: ArchSpec, lm: LayerMapping, g: dict[str, int],
                 wloc: dict[tuple[int, int], tuple[int, int, int]], in_base: int, out_base: int,
                 par_base: int, m_off: int = 0) -> list[dict]:
    """The STEP field values of ``lm``'s tile loop; its pixel ``m`` is the layer's pixel
    ``m_off + m`` (a band), written at ``out_base + m * gemm_n``."""
    R, C = arch.rows, arch.cols
    nest = lm.nest
    Hh, Ww, Cc, Pp, Qq, Ss = g['H'], g['W'], g['C'], g['P'], g['Q'], g['S']
    sh, sw, dh, dw, ph, pw = (g[f] for f in ("sh", "sw", "dh", "dw", "ph", "pw"))
    tiles = list(timing.iter_tiles(lm))
    halves = 2 if arch.double_buffer else 1
    half_words = arch.w_words // halves
    half_of: list[int] = []
    h = 1
    for t in tiles:
        if t.load_weights:
            h = (h + 1) % halves
        half_of.append(h)
    acc_slots = _acc_slots(lm)

    def dma_fields(i: int) -> dict[str, int]:
        t = tiles[i]
        addr, words, count = wloc[(t.ki, t.ni)]
        return dict(dma_en=1, dma_src=addr, dma_words=words, dma_count=count,
                    dma_dst=half_of[i] * half_words)

    def tile_fields(i: int) -> dict[str, int]:
        t = tiles[i]
        m0, n0, k0 = t.mi * lm.tile_m, t.ni * lm.tile_n, t.ki * lm.tile_k
        nimg, pq = divmod(m_off + m0, Pp * Qq)
        p0, q0 = divmod(pq, Qq)
        rs, c0 = divmod(k0, Cc)
        r0, s0 = divmod(rs, Ss)
        return dict(
            tile_en=1, first_k=int(t.first_k), last_k=int(t.last_k), m=t.m, n=t.n, k=t.k,
            nmb=math.ceil(t.m / R), nnb=math.ceil(t.n / C), nkb=math.ceil(t.k / R),
            w_base=half_of[i] * half_words, w_kstride=R * t.n, w_rlast=(R - 1) * t.n,
            acc_base=acc_slots[(t.mi, t.ni)] * lm.tile_m * lm.tile_n, acc_blk=C * t.m,
            q0=q0, p0=p0, c0=c0, s0=s0,
            pix0=in_base + nimg * Hh * Ww * Cc + (p0 * sh - ph) * Ww * Cc + (q0 * sw - pw) * Cc,
            hp0=p0 * sh, wq0=q0 * sw,
            koff0=r0 * dh * Ww * Cc + s0 * dw * Cc + c0, hoff0=r0 * dh - ph, woff0=s0 * dw - pw,
            out_base=out_base + m0 * nest.gemm_n + n0, par_base=par_base + n0,
        )

    steps: list[dict[str, int]] = []
    if arch.double_buffer:
        steps.append(dma_fields(0))
        for i in range(len(tiles)):
            s = tile_fields(i)
            if i + 1 < len(tiles) and tiles[i + 1].load_weights:
                s.update(dma_fields(i + 1))
            steps.append(s)
    else:
        for i, t in enumerate(tiles):
            s = tile_fields(i)
            if t.load_weights:
                s.update(dma_fields(i))
            steps.append(s)
    return steps


def _acc_slots(lm: LayerMapping) -> dict[tuple[int, int], int]:
    """Accumulator slot of each output tile: its index among the tiles live inside the k loop."""
    t = lm.tiles
    inside = lm.order[lm.order.index("k") + 1:]
    slots = {}
    for mi in range(t["m"]):
        for ni in range(t["n"]):
            s = 0
            for d in inside:
                s = s * t[d] + (mi if d == "m" else ni)
            slots[(mi, ni)] = s
    return slots


# ------------------------------------------------------------------ layers
def compute_params(arch: ArchSpec, x: ComputeLayer, params: list[int]) -> int:
    """Appends the layer's per-channel parameters to ``params``; returns its first entry."""
    par_base = len(params)
    for ch in range(x.mapping.nest.gemm_n):
        params.append(encode(param_layout(arch), dict(bias=int(x.bias[ch]), mult=int(x.mult[ch]),
                                                      shift=int(x.shift[ch])),
                             f"{x.name} channel {ch} parameters"))
    if len(params) + arch.cols >= 1 << PARAM_ADDR_BITS:
        raise ProgramError(f"{x.name}: more than {(1 << PARAM_ADDR_BITS) - arch.cols} output "
                           "channels in the whole program")
    return par_base


def compute_words(arch: ArchSpec, x: ComputeLayer, layer_id: int, in_base: int, out_base: int,
                  par_base: int, wloc: dict, band: tuple[int, int] | None = None,
                  as_fields: bool = False) -> list:
    """LAYER + STEP words of a compute layer whose parameters are at ``par_base`` and weight
    tiles at ``wloc`` (:func:`weight_tiles`). ``band = (m_off, pixels)``: only the layer's
    pixels ``m_off .. m_off + pixels - 1`` (``mapping.bands.band_mapping``), written from
    ``out_base``; ``in_base`` is where the input's element 0 would be. ``as_fields``: the
    words as ``("layer" | "step", field values)`` pairs, not yet encoded."""
    lm, nest, g = x.mapping, x.mapping.nest, geometry(x.mapping)
    m_off = 0
    if band is not None:
        m_off, pixels = band
        lm = band_mapping(lm, pixels)
    Hh, Ww, Cc, Pp, Qq, Ss = g["H"], g["W"], g["C"], g["P"], g["Q"], g["S"]  # noqa: N806
    sh, sw, dh, dw, pw = (g[f] for f in ("sh", "sw", "dh", "dw", "pw"))
    hdr = dict(op=Op.LAYER, layer_id=layer_id, C=Cc, S=Ss, Q=Qq, P=Pp, H=Hh, W=Ww,
               sh=sh, sw=sw, dh=dh, dw=dw, pw=pw, gemm_n=nest.gemm_n,
               dk_s=dw * Cc - (Cc - 1),
               dk_r=dh * Ww * Cc - (Ss - 1) * dw * Cc - (Cc - 1),
               dp_q=sw * Cc, dp_p=sh * Ww * Cc - (Qq - 1) * sw * Cc,
               dp_n=Hh * Ww * Cc - (Pp - 1) * sh * Ww * Cc - (Qq - 1) * sw * Cc,
               out_bits=x.out_bits, relu=int(x.relu))
    steps = _layer_steps(arch, lm, g, wloc, in_base, out_base, par_base, m_off)
    for j, s in enumerate(steps):
        s.update(op=Op.STEP, last=int(j == len(steps) - 1))
    if as_fields:
        return [("layer", hdr)] + [("step", s) for s in steps]
    return [encode(layer_layout(arch), hdr, f"{x.name} LAYER")] + [
        encode(step_layout(arch), s, f"{x.name} STEP {j}") for j, s in enumerate(steps)]


def compute_instructions(arch: ArchSpec, x: ComputeLayer, wmat: np.ndarray, layer_id: int,
                         in_base: int, out_base: int, params: list[int],
                         image: list[int]) -> list[int]:
    """LAYER + STEP words of a compute layer (``wmat``: GEMM-view weights, already
    permuted for a flattened input); appends to ``params`` and ``image``."""
    par_base = compute_params(arch, x, params)
    wloc = weight_tiles(arch, x.mapping, wmat, image)
    return compute_words(arch, x, layer_id, in_base, out_base, par_base, wloc)


def _check_out(name: str, out_bits, relu, arch: ArchSpec) -> None:
    if not isinstance(out_bits, (int, np.integer)) or not 2 <= out_bits <= arch.in_bits:
        raise ProgramError(f"{name}: out_bits={out_bits} must be 2..in_bits={arch.in_bits} "
                           "(outputs are stored in the activation scratchpad)")


def _check_mult(name: str, what: str, v, lo: int, hi: int) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProgramError(f"{name}: {what} = {v!r} must be an integer in {lo}..{hi}")


def pool_instruction(arch: ArchSpec, x: PoolLayer, layer_id: int, src: int, dst: int) -> int:
    """The ELT word of a pooling layer reading ``src``, writing ``dst``."""
    return encode(elt_layout(arch), pool_fields(arch, x, layer_id, src, dst), f"{x.name} ELT")


def pool_fields(arch: ArchSpec, x: PoolLayer, layer_id: int, src: int, dst: int,
                channels: int | None = None) -> dict:
    """The ELT fields of a pooling layer reading ``src``, writing ``dst`` (``channels``: a
    slice of that many channels stored densely, default all)."""
    g = x.geometry()
    _check_out(x.name, x.out_bits, x.relu, arch)
    window = g["kh"] * g["kw"]
    if x.kind == "avg":
        _check_mult(x.name, "mult", x.mult, 0, (1 << MULT_BITS) - 1)
        _check_mult(x.name, "shift", x.shift, SHIFT_MIN, SHIFT_MAX)
        if window > max_avg_window(arch):
            raise ProgramError(f"{x.name}: average window of {window} elements exceeds "
                               f"{max_avg_window(arch)} (2**(acc_bits - in_bits), exact sums)")
    H, W, P, Q = x.H, x.W, g["P"], g["Q"]  # noqa: N806
    C = x.C if channels is None else channels  # noqa: N806
    sh, sw, ph, pw = g["sh"], g["sw"], g["ph"], g["pw"]
    f = dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.AVG if x.kind == "avg" else EltKind.MAX,
             relu=int(x.relu), out_bits=x.out_bits,
             ma=int(x.mult) if x.kind == "avg" else 0,
             shift=int(x.shift) if x.kind == "avg" else 0,
             src=src, dst=dst, count=C, N=x.N, P=P, Q=Q, H=H, W=W, kh=g["kh"], kw=g["kw"],
             sh=sh, sw=sw, pix0=src - ph * W * C - pw * C, hp0=-ph, wq0=-pw,
             dq=sw * C, dp=sh * W * C - (Q - 1) * sw * C,
             dn=H * W * C - (P - 1) * sh * W * C - (Q - 1) * sw * C,
             dtap=W * C - (g["kw"] - 1) * C)
    return f


def add_instruction(arch: ArchSpec, x: AddLayer, layer_id: int, src: int, src2: int,
                    dst: int) -> int:
    """The ELT word of a residual add ``dst = add(src, src2)``."""
    _check_out(x.name, x.out_bits, x.relu, arch)
    _check_mult(x.name, "ma", x.ma, 0, (1 << MULT_BITS) - 1)
    _check_mult(x.name, "mb", x.mb, 0, (1 << MULT_BITS) - 1)
    _check_mult(x.name, "shift", x.shift, SHIFT_MIN, SHIFT_MAX)
    f = dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.ADD, relu=int(x.relu),
             out_bits=x.out_bits, ma=int(x.ma), mb=int(x.mb), shift=int(x.shift),
             src=src, src2=src2, dst=dst, count=x.elements)
    return encode(elt_layout(arch), f, f"{x.name} ELT")


def pool_cycles(arch: ArchSpec, x: PoolLayer) -> int:
    g = x.geometry()
    return timing.pool_cycles(x.N * g["P"] * g["Q"], x.C, g["kh"] * g["kw"], arch)


def lut_instruction(arch: ArchSpec, x: LutLayer, layer_id: int, src: int, dst: int,
                    luts: list[int]) -> int:
    """The ELT word of a lookup-table activation; appends its table to ``luts`` (the
    lookup ROM) and points ``tab`` at the entry of input value 0."""
    return lut_word(arch, x, layer_id, src, dst, lut_table(arch, x, luts), x.elements)


def lut_word(arch: ArchSpec, x: LutLayer, layer_id: int, src: int, dst: int, tab: int,
             count: int) -> int:
    """The ELT word of ``count`` elements of a lookup-table activation whose table is at
    ``tab`` (:func:`lut_table`)."""
    f = dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.LUT, out_bits=x.out_bits, src=src,
             dst=dst, count=count, tab=tab)
    return encode(elt_layout(arch), f, f"{x.name} ELT")


def lut_table(arch: ArchSpec, x: LutLayer, luts: list[int]) -> int:
    """Checks ``x``'s table and appends it to ``luts``; returns the ROM address of input
    value 0."""
    t = np.asarray(x.table)
    n = t.size
    if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer) or n < 4 or n & (n - 1) \
            or n > 1 << arch.in_bits:
        raise ProgramError(f"{x.name}: table must be a 1-D integer array of 2**b entries, "
                           f"2 <= b <= in_bits={arch.in_bits} (one per input value); got "
                           f"{t.dtype} of shape {t.shape}")
    if not isinstance(x.out_bits, (int, np.integer)) or not 2 <= x.out_bits <= arch.in_bits:
        raise ProgramError(f"{x.name}: out_bits={x.out_bits} must be 2..in_bits={arch.in_bits} "
                           "(outputs are stored in the activation scratchpad)")
    lo, hi = -(1 << (x.out_bits - 1)), (1 << (x.out_bits - 1)) - 1
    if t.min() < lo or t.max() > hi:
        raise ProgramError(f"{x.name}: table values must be in {lo}..{hi} (out_bits="
                           f"{x.out_bits}); got {t.min()}..{t.max()}")
    if len(luts) + n > 1 << LUT_ADDR_BITS:
        raise ProgramError(f"{x.name}: the lookup tables of the program exceed "
                           f"{1 << LUT_ADDR_BITS} entries")
    tab = len(luts) + n // 2
    luts.extend(int(v) for v in t)
    return tab


def dw_instruction(arch: ArchSpec, x: DwLayer, layer_id: int, src: int, dst: int,
                   dw_weights: list[int], dw_params: list[int]) -> int:
    """The ELT word of a depthwise convolution; appends its weight rows (channel group of
    ``rows`` lanes, then kernel tap row-major: the walk's order) to ``dw_weights`` and its
    parameter rows (one per channel group) to ``dw_params``."""
    tab, par = dw_tables(arch, x, dw_weights, dw_params)
    return encode(elt_layout(arch), dw_fields(arch, x, layer_id, src, dst, tab, par),
                  f"{x.name} ELT")


def dw_tables(arch: ArchSpec, x: DwLayer, dw_weights: list[int],
              dw_params: list[int]) -> tuple[int, int]:
    """Checks a depthwise layer and appends its weight and parameter rows; returns their
    first rows ``(tab, par)``."""
    g = x.geometry()
    R, C = arch.rows, x.C  # noqa: N806
    kh, kw = g["kh"], g["kw"]
    if not isinstance(x.out_bits, (int, np.integer)) or not 2 <= x.out_bits <= arch.in_bits:
        raise ProgramError(f"{x.name}: out_bits={x.out_bits} must be 2..in_bits={arch.in_bits} "
                           "(outputs are stored in the activation scratchpad)")
    wk = x.kernel()
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    if wk.min() < lo or wk.max() > hi:
        raise ProgramError(f"{x.name}: weights outside the signed {arch.w_bits}-bit range "
                           f"{lo}..{hi}")
    play = param_layout(arch)
    pb = play.size
    bounds = {"bias": (-(1 << (arch.acc_bits - 1)), (1 << (arch.acc_bits - 1)) - 1),
              "mult": (0, (1 << MULT_BITS) - 1), "shift": (SHIFT_MIN, SHIFT_MAX)}
    vals = {}
    for what in ("bias", "mult", "shift"):
        v = np.asarray(getattr(x, what), dtype=np.int64).reshape(-1)
        a, b = bounds[what]
        if v.shape != (C,) or v.min() < a or v.max() > b:
            raise ProgramError(f"{x.name}: {what} must be {C} integers in {a}..{b}")
        vals[what] = v
    tab, par = len(dw_weights), len(dw_params)
    wmask = (1 << arch.w_bits) - 1
    for c0 in range(0, C, R):
        for i in range(kh):
            for j in range(kw):
                dw_weights.append(sum((int(wk[c, i, j]) & wmask) << ((c - c0) * arch.w_bits)
                                      for c in range(c0, min(c0 + R, C))))
        row = 0
        for c in range(c0, min(c0 + R, C)):
            e = encode(play, {k: int(vals[k][c]) for k in vals}, f"{x.name} parameters")
            row |= e << ((c - c0) * pb)
        dw_params.append(row)
    if len(dw_weights) > 1 << LUT_ADDR_BITS:
        raise ProgramError(f"{x.name}: the depthwise weight ROM of the program exceeds "
                           f"{1 << LUT_ADDR_BITS} rows")
    return tab, par


def dw_fields(arch: ArchSpec, x: DwLayer, layer_id: int, src: int, dst: int, tab: int,
              par: int, channels: int | None = None) -> dict:
    """The ELT fields of a depthwise convolution reading ``src``, writing ``dst``, its
    weights and parameters at rows ``tab`` / ``par`` (``channels``: a slice of that many
    channels stored densely, its rows from ``tab`` / ``par``; default all)."""
    g = x.geometry()
    H, W = x.H, x.W  # noqa: N806
    C = x.C if channels is None else channels  # noqa: N806
    kh, kw, sh, sw, ph, pw, dh, dw = (g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw",
                                                      "dh", "dw"))
    P, Q = g["P"], g["Q"]  # noqa: N806
    return dict(op=Op.ELT, layer_id=layer_id, kind=EltKind.DW, relu=int(x.relu),
             out_bits=x.out_bits, ma=dh, mb=dw, src=src, src2=par, dst=dst, count=C, N=x.N,
             P=P, Q=Q, H=H, W=W, kh=kh, kw=kw, sh=sh, sw=sw,
             pix0=src - ph * W * C - pw * C, hp0=-ph, wq0=-pw, dq=sw * C,
             dp=sh * W * C - (Q - 1) * sw * C,
             dn=H * W * C - (P - 1) * sh * W * C - (Q - 1) * sw * C,
             dtap=dh * W * C - (kw - 1) * dw * C, dcol=dw * C, tab=tab)
