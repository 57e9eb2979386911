"""Integer quantisation semantics: exactly what the accelerator computes.

Every function here is small, pure numpy and vectorised; the Amaranth
post-processing unit, ``sim.golden`` and ``mapping.fakequant`` all implement
this contract.

Number format
    Signed symmetric, zero point 0 everywhere. ``qrange(b)`` is
    ``[-(2**(b-1)), 2**(b-1) - 1]``; when a ReLU is fused into the producing
    op the lower bound is 0 (``qrange(b, relu=True)``). Bit widths 2..16.

Activations (per tensor)
    ``s = max|x| / (2**(b-1) - 1)`` (``s = 1.0`` if ``max|x| == 0``).
    Host-side input quantisation: ``q = clamp(floor(x / s + 0.5))``.

Weights (per output channel ``c``, axis 0 of the torch weight)
    ``s_w[c] = max|w[c]| / (2**(wb-1) - 1)`` (1.0 for an all-zero channel),
    ``q_w = clamp(round_half_away(w / s_w))``. Bias:
    ``q_b[c] = round_half_away(b[c] / (s_in * s_w[c]))`` as int64, added to the
    accumulator. So that ``|q_b| <= 2**(acc_bits-2)``, ``s_w[c]`` is floored at
    ``|b[c]| / (s_in * 2**(acc_bits-2))`` (:func:`bias_scale_floor`; only
    matters for nearly dead channels).

Accumulator
    ``acc = wrap(sum(q_in * q_w) + q_b, acc_bits)``: two's complement modulo
    ``2**acc_bits`` (``acc_bits`` <= 48).

Requantisation
    A positive real multiplier ``m`` is ``mult * 2**-shift`` with ``mult`` a
    15-bit unsigned integer in ``[2**14, 2**15)`` and ``1 <= shift <= 62``
    (:func:`quantize_multiplier`). Multipliers too small for that
    (``m < 2**-48``) keep ``shift = 62`` and a smaller ``mult =
    round(m * 2**62)`` (possibly 0: the output is then all zeros, which is what
    the real multiplier would give after rounding for any 48-bit accumulator
    up to +-1 LSB). Multipliers ``m >= 2**14 - 2**-2`` cannot be represented
    and raise :class:`QuantError`.
    ``requantize(acc, mult, shift, b, relu) =
    clamp((acc * mult + (1 << (shift - 1))) >> shift, qrange(b, relu))`` with
    ``>>`` an arithmetic (floor) shift, all in int64: with ``|acc| <= 2**47``
    and ``mult < 2**15`` the product and rounding term stay below ``2**63``.

Residual ``add(a, b)``
    One common shift ``sh`` (the largest in 1..62 such that both
    ``ma = round(sa/so * 2**sh)`` and ``mb = round(sb/so * 2**sh)`` are below
    ``2**15``); ``y = clamp((a*ma + b*mb + (1 << (sh-1))) >> sh, qrange(b, relu))``.

Other ops
    ``maxpool2d``: integer max (padding never wins), scale unchanged.
    ``avgpool2d``: integer window sum (zero padding counts), then
    ``requantize`` with the multiplier for ``1/window`` (``s_out = s_in``).
    ``relu`` (not fused): ``max(q, 0)``, scale unchanged.
    ``mul`` by a scalar ``c``: scale change only, ``s_out = s_in * |c|`` and
    ``q_out = q`` (``-q`` saturated when ``c < 0``). ``mul`` of two tensors
    and ``matmul``: ``acc = sum(qa * qb)``, requantised with
    ``sa * sb * scale / so``.
    ``flatten``/``reshape``/``transpose``: data movement only (NCHW order).
    ``act`` (element-wise function ``attrs["fn"]``, :func:`act_float`): a lookup
    table indexed by the quantised input, built once at quantisation
    (:func:`act_table`: ``table[v - qmin] = clamp(floor(f(v * s_in) / s_out + 0.5))``,
    ``2**in_bits`` entries) and applied by indexing (:func:`lut`). Output scale
    calibrated (:func:`act_out_scale`: clamp-type functions use their bound).
    ``softmax``/``layernorm``/``gelu`` are *host-executed*: dequantise
    (``q * s`` in float64), apply the op in float64 numpy (:func:`host_op`),
    requantise with ``quantize_act`` and the output scale.

Rounding: ``round_half_away`` rounds halves away from zero (used for weights,
biases and multipliers); activations use ``floor(x + 0.5)`` (halves up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BITS_MIN, BITS_MAX = 2, 16
ACC_BITS_MIN, ACC_BITS_MAX = 8, 48
MULT_BITS = 15  # unsigned requantisation multiplier (hardware: parameter and ELT fields)
SHIFT_MIN, SHIFT_MAX = 1, 62
SHIFT_BITS = 6  # hardware shift fields: 0..63 (0 = no rounding, the max pool's pass-through)


class QuantError(ValueError):
    """A quantisation parameter is out of range; the message names it and the allowed range."""


def check_bits(bits: object, what: str = "bits") -> int:
    """``bits`` as an int if it is an integer in 2..16, else :class:`QuantError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
        BITS_MIN <= int(bits) <= BITS_MAX
    ):
        raise QuantError(
            f"{what} = {bits!r} is not supported: bit widths must be integers from "
            f"{BITS_MIN} to {BITS_MAX}"
        )
    return int(bits)


def check_acc_bits(acc_bits: object) -> int:
    """``acc_bits`` as an int if it is an integer in 8..48, else :class:`QuantError`."""
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, (int, np.integer)) or not (
        ACC_BITS_MIN <= int(acc_bits) <= ACC_BITS_MAX
    ):
        raise QuantError(
            f"acc_bits = {acc_bits!r} is not supported: accumulator widths must be integers "
            f"from {ACC_BITS_MIN} to {ACC_BITS_MAX} (int64 requantisation needs acc_bits + 15 <= 63)"
        )
    return int(acc_bits)


def qrange(bits: int, relu: bool = False) -> tuple[int, int]:
    """Inclusive integer range of a ``bits``-wide signed value (lower bound 0 with ReLU)."""
    return (0 if relu else -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def clamp(q: np.ndarray, bits: int, relu: bool = False) -> np.ndarray:
    lo, hi = qrange(bits, relu)
    return np.clip(q, lo, hi).astype(np.int64)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, halves away from zero (as int64)."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def act_scale(max_abs: float, bits: int) -> float:
    """Per-tensor activation scale ``max|x| / (2**(b-1) - 1)`` (1.0 when ``max|x| == 0``)."""
    max_abs = float(max_abs)
    return max_abs / qmax(bits) if max_abs > 0 else 1.0


def quantize_act(x: np.ndarray, scale: float, bits: int, relu: bool = False) -> np.ndarray:
    """``clamp(floor(x / s + 0.5))`` as int64 (host-side input / host-op quantisation)."""
    x = np.asarray(x, dtype=np.float64)
    return clamp(np.floor(x / scale + 0.5), bits, relu)


def dequantize(q: np.ndarray, scale: float) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * scale


def quantize_weights(w: np.ndarray, w_bits: int,
                     min_scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (axis 0) symmetric weights: ``(q_w int64, s_w float64[C])``.

    ``min_scale`` (per channel) is a floor for ``s_w`` (see :func:`bias_scale_floor`).
    """
    w = np.asarray(w, dtype=np.float64)
    s_w = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / qmax(w_bits)
    if min_scale is not None:
        s_w = np.maximum(s_w, min_scale)
    s_w = np.where(s_w > 0, s_w, 1.0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    return clamp(round_half_away(w / s_w.reshape(shape)), w_bits), s_w


def bias_scale_floor(b: np.ndarray, s_in: float, acc_bits: int) -> np.ndarray:
    """Smallest weight scale per channel keeping ``|q_b| <= 2**(acc_bits-2)``.

    A (nearly) dead channel with tiny weights and a sizeable bias would
    otherwise need a bias beyond the accumulator: its weight scale is raised
    to ``|b| / (s_in * 2**(acc_bits-2))`` instead (its weights then round to
    fewer levels, which they hardly used anyway).
    """
    return np.abs(np.asarray(b, dtype=np.float64)) / (s_in * 2.0 ** (acc_bits - 2))


def quantize_bias(b: np.ndarray, s_in: float, s_w: np.ndarray) -> np.ndarray:
    """``round_half_away(b / (s_in * s_w))`` as int64 (accumulator units)."""
    return round_half_away(np.asarray(b, dtype=np.float64) / (s_in * np.asarray(s_w)))


def wrap(acc: np.ndarray, acc_bits: int) -> np.ndarray:
    """Two's complement wrap of int64 ``acc`` to ``acc_bits`` bits."""
    acc = np.asarray(acc, dtype=np.int64)
    if acc_bits >= 64:
        return acc
    half = np.int64(1) << np.int64(acc_bits - 1)
    mask = (np.int64(1) << np.int64(acc_bits)) - 1
    return ((acc + half) & mask) - half


def quantize_multiplier(m: float) -> tuple[int, int]:
    """``(mult, shift)`` with ``m ~= mult * 2**-shift``, ``2**14 <= mult < 2**15``, ``1 <= shift <= 62``.

    Relative error at most ``2**-15``. See the module docstring for tiny ``m``.
    """
    m = float(m)
    if not np.isfinite(m) or m <= 0:
        raise QuantError(f"requantisation multiplier {m!r} must be a positive finite number")
    _, e = np.frexp(m)  # m = f * 2**e, 0.5 <= f < 1
    shift = MULT_BITS - int(e)  # mult = m * 2**shift in [2**14, 2**15)
    if shift > SHIFT_MAX:
        return int(round_half_away(m * 2.0**SHIFT_MAX)), SHIFT_MAX
    mult = int(round_half_away(m * 2.0**shift))
    if mult == 1 << MULT_BITS:  # rounded up out of range
        mult, shift = mult >> 1, shift - 1
    if shift < SHIFT_MIN:
        raise QuantError(
            f"requantisation multiplier {m!r} is too large: it must be below 2**14 "
            "(shift >= 1 with a 15-bit multiplier)"
        )
    return mult, shift


def quantize_multipliers(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of :func:`quantize_multiplier`: int64 arrays ``(mult, shift)``."""
    pairs = [quantize_multiplier(v) for v in np.asarray(m, dtype=np.float64).ravel()]
    mult = np.array([p[0] for p in pairs], dtype=np.int64).reshape(np.shape(m))
    shift = np.array([p[1] for p in pairs], dtype=np.int64).reshape(np.shape(m))
    return mult, shift


def requantize(acc: np.ndarray, mult, shift, out_bits: int, relu: bool = False) -> np.ndarray:
    """``clamp((acc * mult + (1 << (shift-1))) >> shift, qrange(out_bits, relu))`` in int64.

    ``mult``/``shift`` broadcast against ``acc`` (per-channel arrays allowed).
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    lim = np.int64(1) << np.int64(ACC_BITS_MAX - 1)
    assert acc.size == 0 or (acc.min() >= -lim and acc.max() <= lim), "accumulator exceeds 48 bits"
    assert mult.size == 0 or (mult.min() >= 0 and mult.max() < (1 << MULT_BITS))
    y = (acc * mult + (np.int64(1) << (shift - 1))) >> shift
    return clamp(y, out_bits, relu)


def add_multipliers(sa: float, sb: float, so: float) -> tuple[int, int, int]:
    """``(ma, mb, sh)`` for ``a*sa + b*sb -> y*so``: the largest shift keeping both below 2**15."""
    ra, rb = sa / so, sb / so
    if not (ra > 0 and rb > 0 and np.isfinite(ra) and np.isfinite(rb)):
        raise QuantError(f"residual add scale ratios {ra!r}, {rb!r} must be positive and finite")

    def rnd(v: float) -> int:
        return int(np.floor(v + 0.5))

    _, e = np.frexp(max(ra, rb))
    sh = min(SHIFT_MAX, MULT_BITS - int(e))  # max ratio * 2**sh in [2**14, 2**15)
    while sh >= SHIFT_MIN and max(rnd(ra * 2.0**sh), rnd(rb * 2.0**sh)) >= 1 << MULT_BITS:
        sh -= 1
    if sh < SHIFT_MIN:
        raise QuantError(
            f"residual add scale ratios {ra:.4g}, {rb:.4g} are too large (must be below 2**14)"
        )
    return rnd(ra * 2.0**sh), rnd(rb * 2.0**sh), sh


def requantize_add(a, b, ma: int, mb: int, sh: int, out_bits: int, relu: bool = False):
    """``clamp((a*ma + b*mb + (1 << (sh-1))) >> sh, qrange(out_bits, relu))`` in int64."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    y = (a * np.int64(ma) + b * np.int64(mb) + (np.int64(1) << np.int64(sh - 1))) >> np.int64(sh)
    return clamp(y, out_bits, relu)


def gemm_weights(qweight: np.ndarray) -> np.ndarray:
    """Torch-layout weight -> GEMM-view ``(gemm_k, gemm_n)`` matrix.

    Linear ``(N, K)`` -> ``(K, N)``; conv ``(K, C, R, S)`` -> rows ordered
    ``(r, s, c)`` with ``c`` fastest (see ``mapping.loopnest``).
    """
    if qweight.ndim == 2:
        return np.ascontiguousarray(qweight.T)
    k = qweight.shape[0]
    return np.ascontiguousarray(qweight.transpose(2, 3, 1, 0).reshape(-1, k))


# ---------------------------------------------------------------- activations (LUT)
CLAMP_FNS = ("relu6", "hardtanh", "clamp")
"""``act`` functions that only clamp: their output range is known from ``min``/``max``."""
LUT_BITS_MAX = 12
"""Widest ``act`` input a lookup table is built for (``2**12`` entries)."""


def clamp_bounds(attrs: dict) -> tuple[float | None, float | None]:
    """``(min, max)`` of a clamp-type ``act`` (``None``: unbounded), PyTorch's defaults."""
    fn = attrs["fn"]
    if fn == "relu6":
        return 0.0, 6.0
    lo, hi = (-1.0, 1.0) if fn == "hardtanh" else (None, None)
    lo, hi = attrs.get("min", lo), attrs.get("max", hi)
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def act_float(attrs: dict, x: np.ndarray) -> np.ndarray:
    """The ``act`` function ``attrs["fn"]`` (parameters in ``attrs``) in float64 numpy, with
    PyTorch's semantics and defaults (``mapping.graph.ACT_FNS``)."""
    from scipy.special import erf, expit

    x = np.asarray(x, dtype=np.float64)
    fn = attrs.get("fn")
    if fn in CLAMP_FNS:
        lo, hi = clamp_bounds(attrs)
        return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    if fn == "leaky_relu":
        return np.where(x > 0, x, x * float(attrs.get("negative_slope", 0.01)))
    if fn == "sigmoid":
        return expit(x)
    if fn == "tanh":
        return np.tanh(x)
    if fn == "silu":
        return x * expit(x)
    if fn == "hardsigmoid":
        return np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if fn == "hardswish":
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if fn == "gelu":
        if attrs.get("approximate", "none") == "tanh":
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + erf(x / np.sqrt(2.0)))
    if fn == "elu":
        alpha = float(attrs.get("alpha", 1.0))
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    raise QuantError(f"activation function {fn!r} is not supported; supported: "
                     f"{', '.join(ACT_TABLE_FNS)}")


ACT_TABLE_FNS = (*CLAMP_FNS, "leaky_relu", "sigmoid", "tanh", "silu", "hardswish",
                 "hardsigmoid", "gelu", "elu")


def act_out_scale(attrs: dict, max_abs: float, bits: int) -> float:
    """Output scale of an ``act``: the calibrated :func:`act_scale`, except for clamp-type
    functions whose calibrated range reaches at least half their widest finite bound:
    then ``max(|min|, |max|) / qmax`` so that the bound is exactly ``+-qmax`` (ReLU6 at
    8 bits: 6.0 -> 127)."""
    if attrs.get("fn") in CLAMP_FNS:
        finite = [abs(b) for b in clamp_bounds(attrs) if b is not None]
        bound = max(finite, default=0.0)
        if bound > 0 and max_abs >= bound / 2:
            return act_scale(bound, bits)
    return act_scale(max_abs, bits)


def act_table(attrs: dict, s_in: float, in_bits: int, s_out: float, out_bits: int) -> np.ndarray:
    """The lookup table of an ``act``: ``2**in_bits`` int64 entries, entry ``v - qmin`` for
    every input value ``v`` in ``qrange(in_bits)``:
    ``table[v - qmin] = clamp(floor(f(v * s_in) / s_out + 0.5), qrange(out_bits))``.
    Bit-exact by construction: the hardware, ``sim.golden`` and ``mapping.fakequant`` all
    index this one table (:func:`lut`)."""
    in_bits = check_bits(in_bits, "activation-table input bits")
    if in_bits > LUT_BITS_MAX:
        raise QuantError(f"activation {attrs.get('fn')!r}: a {in_bits}-bit input needs a "
                         f"{1 << in_bits}-entry lookup table; at most {LUT_BITS_MAX} input "
                         "bits are supported")
    lo, hi = qrange(in_bits)
    v = np.arange(lo, hi + 1, dtype=np.int64)
    return quantize_act(act_float(attrs, v * float(s_in)), float(s_out), out_bits)


def lut(q: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply an :func:`act_table`: ``table[q - qmin]`` with ``qmin = -len(table) // 2``."""
    table = np.asarray(table, dtype=np.int64)
    return table[np.asarray(q, dtype=np.int64) + len(table) // 2]


# ---------------------------------------------------------------- host ops
def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


def host_op(op: str, x: np.ndarray, attrs: dict, params: dict) -> np.ndarray:
    """Float64 numpy reference of a host-executed op (``softmax``, ``layernorm``, ``gelu``)."""
    x = np.asarray(x, dtype=np.float64)
    if op == "softmax":
        e = np.exp(x - x.max(axis=attrs["dim"], keepdims=True))
        return e / e.sum(axis=attrs["dim"], keepdims=True)
    if op == "layernorm":
        axes = tuple(range(x.ndim - len(attrs["normalized_shape"]), x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mu) / np.sqrt(var + attrs["eps"])
        if "weight" in params:
            y = y * params["weight"].astype(np.float64)
        if "bias" in params:
            y = y + params["bias"].astype(np.float64)
        return y
    if op == "gelu":
        if attrs.get("approximate", "none") == "tanh":
            return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + _erf(x / np.sqrt(2.0)))
    raise QuantError(f"{op!r} is not a host-executed op; host ops: softmax, layernorm, gelu")


HOST_OPS = ("softmax", "layernorm", "gelu")


@dataclass
class QuantSpec:
    """Quantisation of one node's output (and, for compute nodes, its weights).

    ``bits``/``scale``/``zero_point`` describe the output tensor; ``relu`` says
    the output range starts at 0. ``in_scales`` are the input tensors' scales.
    Compute nodes (linear/conv2d/matmul/mul of tensors) carry ``w_bits``,
    ``w_scale`` (per output channel), ``acc_bits`` and per-channel ``mult``/
    ``shift``; ``add`` carries ``mult = [ma, mb]`` and ``shift = [sh]``;
    ``avgpool2d`` one ``mult``/``shift``. ``host`` marks host-executed ops.
    """

    bits: int
    scale: float
    zero_point: int = 0
    relu: bool = False
    in_scales: tuple[float, ...] = ()
    w_bits: int | None = None
    w_scale: np.ndarray | None = None
    acc_bits: int = 32
    mult: np.ndarray | None = None
    shift: np.ndarray | None = None
    host: bool = False
    extra: dict = field(default_factory=dict)

    def passed_on(self) -> QuantSpec:
        """The spec of an op that moves this tensor's values unchanged (pooling by max,
        layout ops, a channel select): same width, scale and sign."""
        return QuantSpec(bits=self.bits, scale=self.scale, relu=self.relu,
                         in_scales=(self.scale,))

    def describe(self) -> str:
        w = f" w{self.w_bits}" if self.w_bits else ""
        return f"a{self.bits}{w} s={self.scale:.4g}" + (" host" if self.host else "")
