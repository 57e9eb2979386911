"""The controller's instruction set: field layouts, encoding, decoding.

Every instruction is one program-ROM word; fields are packed LSB first and
their widths depend only on the ArchSpec (``word_bits`` is the widest).

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
- ``ELT``   (op 3): a whole pooling or residual-add layer in one word
  (:func:`elt_fields`), run by ``hwgen.rtl.eltwise_engine``.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from hwgen.compiler.layers import ProgramError
from hwgen.rtl.dma import EXT_ADDR_BITS, burst_len_bits
from hwgen.rtl.memory import bits_for
from mapping.arch import ArchSpec

OP_END, OP_LAYER, OP_STEP, OP_ELT = 0, 1, 2, 3
ELT_MAX, ELT_AVG, ELT_ADD = 0, 1, 2  # ELT kinds
OP_BITS = 2
PARAM_ADDR_BITS = 16
MULT_BITS, SHIFT_BITS = 15, 6


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


def elt_fields(arch: ArchSpec) -> list[tuple[str, int, bool]]:
    """``(name, width, signed)`` of the ELT instruction (pool / residual add), LSB first.

    ``kind`` (ELT_MAX/AVG/ADD); ``ma``/``shift`` (avg: ``mult``/``shift``; add:
    ``ma``, ``mb``, ``shift``); ``src``/``src2``/``dst`` tensor bases; ``count``
    (pool: channels C; add: elements). Pool geometry: output ``N, P, Q``, input
    ``H, W``, kernel ``kh, kw``, strides ``sh, sw``, the window origin of the first
    output pixel (``pix0`` address, ``hp0``/``wq0`` = -padding) and the compiled
    address deltas ``dq`` (next q), ``dp`` (next p), ``dn`` (next image),
    ``dtap`` (next kernel row).
    """
    db = dims_bits(arch)
    sb = db + 3
    aa = bits_for(arch.act_words)
    return ([("op", OP_BITS, False), ("layer_id", 8, False), ("kind", 2, False),
             ("relu", 1, False), ("out_bits", 5, False), ("ma", MULT_BITS, False),
             ("mb", MULT_BITS, False), ("shift", SHIFT_BITS, False),
             ("src", aa, False), ("src2", aa, False), ("dst", aa, False), ("count", db, False)]
            + [(f, db, False) for f in ("N", "P", "Q", "H", "W", "kh", "kw", "sh", "sw")]
            + [(f, sb, True) for f in ("pix0", "hp0", "wq0", "dq", "dp", "dn", "dtap")])


def word_bits(arch: ArchSpec) -> int:
    return max(sum(w for _, w, _ in f(arch)) for f in (layer_fields, step_fields, elt_fields))


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


def param_bits(arch: ArchSpec) -> int:
    return arch.acc_bits + MULT_BITS + SHIFT_BITS




def fields_layout(fields) -> data.StructLayout:
    """The instruction fields as an Amaranth struct layout (decoding is a cast)."""
    return data.StructLayout({n: (signed(w) if s else unsigned(w)) for n, w, s in fields})
