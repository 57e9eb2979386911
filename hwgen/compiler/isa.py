"""The controller's instruction set: one ``StructLayout`` per instruction, encoding, decoding.

Every instruction is one program-ROM word. Its layout (:func:`layer_layout`,
:func:`step_layout`, :func:`elt_layout`, functions of the ArchSpec) is the one
definition of its fields: the compiler encodes with it (:func:`encode`, range
checked), the sequencer casts the ROM word to it, and :func:`decode` reads a
word back by the layout's offsets. Fields are packed LSB first; ``op`` (an
:class:`Op`) is always the lowest ``OP_BITS``; ``word_bits`` is the widest layout.

- ``END``   (``Op.END``): the model is done, stream the output out.
- ``LAYER`` (``Op.LAYER``): header of a compute layer: the geometry of its implicit
  im2col (input ``H x W x C`` NHWC, kernel radices, per-axis strides ``sh, sw`` and
  dilations ``dh, dw``, the width padding ``pw`` (the height padding is in each
  STEP's walk start) and the address deltas of the mixed-radix walks), the output
  row stride and the output
  format (``out_bits``, ``relu``). Costs ``LAYER_SETUP`` cycles (fetch, decode).
- ``STEP``  (``Op.STEP``): one step of the layer: an optional DMA burst (weight-store
  word address, words, weights, scratchpad destination) and an optional tile
  (sizes, pass counts, weight-half base, accumulator base, first/last k, the
  mixed-radix start of its pixel and reduction walks, output and parameter
  addresses). Double-buffered, the burst of step i is the *next* tile's weights
  and runs beside the tile; single-buffered it is this tile's and runs first.
- ``ELT``   (``Op.ELT``): a whole pooling, residual-add or lookup-table activation layer in one word
  (:func:`elt_layout`, kind :class:`EltKind`), run by ``hwgen.rtl.eltwise_engine``.
- ``XFER``  (``Op.XFER``): one activation transfer between the scratchpad and external
  memory (:func:`xfer_layout`), run by ``hwgen.rtl.act_dma``: only in spilled programs
  (``hwgen.compiler.spill``).
- ``LOOP``  (``Op.LOOP``): run the next ``body`` words ``count`` times (:func:`loop_layout`);
  in iteration ``k`` each XFER's ``ext`` is advanced by ``k * d_a`` or ``k * d_b`` (its
  ``dsel``), each STEP's ``p0`` by ``k * d_row``, ``dma_src`` by ``k * d_wsrc``,
  ``out_base`` by ``k * d_out`` and ``par_base`` by ``k * d_par``, and each STEP's and ELT's
  ``hp0`` by ``k * d_hp``: the row bands of a spilled layer (or the n blocks of one band's
  tile loop), one copy in the ROM. Not nested.

Also here, because the compiler and the RTL both need them (the compiler
imports nothing of ``hwgen.rtl``): the parameter-table word (:func:`param_layout`),
the external weight word format (:func:`pack_words`) and the address widths of
the DMA's external port (``EXT_ADDR_BITS``, :func:`burst_len_bits`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data, enum

from hwgen.compiler.layers import ProgramError
from mapping.arch import ArchSpec
from mapping.hwconst import LAYER_ID_BITS, bits_for
from mapping.quant import BITS_MAX, MULT_BITS, SHIFT_BITS
from mapping.timing import act_per_word

OP_BITS = 3
KIND_BITS = 3
OUT_BITS_BITS = bits_for(BITS_MAX + 1)  # run-time out_bits 2..BITS_MAX
PARAM_ADDR_BITS = 16  # parameter-table address (output channels of the whole program)
EXT_ADDR_BITS = 32  # weight-store word address of a DMA burst


class Op(enum.Enum, shape=OP_BITS):
    """Opcode: the low ``OP_BITS`` of every instruction word."""

    END = 0
    LAYER = 1
    STEP = 2
    ELT = 3
    XFER = 4
    LOOP = 5


class EltKind(enum.Enum, shape=KIND_BITS):
    """What an ELT instruction computes."""

    MAX = 0  # max pooling
    AVG = 1  # average pooling
    ADD = 2  # residual add
    LUT = 3  # lookup-table activation (act)
    DW = 4  # depthwise convolution (hwgen.rtl.depthwise)
    COPY = 5  # strided channel copy (concat, broadcast): hwgen.compiler.copy_layer
    MUL = 6  # tensor multiply (squeeze-excitation gate): hwgen.compiler.mul_layer
    # 7 free


# the integer values, for code that reads raw words (dse.resources, tests)
OP_END, OP_LAYER, OP_STEP, OP_ELT, OP_XFER, OP_LOOP = (op.value for op in Op)
ELT_MAX, ELT_AVG, ELT_ADD, ELT_LUT = (EltKind[k].value for k in ("MAX", "AVG", "ADD", "LUT"))
ELT_DW = EltKind.DW.value
ELT_COPY = EltKind.COPY.value
ELT_MUL = EltKind.MUL.value
LUT_ADDR_BITS = 20  # activation lookup-table address (entries of all the program's tables)


def dims_bits(arch: ArchSpec) -> int:
    """Bits of a size / count field (one more than any memory's addresses, + 2 spare)."""
    return bits_for(max(arch.act_words, arch.w_words, arch.acc_words) + 2) + 1


def delta_bits(arch: ArchSpec) -> int:
    """Bits of a signed address / offset / delta field of the walks."""
    return dims_bits(arch) + 3


def burst_len_bits(arch: ArchSpec) -> int:
    """Bits of a weight burst's length: a burst never exceeds the weight scratchpad."""
    return bits_for(arch.w_words + 2)


def ext_len_bits(arch: ArchSpec) -> int:
    """Bits of the external port's burst length: a weight burst, or an activation transfer
    (never more words than the activation scratchpad holds elements, + 1 partial word)."""
    return bits_for(max(arch.w_words, arch.act_words) + 2)


def max_avg_window(arch: ArchSpec) -> int:
    """Largest average-pool window whose sum is exact in the ``acc_bits``-wide accumulator
    of ``hwgen.rtl.eltwise.Pool`` (sums of ``in_bits`` elements)."""
    return 1 << (arch.acc_bits - arch.in_bits)


def _fields(names, shape) -> dict:
    return {n: shape for n in names}


@functools.lru_cache(maxsize=256)
def layer_layout(arch: ArchSpec) -> data.StructLayout:
    """The LAYER instruction."""
    d, s = unsigned(dims_bits(arch)), signed(delta_bits(arch))
    return data.StructLayout({
        "op": Op, "layer_id": unsigned(LAYER_ID_BITS),
        **_fields(("C", "S", "Q", "P", "H", "W", "sh", "sw", "dh", "dw", "pw", "gemm_n"), d),
        **_fields(("dk_s", "dk_r", "dp_q", "dp_p", "dp_n"), s),
        "out_bits": unsigned(OUT_BITS_BITS), "relu": unsigned(1),
    })


@functools.lru_cache(maxsize=256)
def step_layout(arch: ArchSpec) -> data.StructLayout:
    """The STEP instruction: a DMA burst (``dma_*``) and / or a tile."""
    d, s = unsigned(dims_bits(arch)), signed(delta_bits(arch))
    wa = unsigned(bits_for(arch.w_words))
    return data.StructLayout({
        "op": Op, "last": unsigned(1),
        "dma_en": unsigned(1), "dma_src": unsigned(EXT_ADDR_BITS),
        "dma_words": unsigned(burst_len_bits(arch)), "dma_count": d, "dma_dst": wa,
        "tile_en": unsigned(1), "first_k": unsigned(1), "last_k": unsigned(1),
        **_fields(("m", "n", "k", "nmb", "nnb", "nkb"), d),
        "w_base": wa, "w_kstride": d, "w_rlast": d,
        "acc_base": unsigned(bits_for(arch.acc_words)), "acc_blk": d,
        **_fields(("q0", "p0", "c0", "s0"), d),
        **_fields(("pix0", "hp0", "wq0", "koff0", "hoff0", "woff0"), s),
        "out_base": unsigned(bits_for(arch.act_words)), "par_base": unsigned(PARAM_ADDR_BITS),
    })


@functools.lru_cache(maxsize=256)
def elt_layout(arch: ArchSpec) -> data.StructLayout:
    """The ELT instruction (pool / residual add / lookup-table activation).

    ``kind`` (:class:`EltKind`); ``ma``/``shift`` (avg: ``mult``/``shift``; add:
    ``ma``, ``mb``, ``shift``); ``src``/``src2``/``dst`` tensor bases; ``count``
    (pool: channels C; add, lut: elements); ``tab`` (lut: the table-ROM address of input
    value 0). Pool geometry: output ``N, P, Q``, input
    ``H, W``, kernel ``kh, kw``, strides ``sh, sw``, the window origin of the first
    output pixel (``pix0`` address, ``hp0``/``wq0`` = -padding) and the compiled
    address deltas ``dq`` (next q), ``dp`` (next p), ``dn`` (next image),
    ``dtap`` (next kernel row).

    Depthwise (``DW``): the pool walk and fields, plus ``dcol`` (address delta to the
    next tap of a kernel row: dilation_w * C; a pool steps by ``count``), ``ma``/``mb``
    the dilations h/w (the padding test steps by them), ``tab`` the layer's first row of
    the depthwise weight ROM and ``src2`` its first row of the depthwise parameter ROM
    (``Program.dw_weights`` / ``Program.dw_params``).

    Copy (``COPY``, :mod:`hwgen.compiler.copy_layer`): ``N`` pixels of ``count`` channels,
    pixel ``t`` read at ``pix0 + t*dq`` (source pixel stride; 0 broadcasts one pixel) and
    written at ``dst + t*dp`` (destination pixel stride, ``dst`` includes the channel
    offset); encoded as a one-tap max pool (``kh = kw = H = W = 1``) so it runs through
    the ``Pool`` unit unchanged.

    Multiply (``MUL``, :mod:`hwgen.compiler.mul_layer`): the copy walk (``N`` pixels of
    ``count`` channels, ``x`` at ``pix0 + t*dq``, written at ``dst + t*dp``) with a second
    read per channel group at ``src2 + c0`` (the gate, the same for every pixel); ``ma``/
    ``shift`` requantise the product.
    """
    d, s = unsigned(dims_bits(arch)), signed(delta_bits(arch))
    aa = unsigned(bits_for(arch.act_words))
    return data.StructLayout({
        "op": Op, "layer_id": unsigned(LAYER_ID_BITS), "kind": EltKind,
        "relu": unsigned(1), "out_bits": unsigned(OUT_BITS_BITS), "ma": unsigned(MULT_BITS),
        "mb": unsigned(MULT_BITS), "shift": unsigned(SHIFT_BITS),
        "src": aa, "src2": aa, "dst": aa, "count": d,
        **_fields(("N", "P", "Q", "H", "W", "kh", "kw", "sh", "sw"), d),
        **_fields(("pix0", "hp0", "wq0", "dq", "dp", "dn", "dtap"), s),
        "tab": unsigned(LUT_ADDR_BITS),
        "dcol": s,
    })


@functools.lru_cache(maxsize=256)
def ext_request_layout(arch: ArchSpec) -> data.StructLayout:
    """A burst request on the external-memory port (``hwgen.rtl.dma``): word address,
    number of words, a write burst (the memory models in ``sim`` read it by these offsets)."""
    return data.StructLayout({"addr": unsigned(EXT_ADDR_BITS), "len": unsigned(ext_len_bits(arch)),
                              "write": unsigned(1)})


@functools.lru_cache(maxsize=256)
def xfer_layout(arch: ArchSpec) -> data.StructLayout:
    """The XFER instruction: ``runs`` bursts of ``words`` external words, run ``r`` from word
    address ``ext + r*wstride``, to (``store`` = 0) or from (1) the scratchpad, word ``i``'s
    lane ``l`` at scratchpad address ``sp + r*sp_stride + i*act_per_word + l``; only the
    ``count`` elements from lane ``off`` of word 0 on are moved (load: written into the
    scratchpad; store: into the memory, by the write mask). Its cycles count to hardware
    layer ``layer_id``."""
    return data.StructLayout({
        "op": Op, "layer_id": unsigned(LAYER_ID_BITS), "store": unsigned(1),
        "ext": unsigned(EXT_ADDR_BITS), "words": unsigned(ext_len_bits(arch)),
        "sp": unsigned(bits_for(arch.act_words)), "off": unsigned(bits_for(act_per_word(arch))),
        "count": unsigned(dims_bits(arch)), "runs": unsigned(dims_bits(arch)),
        "wstride": unsigned(EXT_ADDR_BITS), "sp_stride": unsigned(dims_bits(arch)),
        "dsel": unsigned(2),  # in a LOOP body: 0 the same every iteration, 1 + d_a, 2 + d_b
    })


LOOP_BODY_BITS = 16  # words of a LOOP body


@functools.lru_cache(maxsize=256)
def loop_layout(arch: ArchSpec) -> data.StructLayout:
    """The LOOP instruction (see the module docstring); its own two cycles (fetch, decode)
    count to hardware layer ``layer_id``."""
    d = unsigned(dims_bits(arch))
    return data.StructLayout({
        "op": Op, "layer_id": unsigned(LAYER_ID_BITS), "count": d,
        "body": unsigned(LOOP_BODY_BITS), "d_a": unsigned(EXT_ADDR_BITS),
        "d_b": unsigned(EXT_ADDR_BITS), "d_row": d, "d_hp": d,
        "d_wsrc": unsigned(EXT_ADDR_BITS), "d_out": unsigned(bits_for(arch.act_words)),
        "d_par": unsigned(PARAM_ADDR_BITS),
    })


INSTRUCTION_LAYOUTS = (layer_layout, step_layout, elt_layout, xfer_layout, loop_layout)


@functools.lru_cache(maxsize=256)
def param_layout(arch: ArchSpec) -> data.StructLayout:
    """One parameter-table entry (one output channel): bias, requantisation multiplier, shift."""
    return data.StructLayout({"bias": signed(arch.acc_bits), "mult": unsigned(MULT_BITS),
                              "shift": unsigned(SHIFT_BITS)})


def param_bits(arch: ArchSpec) -> int:
    return param_layout(arch).size


def word_bits(arch: ArchSpec) -> int:
    """Bits of a program-ROM word: the widest instruction."""
    return max(lay(arch).size for lay in INSTRUCTION_LAYOUTS)


# ---------------------------------------------------------------- encode / decode
def _layout(spec) -> data.StructLayout:
    """``spec`` as a layout: a StructLayout, or a ``(name, width, signed)`` list (the
    :func:`layer_fields` form)."""
    if isinstance(spec, data.StructLayout):
        return spec
    return data.StructLayout({n: signed(w) if s else unsigned(w) for n, w, s in spec})


def _is_enum(shape) -> bool:
    return isinstance(shape, type) and issubclass(shape, enum.Enum)


def encode(layout, values: Mapping[str, object], where: str) -> int:
    """Pack ``values`` (field name -> int, or enum member for an enum field; absent fields
    are 0) into an instruction word of ``layout``. A value that does not fit its field,
    an enum field value that names no member, or an unknown field raises ProgramError
    naming ``where``."""
    layout = _layout(layout)
    names = {name for name, _ in layout}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ProgramError(f"{where}: no field {', '.join(unknown)} in this instruction")
    word = 0
    for name, fld in layout:
        v = values.get(name, 0)
        if isinstance(v, enum.Enum):
            if _is_enum(fld.shape) and not isinstance(v, fld.shape):
                raise ProgramError(f"{where}: field {name} = {v!r} is no {fld.shape.__name__}")
            v = v.value
        v = int(v)
        shape = Shape.cast(fld.shape)
        w = shape.width
        lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if shape.signed else (0, (1 << w) - 1)
        if not lo <= v <= hi:
            raise ProgramError(f"{where}: field {name} = {v} does not fit {w} bits "
                               f"({'signed' if shape.signed else 'unsigned'}; allowed {lo}..{hi})")
        if _is_enum(fld.shape) and v not in {m.value for m in fld.shape}:
            members = ", ".join(f"{m.name}={m.value}" for m in fld.shape)
            raise ProgramError(f"{where}: field {name} = {v} is no {fld.shape.__name__} "
                               f"({members})")
        word |= (v & ((1 << w) - 1)) << fld.offset
    return word


def decode(layout, word: int) -> dict[str, int]:
    """The fields of instruction ``word`` read with ``layout`` (its offsets), as integers
    (an enum field gives its raw value: a word of another instruction may hold any)."""
    out = {}
    for name, fld in _layout(layout):
        shape = Shape.cast(fld.shape)
        v = (word >> fld.offset) & ((1 << shape.width) - 1)
        if shape.signed and v >> (shape.width - 1):
            v -= 1 << shape.width
        out[name] = v
    return out


def _flat(layout: data.StructLayout) -> list[tuple[str, int, bool]]:
    return [(n, Shape.cast(f.shape).width, Shape.cast(f.shape).signed) for n, f in layout]


def layer_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of :func:`layer_layout`, LSB first (for code that
    reads bit positions; the layout is the definition)."""
    return _flat(layer_layout(arch))


def step_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of :func:`step_layout`, LSB first."""
    return _flat(step_layout(arch))


def elt_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of :func:`elt_layout`, LSB first."""
    return _flat(elt_layout(arch))


def xfer_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of :func:`xfer_layout`, LSB first."""
    return _flat(xfer_layout(arch))


def loop_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of :func:`loop_layout`, LSB first."""
    return _flat(loop_layout(arch))


# ---------------------------------------------------------------- weight words
def pack_words(values: list[int], w_bits: int, per_word: int) -> list[int]:
    """Pack signed ``w_bits`` values ``per_word`` to a weight-store word, LSB first (last
    word zero-padded): weight ``l`` of a word in bits ``[l*w_bits, (l+1)*w_bits)``, two's
    complement, as ``hwgen.rtl.dma.WeightDMA`` unpacks them."""
    mask = (1 << w_bits) - 1
    words = []
    for i in range(0, len(values), per_word):
        word = 0
        for lane, v in enumerate(values[i:i + per_word]):
            word |= (int(v) & mask) << (lane * w_bits)
        words.append(word)
    return words


def pack_acts(values, arch: ArchSpec) -> list[int]:
    """Activations as external words: ``act_per_word`` signed ``in_bits`` elements per word,
    element ``l`` in bits ``[l*in_bits, (l+1)*in_bits)`` (``hwgen.rtl.act_dma`` moves them
    so; the last word zero-padded)."""
    return pack_words([int(v) for v in values], arch.in_bits, act_per_word(arch))


def unpack_acts(words, count: int, arch: ArchSpec) -> list[int]:
    """The first ``count`` activations of external ``words`` (inverse of :func:`pack_acts`)."""
    apw, b = act_per_word(arch), arch.in_bits
    out = []
    for i in range(count):
        v = (int(words[i // apw]) >> ((i % apw) * b)) & ((1 << b) - 1)
        out.append(v - (1 << b) if v >> (b - 1) else v)
    return out
