"""``Program``: the controller's instruction stream, the weight-store image and
the per-channel post-processing table, compiled from a list of layers.

Instruction set (one ROM word each, fields packed LSB first; widths depend only
on the ArchSpec, see :func:`layer_fields` / :func:`step_fields`):

- ``END``   (op 0): the model is done, stream the output out.
- ``LAYER`` (op 1): header of a compute layer: the geometry of its implicit
  im2col (input ``H x W x C`` NHWC, kernel radices, strides and the address
  deltas of the mixed-radix walks), the output row stride and the output
  format (``out_bits``, ``relu``). Costs ``LAYER_SETUP`` cycles (fetch, decode).
- ``STEP``  (op 2): one step of the layer: an optional DMA burst (weight-store
  word address, words, weights, scratchpad destination) and an optional tile
  (sizes, pass counts, weight-half base, accumulator base, first/last k, the
  mixed-radix start of its pixel and reduction walks, output and parameter
  addresses). Double-buffered, the burst of step i is the *next* tile's weights
  and runs beside the tile; single-buffered it is this tile's and runs first.

The compiler unrolls the tile loop (``mapping.timing.iter_tiles``) in software,
so the hardware only walks passes and rows with adders and comparators.
``flatten`` compiles to no instruction: the next linear layer's weight rows are
permuted to consume the NHWC activation layout directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwgen.dma import EXT_ADDR_BITS, burst_len_bits, pack_words
from hwgen.memory import bits_for
from mapping import timing
from mapping.arch import ArchSpec
from mapping.schedule import LayerMapping, MappingError

OP_END, OP_LAYER, OP_STEP = 0, 1, 2
OP_BITS = 2
PARAM_ADDR_BITS = 16
MULT_BITS, SHIFT_BITS = 15, 6
MAX_LAYERS = 256


class ProgramError(ValueError):
    """A layer list the hardware cannot run; the message names the layer and the limit."""


# --------------------------------------------------------------------- layers
@dataclass
class ComputeLayer:
    """A GEMM or convolution with its integer operands (``mapping.quant`` semantics).

    ``weights``: GEMM view ``(gemm_k, gemm_n)`` (``mapping.quant.gemm_weights``);
    ``bias``/``mult``/``shift``: per output channel; output
    ``requantize(wrap(acc + bias), mult, shift, out_bits, relu)``.
    """

    mapping: LayerMapping
    weights: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    out_bits: int = 8
    relu: bool = False

    @property
    def name(self) -> str:
        return self.mapping.layer


@dataclass
class FlattenLayer:
    """``torch.flatten`` of an NCHW activation before a linear layer (no instruction)."""

    name: str = "flatten"


# ------------------------------------------------------------------ encoding
def dims_bits(arch: ArchSpec) -> int:
    return bits_for(max(arch.act_words, arch.w_words, arch.acc_words) + 2) + 1


def layer_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of the LAYER instruction, LSB first."""
    db = dims_bits(arch)
    sb = db + 3
    return ([("op", OP_BITS, False), ("layer_id", 8, False)]
            + [(f, db, False) for f in ("C", "S", "Q", "P", "H", "W", "stride", "dil", "pad",
                                        "gemm_n")]
            + [(f, sb, True) for f in ("dk_s", "dk_r", "dp_q", "dp_p", "dp_n")]
            + [("out_bits", 5, False), ("relu", 1, False)])


