"""Drawing the RTL fuzz campaign's cases (``fuzz_rtl.py`` runs and checks them).

A case is one seed's ArchSpec, program layers, two input samples and a one-line
description. ``draw(seed)`` is deterministic; it draws an ArchSpec (rows/cols 1-16, biased
to small arrays; both dataflows; operand widths 2-16; accumulators from the minimum that
holds one product up to 32 bits; tight or roomy scratchpads and banks; single or double
buffering; weights baked in ROM or served by the external memory with a random latency 0-12
and bandwidth 1, 1/2, 1/3 or 1/4 words per cycle), a compute layer (a GEMM, or a convolution
with random stride, padding and dilation; in some cases per axis, the height axis drawn on
its own, among them Conv1d-style 1 x k kernels on height-1 inputs), a mapping (the mapper's,
or random tiles and loop order) and, at random, a second layer on the result: a max or
average pool, or a residual add of the layer input. In cases with no second layer, a stream
of its own (the earlier cases keep their seeds) draws one of the element-wise engine's newer
kinds, each ~15 %: a depthwise conv first ("dw", on the input, maybe a lookup table after
it), or as second layer a depthwise conv ("+ dw"; per-axis kernel/stride/padding/dilation,
per-channel requantisation), a max pool with ceil_mode that changes the output size
("+ pool max ceil"), a lookup-table activation ("+ lut FN": a random
``mapping.graph.ACT_FNS`` function's ``mapping.quant.act_table`` with random scales) or a
tensor multiply ("+ mul gate PxC": the input, as P pixels of C channels, times the layer's
C outputs as a per-channel gate when C divides the input, or the other way round; else
"+ mul square": the layer's output times itself). The inputs are one random sample and one of all extreme values.
A third stream makes ~30 % of the cases *spilled* (``hwgen.compiler.spill``): the scratchpad
is shrunk to a random fraction of what the layers need, so the tensors live in external
memory and every layer runs in row bands (and channel slices); the other cases keep
their scratchpad and a draw that would spill is drawn again (so the seeds drawn before
spilling existed keep their cases).

A draw the compiler rightly refuses (a mapping whose tiles exceed a buffer, activations
beyond the scratchpad: a ``ProgramError``/``MappingError``) is drawn again from the same
seed stream; ``Case.refused`` counts the refusals.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hwgen.compiler.layers import ProgramError  # noqa: E402
from hwgen.compiler.program import (  # noqa: E402
    AddLayer,
    ComputeLayer,
    DwLayer,
    LutLayer,
    MulLayer,
    PoolLayer,
    compile_program,
)
from mapping import quant  # noqa: E402
from mapping.arch import ArchSpec, ArchSpecError  # noqa: E402
from mapping.graph import ACT_FNS  # noqa: E402
from mapping.loopnest import LoopNest  # noqa: E402
from mapping.schedule import ORDERS, LayerMapping, MappingError  # noqa: E402

DIMS = (1, 2, 3, 4, 5, 6, 8, 12, 16)
DIM_WEIGHTS = np.array([1 / d for d in DIMS]) / sum(1 / d for d in DIMS)
BANDWIDTHS = (1.0, 0.5, 1 / 3, 0.25)
MAX_DRAWS = 50
SPILL_P = 0.3
RUNS_P = 0.4  # a ws case gathers activations by runs (act_gather, its own stream)


@dataclass
class Case:
    """One drawn case: the ArchSpec, the program layers, the inputs and how it was drawn."""

    seed: int
    arch: ArchSpec
    layers: list
    inputs: np.ndarray  # samples x stream elements
    description: str
    refused: int = 0



# ------------------------------------------------------------------------------ drawing
def _arch(rng: np.random.Generator, need_acc: int) -> ArchSpec:
    rows, cols = (int(rng.choice(DIMS, p=DIM_WEIGHTS)) for _ in range(2))
    in_bits, w_bits = (int(rng.integers(2, 17)) for _ in range(2))
    acc_bits = int(rng.integers(in_bits + w_bits, max(in_bits + w_bits, 32) + 1))
    acc_bits = max(acc_bits, min(48, need_acc))
    db = bool(rng.random() < 0.5)
    ext = bool(rng.random() < 0.4)
    return ArchSpec(
        rows=rows, cols=cols, dataflow=str(rng.choice(["ws", "os"])), in_bits=in_bits,
        w_bits=w_bits, acc_bits=acc_bits, double_buffer=db,
        act_words=int(rng.choice([256, 512, 1024, 4096])),
        w_words=int(rows * cols * (2 if db else 1) * rng.choice([1, 2, 4, 16])),
        acc_words=int(cols * rng.choice([1, 2, 4, 16, 64])),
        act_banks=int(rng.choice([1, 2, 4])), w_banks=int(rng.choice([1, 2])),
        acc_banks=int(rng.choice([1, 2])),
        weight_store="external" if ext else "rom",
        ext_word_bits=int(rng.choice([w for w in (16, 32, 64) if w >= max(w_bits, in_bits)])),
        ext_latency=int(rng.integers(0, 13)), ext_bandwidth=float(rng.choice(BANDWIDTHS)))


def _geometry(geo: np.random.Generator, r: int, s: int, h: int, w: int, stride: int, pad: int,
              dil: int) -> tuple:
    """``(r, s, h, w, (sh, sw), (ph, pw), (dh, dw))``: the square draw, or (40 %) per-axis
    geometry from ``geo``: the height axis drawn on its own, or (a third of those) a Conv1d
    (a 1 x k kernel on a height-1 input with a wider row)."""
    sq = (r, s, h, w, (stride, stride), (pad, pad), (dil, dil))
    if geo.random() >= 0.4:
        return sq
    if geo.random() < 1 / 3:
        s, w = int(geo.integers(1, 6)), int(geo.integers(1, 17))
        return 1, s, 1, w, (1, stride), (0, pad), (1, dil)
    r, h = int(geo.integers(1, 4)), int(geo.integers(1, 9))
    return (r, s, h, w, (int(geo.integers(1, 3)), stride), (int(geo.integers(0, 3)), pad),
            (int(geo.integers(1, 3)), dil))


def _nest(rng: np.random.Generator, geo: np.random.Generator, in_bits: int,
          w_bits: int) -> LoopNest:
    if rng.random() < 0.5:
        return LoopNest.gemm(int(rng.integers(1, 13)), int(rng.integers(1, 17)),
                             int(rng.integers(1, 25)), in_bits=in_bits, w_bits=w_bits)
    while True:
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride, pad, dil = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(1, 3))
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        r, s, h, w, st, pd, dl = _geometry(geo, r, s, h, w, stride, pad, dil)
        if h + 2 * pd[0] - dl[0] * (r - 1) - 1 >= 0 and w + 2 * pd[1] - dl[1] * (s - 1) - 1 >= 0:
            return LoopNest.conv(1, int(rng.integers(1, 9)), int(rng.integers(1, 6)), h, w, r,
                                 s, stride=st, padding=pd, dilation=dl,
                                 in_bits=in_bits, w_bits=w_bits)


def _mapping(rng: np.random.Generator, nest: LoopNest, arch: ArchSpec) -> tuple[LayerMapping, str]:
    if rng.random() < 0.5:
        from mapping.mapper import search_layer

        res = search_layer(nest, arch, str(rng.choice(["latency", "energy"])), layer="L0")
        lm = res.mapping
        return LayerMapping("L0", nest, arch.dataflow, lm.tile_m, lm.tile_n, lm.tile_k,
                            order=lm.order), "mapper"

    def pick(d: int) -> int:
        return int(rng.choice([rng.integers(1, d + 1), d, max(1, d - 1)]))

    return (LayerMapping("L0", nest, arch.dataflow, pick(nest.gemm_m), pick(nest.gemm_n),
                         pick(nest.gemm_k), order=ORDERS[int(rng.integers(len(ORDERS)))]),
            "random")


def _compute_layer(rng, arch: ArchSpec, lm: LayerMapping) -> ComputeLayer:
    nest = lm.nest
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(nest.gemm_k, nest.gemm_n))
    blim = 1 << min(10, arch.acc_bits - 2)
    out_bits = int(rng.integers(2, arch.in_bits + 1))
    # a multiplier/shift that keeps typical sums inside the output range (not all saturated)
    typical = math.sqrt(nest.gemm_k) * (1 << (arch.in_bits - 1)) * (1 << (arch.w_bits - 1))
    shift = int(np.clip(math.ceil(math.log2(max(2.0, typical))) + 15 - out_bits, 1, 62))
    return ComputeLayer(lm, w, rng.integers(-blim, blim, size=nest.gemm_n),
                        rng.integers(1 << 14, 1 << 15, size=nest.gemm_n),
                        np.full(nest.gemm_n, shift), out_bits=out_bits,
                        relu=bool(rng.random() < 0.5))


def _second_layer(rng, arch: ArchSpec, first: ComputeLayer):
    nest, kind = first.mapping.nest, rng.random()
    if nest.kind == "conv" and kind < 0.35 and nest.P * nest.Q > 1:
        k = int(rng.integers(1, min(3, nest.P, nest.Q) + 1))
        pool_kind = str(rng.choice(["max", "avg"]))
        kw = dict(kind=pool_kind, H=nest.P, W=nest.Q, C=nest.K, kernel=k,
                  stride=int(rng.integers(1, k + 1)), padding=int(rng.integers(0, k // 2 + 1)),
                  out_bits=first.out_bits, relu=bool(rng.random() < 0.3), src="L0")
        if pool_kind == "avg":
            kw["mult"], kw["shift"] = quant.quantize_multiplier(1.0 / (k * k))
        return PoolLayer("pool", **kw)
    same = (nest.kind == "gemm" and nest.gemm_n == nest.gemm_k) or (
        nest.kind == "conv" and (nest.P, nest.Q, nest.K) == (nest.H, nest.W, nest.C))
    if same and kind < 0.7:
        shape = (nest.gemm_m, nest.gemm_n) if nest.kind == "gemm" else (nest.P, nest.Q, nest.K)
        ma, mb, sh = quant.add_multipliers(*(float(v) for v in rng.uniform(0.01, 0.1, 3)))
        return AddLayer("add", shape, ma, mb, sh, relu=bool(rng.random() < 0.5), src="L0",
                        src2="input", out_bits=min(first.out_bits, arch.in_bits))
    return None


# new element-wise-engine kinds (own stream ``new`` of ``draw``): they replace only cases that
# drew no second layer, so the earlier kinds' cases keep their seeds. Per seed: a depthwise
# conv first (maybe a lookup table after it), or as second layer a depthwise conv, a
# ceil_mode max pool, a lookup table or a tensor multiply, each with probability NEW_P (else
# no change; "mul" came last and took cases that had none)
NEW_KINDS, NEW_P = ("dw first", "dw", "ceil", "lut", "mul"), 0.15


def out_size(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """torch's conv/pool output size of one axis (``ceil``: max pool's ceil_mode rule)."""
    num = size + 2 * p - d * (k - 1) - 1
    if not ceil:
        return num // s + 1
    out = -(-num // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def _dw_layer(new, arch: ArchSpec, hwc: tuple[int, int, int] | None, src: str | None,
              out_bits: int | None = None) -> DwLayer:
    """A depthwise conv on ``hwc`` (None: a random input) with random per-axis kernel,
    stride, padding and dilation and per-channel bias, multiplier and shift."""
    while True:
        h, w, c = hwc or (int(new.integers(1, 9)), int(new.integers(1, 9)),
                          int(new.integers(1, 10)))
        kh, kw, sh, sw, dh, dw = (int(new.integers(1, 4 if i < 2 else 3)) for i in range(6))
        ph, pw = int(new.integers(0, 3)), int(new.integers(0, 3))
        if out_size(h, kh, sh, ph, dh) >= 1 and out_size(w, kw, sw, pw, dw) >= 1:
            break
    lo, hi = -(1 << (arch.w_bits - 1)), (1 << (arch.w_bits - 1)) - 1
    blim = 1 << min(10, arch.acc_bits - 2)
    out_bits = out_bits or int(new.integers(2, arch.in_bits + 1))
    typical = math.sqrt(kh * kw) * (1 << (arch.in_bits - 1)) * (1 << (arch.w_bits - 1))
    base = math.ceil(math.log2(max(2.0, typical))) + 15 - out_bits
    return DwLayer("dw", H=h, W=w, C=c, weights=new.integers(lo, hi + 1, size=(c, kh, kw)),
                   bias=new.integers(-blim, blim, size=c),
                   mult=new.integers(1 << 14, 1 << 15, size=c),
                   shift=np.clip(base + new.integers(-2, 2, size=c), 1, 62),
                   stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), out_bits=out_bits,
                   relu=bool(new.random() < 0.5), src=src)


def _ceil_pool(new, hwc: tuple[int, int, int], out_bits: int) -> PoolLayer | None:
    """A max pool with ceil_mode whose output is larger than floor mode's (None if none of
    a few draws is)."""
    h, w, c = hwc
    for _ in range(20):
        kh, kw = int(new.integers(1, 4)), int(new.integers(1, 4))
        sh, sw = int(new.integers(1, kh + 1)), int(new.integers(1, kw + 1))
        ph, pw = int(new.integers(0, kh // 2 + 1)), int(new.integers(0, kw // 2 + 1))
        floor = (out_size(h, kh, sh, ph), out_size(w, kw, sw, pw))
        ceil = (out_size(h, kh, sh, ph, ceil=True), out_size(w, kw, sw, pw, ceil=True))
        if min(floor) >= 1 and ceil != floor:
            return PoolLayer("pool", "max", H=h, W=w, C=c, kernel=(kh, kw), stride=(sh, sw),
                             padding=(ph, pw), out_bits=out_bits, relu=bool(new.random() < 0.3),
                             ceil_mode=True)
    return None


def _act_attrs(new) -> dict:
    fn = str(new.choice(ACT_FNS))
    a = {"fn": fn}
    if fn == "relu6":
        a.update(min=0.0, max=6.0)
    elif fn in ("hardtanh", "clamp"):
        a.update(min=-float(new.uniform(0.1, 3)), max=float(new.uniform(0.1, 3)))
    elif fn == "leaky_relu":
        a["negative_slope"] = float(new.uniform(0.01, 0.5))
    elif fn == "elu":
        a["alpha"] = float(new.uniform(0.3, 2.0))
    elif fn == "gelu":
        a["approximate"] = str(new.choice(["none", "tanh"]))
    return a


def _lut_layer(new, arch: ArchSpec, elements: int, in_bits: int) -> LutLayer | None:
    """A random ``ACT_FNS`` activation's ``mapping.quant.act_table`` for ``in_bits``-bit
    inputs, random input and output scales (None when the table would be too big)."""
    if in_bits > quant.LUT_BITS_MAX:
        return None
    attrs, out_bits = _act_attrs(new), int(new.integers(2, arch.in_bits + 1))
    s_in = float(new.uniform(0.5, 8.0)) / quant.qmax(in_bits)
    v = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1)) * s_in
    top = max(float(np.abs(quant.act_float(attrs, v)).max()), 1e-3)
    s_out = top / quant.qmax(out_bits) * float(new.uniform(0.6, 1.4))
    table = quant.act_table(attrs, s_in, in_bits, s_out, out_bits)
    return LutLayer(f"lut_{attrs['fn']}", (elements,), table, out_bits=out_bits)


def _mul_layer(new, arch: ArchSpec, first: ComputeLayer) -> MulLayer:
    """A tensor multiply after ``first`` (``L0``): the input times L0 as a per-channel gate
    when L0's element count divides the input's, L0 times the input as the gate when the
    input's divides L0's, else L0 times itself; random requantisation scaled to the typical
    product."""
    nest = first.mapping.nest
    e = nest.gemm_m * nest.gemm_n
    n_in = nest.gemm_m * nest.gemm_k if nest.kind == "gemm" else nest.H * nest.W * nest.C
    u = new.random()
    gate = n_in % e == 0 and u < 0.8  # the input times L0 per channel
    rgate = not gate and e % n_in == 0 and e > n_in and u < 0.8  # L0 times the input
    out_bits = int(new.integers(2, arch.in_bits + 1))
    a_bits = arch.in_bits if gate or rgate else first.out_bits
    typical = 1 << (a_bits - 1 + first.out_bits - 1)
    shift = int(np.clip(math.ceil(math.log2(max(2, typical))) + 15 - out_bits
                        + int(new.integers(-2, 2)), 1, 62))
    kw = dict(mult=int(new.integers(1 << 14, 1 << 15)), shift=shift, out_bits=out_bits,
              relu=bool(new.random() < 0.3))
    if gate:
        return MulLayer("mul", n_in // e, e, broadcast=True, src="input", src2="L0", **kw)
    if rgate:
        return MulLayer("mul", e // n_in, n_in, broadcast=True, src="L0", src2="input", **kw)
    return MulLayer("mul", 1, e, broadcast=False, src="L0", src2="L0", **kw)


def _new_layers(new, kind: str, arch: ArchSpec, first: ComputeLayer) -> list | None:
    """The layers of a new-``kind`` case (None: the kind does not fit the first layer)."""
    if kind == "dw first":
        dw = _dw_layer(new, arch, None, None)
        g = dw.geometry()
        lut = _lut_layer(new, arch, g["P"] * g["Q"] * dw.C, dw.out_bits) \
            if new.random() < 0.3 else None
        return [dw] + ([lut] if lut else [])
    nest = first.mapping.nest
    hwc = (nest.gemm_m, 1, nest.gemm_n) if nest.kind == "gemm" else (nest.P, nest.Q, nest.K)
    second = (_dw_layer(new, arch, hwc, "L0") if kind == "dw" else
              _ceil_pool(new, hwc, first.out_bits) if kind == "ceil" else
              _mul_layer(new, arch, first) if kind == "mul" else
              _lut_layer(new, arch, int(np.prod(hwc)), first.out_bits))
    return None if second is None else [first, second]


def _ax(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def _geo_str(kh, kw, st, pd, dl) -> str:
    return f"k{kh}x{kw} s{_ax(*st)} p{_ax(*pd)}" + ("" if dl is None else f" d{_ax(*dl)}")


def _tail(x) -> str:
    """The description of a second layer."""
    if isinstance(x, PoolLayer):
        g = x.geometry()
        return f" + pool {x.kind}" + (" ceil " + _geo_str(g["kh"], g["kw"], (g["sh"], g["sw"]),
                                                          (g["ph"], g["pw"]), None)
                                      if x.ceil_mode else "")
    if isinstance(x, DwLayer):
        g = x.geometry()
        return " + dw " + _geo_str(g["kh"], g["kw"], (g["sh"], g["sw"]), (g["ph"], g["pw"]),
                                   (g["dh"], g["dw"]))
    if isinstance(x, LutLayer):
        return f" + lut {x.name[4:]}"
    if isinstance(x, MulLayer):
        return f" + mul gate {x.pixels}x{x.channels}" if x.broadcast else " + mul square"
    return " + add"


def _arch_str(arch: ArchSpec, spilled: bool = False) -> str:
    ext = arch.weight_store == "external" or spilled
    return (f"{arch.rows}x{arch.cols} {arch.dataflow} i{arch.in_bits}w{arch.w_bits}"
            f"a{arch.acc_bits} {'db' if arch.double_buffer else 'sb'} {arch.weight_store}"
            + (f"(lat {arch.ext_latency}, bw {arch.ext_bandwidth:.2f})" if ext else "")
            + (" runs" if arch.act_gather == "runs" else "")
            + (f" spilled act_words={arch.act_words}" if spilled else ""))


def _fits(arch: ArchSpec, layers: list, want_spill: bool) -> None:
    """Compile; ProgramError if the program would spill in a case that does not want it (as
    the compiler refused it before spilling existed: the seed's later draws stay the same)."""
    if compile_program(arch, layers).spilled and not want_spill:
        raise ProgramError("spills")


def _spilled_arch(spill: np.random.Generator, arch: ArchSpec, layers: list) -> ArchSpec | None:
    """``arch`` with a scratchpad too small for ``layers`` together (they spill), or None."""
    prog = compile_program(arch, layers)
    if prog.spilled:
        return arch
    need = sum(n for _, n in prog.tensors.values())
    for _ in range(8):
        small = arch.replace(act_words=max(4, int(need * spill.uniform(0.1, 0.95))))
        try:
            if compile_program(small, layers).spilled:
                return small
        except (ProgramError, MappingError):
            continue
    return None


def draw(seed: int) -> Case:
    """The case of ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, 20261207])
    geo = np.random.default_rng([seed, 20261207, 1])  # per-axis conv geometry (own stream)
    new = np.random.default_rng([seed, 20261207, 2])  # the new kinds (own stream)
    spill = np.random.default_rng([seed, 20261207, 3])  # spilled programs (own stream)
    want_spill = bool(spill.random() < SPILL_P)
    gather = np.random.default_rng([seed, 20261207, 4])  # act_gather (own stream)
    want_runs = bool(gather.random() < RUNS_P)
    u = float(new.random())
    new_kind = NEW_KINDS[int(u / NEW_P)] if u < NEW_P * len(NEW_KINDS) else None
    refused = 0
    for _ in range(MAX_DRAWS):
        in_bits, w_bits = int(rng.integers(2, 17)), int(rng.integers(2, 17))
        nest = _nest(rng, geo, in_bits, w_bits)
        need = in_bits + w_bits + math.ceil(math.log2(nest.gemm_k + 1)) + 1
        try:
            arch = _arch(rng, need).replace(in_bits=in_bits, w_bits=w_bits)
            arch = arch.replace(acc_bits=max(arch.acc_bits, in_bits + w_bits),
                                ext_word_bits=max(arch.ext_word_bits, 16 if max(in_bits, w_bits)
                                                  <= 16 else 32))
            if want_runs and arch.dataflow == "ws":
                arch = arch.replace(act_gather="runs")
            lm, how = _mapping(rng, nest, arch)
            first = _compute_layer(rng, arch, lm)
            second = _second_layer(rng, arch, first)
            layers = [first] + ([second] if second is not None else [])
            _fits(arch, layers, want_spill)
        except (ProgramError, MappingError, ArchSpecError, ValueError):
            refused += 1
            continue
        if second is None and new_kind is not None:  # the new kind, if it compiles
            try:
                alt = _new_layers(new, new_kind, arch, first)
                if alt is not None:
                    _fits(arch, alt, want_spill)
                    layers, first = alt, alt[0]
                    second = alt[1] if len(alt) > 1 else None
            except (ProgramError, ValueError):
                refused += 1
        arch = _spilled_arch(spill, arch, layers) if want_spill else arch
        if arch is None or compile_program(arch, layers).spilled != want_spill:
            refused += 1  # spills (or cannot) against this seed's draw: draw again
            continue
        n_in = first.in_elements if isinstance(first, DwLayer) else \
            nest.gemm_m * nest.gemm_k if nest.kind == "gemm" else nest.H * nest.W * nest.C
        lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
        x = np.stack([rng.integers(lo, hi + 1, size=n_in), rng.choice([lo, hi], size=n_in)])
        tail = "" if second is None else _tail(second)
        if isinstance(first, DwLayer):
            body = f"dw C{first.C} {first.H}x{first.W} " + _tail(first)[6:] + tail
        else:
            shape = (f"gemm {nest.gemm_m}x{nest.gemm_n}x{nest.gemm_k}" if nest.kind == "gemm"
                     else f"conv C{nest.C} K{nest.K} {nest.H}x{nest.W} "
                     + _geo_str(nest.R, nest.S, (nest.stride_h, nest.stride_w),
                                (nest.pad_h, nest.pad_w), (nest.dil_h, nest.dil_w)))
            body = (f"{shape}{tail}; {how} tiles {lm.tile_m}/{lm.tile_n}/{lm.tile_k} "
                    f"{''.join(lm.order)}")
        return Case(seed, arch, layers, x, f"{_arch_str(arch, want_spill)}; {body}", refused)
    raise RuntimeError(f"seed {seed}: no valid case in {MAX_DRAWS} draws")