def step_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of the STEP instruction, LSB first."""
    db = dims_bits(arch)
    sb = db + 3
    wa, ca, aa = bits_for(arch.w_words), bits_for(arch.acc_words), bits_for(arch.act_words)
    return ([("op", OP_BITS, False), ("last", 1, False),
             ("dma_en", 1, False), ("dma_src", EXT_ADDR_BITS, False),
             ("dma_words", burst_len_bits(arch), False), ("dma_count", db, False),
             ("dma_dst", wa, False),
             ("tile_en", 1, False), ("first_k", 1, False), ("last_k", 1, False)]
            + [(f, db, False) for f in ("m", "n", "k", "nmb", "nnb", "nkb")]
            + [("w_base", wa, False), ("w_kstride", db, False), ("w_rlast", db, False),
               ("acc_base", ca, False), ("acc_blk", db, False),
               ("q0", db, False), ("p0", db, False), ("c0", db, False), ("s0", db, False)]
            + [(f, sb, True) for f in ("pix0", "hp0", "wq0", "koff0", "hoff0", "woff0")]
            + [("out_base", aa, False), ("par_base", PARAM_ADDR_BITS, False)])


def word_bits(arch: ArchSpec) -> int:
    return max(sum(w for _, w, _ in layer_fields(arch)), sum(w for _, w, _ in step_fields(arch)))


def encode(fields: list[tuple[str, int, bool]], values: dict[str, int], where: str) -> int:
    """Pack ``values`` into an instruction word; a value that does not fit raises ProgramError."""
    word, off = 0, 0
    for name, width, sgn in fields:
        v = int(values.get(name, 0))
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sgn else (0, (1 << width) - 1)
        if not lo <= v <= hi:
            raise ProgramError(f"{where}: field {name} = {v} does not fit {width} bits "
                               f"({'signed' if sgn else 'unsigned'}; allowed {lo}..{hi})")
        word |= (v & ((1 << width) - 1)) << off
        off += width
    return word


def decode(fields: list[tuple[str, int, bool]], word: int) -> dict[str, int]:
    out, off = {}, 0
    for name, width, sgn in fields:
        v = (word >> off) & ((1 << width) - 1)
        if sgn and v >> (width - 1):
            v -= 1 << width
        out[name] = v
        off += width
    return out


# ------------------------------------------------------------------- program
@dataclass
class LayerInfo:
    name: str
    kind: str
    predicted_cycles: int
    in_base: int
    out_base: int
    out_elements: int


@dataclass
class Program:
    """Instruction ROM image, weight-store image (external words) and parameter table."""

    arch: ArchSpec
    instructions: list[int]
    weight_image: list[int]
    params: list[int]
    layers: list[LayerInfo]
    input_base: int
    input_count: int
    output_base: int
    output_count: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def compute_layers(self) -> int:
        return len(self.layers)

    def summary(self) -> dict[str, Any]:
        return {
            "instructions": len(self.instructions),
            "instruction_bits": word_bits(self.arch),
            "weight_words": len(self.weight_image),
            "weight_word_bits": self.arch.ext_word_bits,
            "param_entries": len(self.params),
            "input_base": self.input_base, "input_count": self.input_count,
            "output_base": self.output_base, "output_count": self.output_count,
        }


def param_bits(arch: ArchSpec) -> int:
    return arch.acc_bits + MULT_BITS + SHIFT_BITS


def _geometry(lm: LayerMapping) -> dict[str, int]:
    """The layer as a convolution over an NHWC input (a GEMM is H=M, W=1, C=K)."""
    n = lm.nest
    if n.kind == "gemm":
        return dict(N=1, H=n.gemm_m, W=1, C=n.gemm_k, P=n.gemm_m, Q=1, R=1, S=1,
                    stride=1, dil=1, pad=0)
    return dict(N=n.N, H=n.H, W=n.W, C=n.C, P=n.P, Q=n.Q, R=n.R, S=n.S,
                stride=n.stride, dil=n.dilation, pad=n.padding)


def _check_layer(layer: ComputeLayer, arch: ArchSpec) -> None:
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
        ("shift", layer.shift, (1, 62)),
    ):
        a = np.asarray(arr)
        if a.shape != (n.gemm_n,):
            raise ProgramError(f"{name}: {what} has shape {a.shape}, needs ({n.gemm_n},)")
        if a.min() < alo or a.max() > ahi:
            raise ProgramError(f"{name}: {what} values must be in {alo}..{ahi}")


def _flatten_permutation(shape_hwc: tuple[int, int, int]) -> np.ndarray:
    """Row order taking an NCHW-flattened weight to the NHWC activation layout."""
    h, w, c = shape_hwc
    idx = np.arange(c * h * w).reshape(c, h, w)  # torch flatten order (c, h, w)
    return idx.transpose(1, 2, 0).reshape(-1)  # NHWC order (h, w, c)


def compile_program(arch: ArchSpec, layers: list) -> Program:
    """Compile a list of :class:`ComputeLayer` / :class:`FlattenLayer` into one program.

    Layer ``i`` reads layer ``i-1``'s output; the first layer's input is streamed
    in (NHWC) and the last layer's output streamed out (NHWC / row-major).
    """
    computes = [x for x in layers if isinstance(x, ComputeLayer)]
    for x in layers:
        if not isinstance(x, (ComputeLayer, FlattenLayer)):
            raise ProgramError(f"layer {x!r} is not a ComputeLayer or FlattenLayer")
    if not computes:
        raise ProgramError("a program needs at least one compute layer")
    if len(computes) > MAX_LAYERS:
        raise ProgramError(f"{len(computes)} compute layers; at most {MAX_LAYERS}")
    C = arch.cols
    lf, sf = layer_fields(arch), step_fields(arch)
    instrs: list[int] = []
    image: list[int] = []
    params: list[int] = []
    infos: list[LayerInfo] = []
    pb = param_bits(arch)
    in_base, prev_hwc, flat_pending = 0, None, False
    first_in = None
    for x in layers:
        if isinstance(x, FlattenLayer):
            flat_pending = True
            continue
        _check_layer(x, arch)
        lm, nest, g = x.mapping, x.mapping.nest, _geometry(x.mapping)
        wmat = np.asarray(x.weights, dtype=np.int64)
        if flat_pending and prev_hwc is not None and nest.kind == "gemm":
            if nest.gemm_k != prev_hwc[0] * prev_hwc[1] * prev_hwc[2]:
                raise ProgramError(f"{x.name}: K={nest.gemm_k} after flatten of {prev_hwc}")
            wmat = wmat[_flatten_permutation(prev_hwc)]
        flat_pending = False
        in_count = g["N"] * g["H"] * g["W"] * g["C"]
        out_count = nest.gemm_m * nest.gemm_n
        if first_in is None:
            first_in = in_count
        out_base = in_base + in_count if in_base < out_count else 0
        if max(in_base + in_count, out_base + out_count) > arch.act_words:
            raise ProgramError(f"{x.name}: input ({in_count}) and output ({out_count}) "
                               f"activations exceed act_words={arch.act_words}")
        # --- parameter table
        par_base = len(params)
        for ch in range(nest.gemm_n):
            b = int(x.bias[ch]) & ((1 << arch.acc_bits) - 1)
            params.append(b | int(x.mult[ch]) << arch.acc_bits
                          | int(x.shift[ch]) << (arch.acc_bits + MULT_BITS))
        if len(params) + C >= 1 << PARAM_ADDR_BITS:
            raise ProgramError(f"{x.name}: more than {(1 << PARAM_ADDR_BITS) - C} output channels "
                               "in the whole program")
        # --- layer header
        Hh, Ww, Cc, Pp, Qq, Ss = g["H"], g["W"], g["C"], g["P"], g["Q"], g["S"]
        st, dl, pd = g["stride"], g["dil"], g["pad"]
        hdr = dict(op=OP_LAYER, layer_id=len(infos), C=Cc, S=Ss, Q=Qq, P=Pp, H=Hh, W=Ww,
                   stride=st, dil=dl, pad=pd, gemm_n=nest.gemm_n,
                   dk_s=dl * Cc - (Cc - 1),
                   dk_r=dl * Ww * Cc - (Ss - 1) * dl * Cc - (Cc - 1),
                   dp_q=st * Cc, dp_p=st * Ww * Cc - (Qq - 1) * st * Cc,
                   dp_n=Hh * Ww * Cc - (Pp - 1) * st * Ww * Cc - (Qq - 1) * st * Cc,
                   out_bits=x.out_bits, relu=int(x.relu))
        instrs.append(encode(lf, hdr, f"{x.name} LAYER"))
        steps = _layer_steps(arch, lm, g, wmat, in_base, out_base, par_base, image)
        for j, s in enumerate(steps):
            s.update(op=OP_STEP, last=int(j == len(steps) - 1))
            instrs.append(encode(sf, s, f"{x.name} STEP {j}"))
        infos.append(LayerInfo(name=x.name, kind=nest.kind,
                               predicted_cycles=timing.layer_cycles(lm, arch).cycles,
                               in_base=in_base, out_base=out_base, out_elements=out_count))
        prev_hwc = (g["P"], g["Q"], nest.gemm_n)
        in_base = out_base
    instrs.append(encode(lf, dict(op=OP_END), "END"))
    for pv in params:
        assert pv < 1 << pb
    return Program(arch=arch, instructions=instrs, weight_image=image, params=params,
                   layers=infos, input_base=0, input_count=first_in,
                   output_base=infos[-1].out_base, output_count=infos[-1].out_elements)


def _layer_steps(arch: ArchSpec, lm: LayerMapping, g: dict[str, int], wmat: np.ndarray,
                 in_base: int, out_base: int, par_base: int, image: list[int]) -> list[dict]:
    """The STEP field values of one layer; appends its weight tiles to ``image``."""
    R, C, wpw = arch.rows, arch.cols, arch.weights_per_ext_word
    nest = lm.nest
    Hh, Ww, Cc, Pp, Qq, Ss = g['H'], g['W'], g['C'], g['P'], g['Q'], g['S']
    st, dl, pd = g['stride'], g['dil'], g['pad']
    # --- tiles and weight image
    tiles = list(timing.iter_tiles(lm))
    wloc: dict[tuple[int, int], tuple[int, int, int]] = {}  # (ki, ni) -> (addr, words, n)
    for t in tiles:
        key = (t.ki, t.ni)
        if key not in wloc:
            k0, n0 = t.ki * lm.tile_k, t.ni * lm.tile_n
            blk = wmat[k0:k0 + t.k, n0:n0 + t.n].reshape(-1)
            words = pack_words(list(blk), arch.w_bits, wpw)
            wloc[key] = (len(image), len(words), t.k * t.n)
            image.extend(words)
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
        nimg, pq = divmod(m0, Pp * Qq)
        p0, q0 = divmod(pq, Qq)
        rs, c0 = divmod(k0, Cc)
        r0, s0 = divmod(rs, Ss)
        return dict(
            tile_en=1, first_k=int(t.first_k), last_k=int(t.last_k), m=t.m, n=t.n, k=t.k,
            nmb=math.ceil(t.m / R), nnb=math.ceil(t.n / C), nkb=math.ceil(t.k / R),
            w_base=half_of[i] * half_words, w_kstride=R * t.n, w_rlast=(R - 1) * t.n,
            acc_base=acc_slots[(t.mi, t.ni)] * lm.tile_m * lm.tile_n, acc_blk=C * t.m,
            q0=q0, p0=p0, c0=c0, s0=s0,
            pix0=in_base + nimg * Hh * Ww * Cc + (p0 * st - pd) * Ww * Cc + (q0 * st - pd) * Cc,
            hp0=p0 * st, wq0=q0 * st,
            koff0=r0 * dl * Ww * Cc + s0 * dl * Cc + c0, hoff0=r0 * dl - pd, woff0=s0 * dl - pd,
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
