"""Resource estimators for level-0 evaluation, and the baked program's sizes they need.

:class:`ResourceEstimator` is the interface: ``estimate(arch, sizes)`` gives
``{"lut", "ff", "dsp", "bram"}`` (all *estimated*) or ``None`` when no
calibrated model exists for the family; ``sizes`` is the :class:`ProgramSizes`
of the program the point's build would bake in. :func:`estimator_for` returns
the boards helper's calibrated model (:mod:`boards.resource_model`) when it has
one for the family, else :class:`NoResourceModel`, which estimates nothing:
resource columns are then reported missing, never invented.

:func:`program_sizes` computes those sizes in closed form from the model's
layer shapes and the chosen mapping of each compute layer, exactly as
:func:`hwgen.compiler.program.compile_program` lays the program out (one LAYER word and
one STEP word per tile, plus one leading DMA step when double-buffered, per
compute layer; one ELT word per pooling / residual add; END; weight tiles packed
in first-use order) without generating it. That covers the single-program
("chain") builds of :func:`hwgen.build.flow.compile_model`; kernel builds (one program
per array op) are not what the resource model describes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dse.model import ModelLayers
from mapping.arch import ArchSpec


@dataclass(frozen=True)
class ProgramSizes:
    """The baked program's sizes (:class:`boards.resource_model.Features` fields).

    ``rom_words``: weight-image words (``ext_word_bits`` wide; the resource model
    ignores them with an external weight store); ``program_words``/``program_bits``:
    the instruction ROM; ``param_words``: per-channel parameter entries;
    ``pool_mult``/``add_mult``: some instruction word, read as an ELT word, has
    the average-pool / residual-add ``kind`` bit set (those multipliers survive
    synthesis; ``benchmarks/calibration_designs.py::eltwise_liveness``).
    """

    rom_words: int
    program_words: int
    program_bits: int
    param_words: int
    pool_mult: bool
    add_mult: bool


class ResourceEstimator(Protocol):
    """Estimated LUT/FF/DSP/BRAM of an accelerator (``None``: no model)."""

    source: str
    available: bool

    def estimate(self, arch: ArchSpec, sizes: ProgramSizes) -> dict[str, float] | None: ...


class NoResourceModel:
    """No calibrated model for this family: every estimate is ``None`` (reported missing)."""

    available = False

    def __init__(self, why: str):
        self.source = f"missing ({why})"

    def estimate(self, arch: ArchSpec, sizes: ProgramSizes) -> None:
        return None


class BoardsResourceModel:
    """:class:`boards.resource_model.ResourceModel` of one family (calibrated on Yosys)."""

    available = True

    def __init__(self, family: str):
        from boards import resource_model as rm

        self._rm = rm
        self.family = family
        self.model = rm.ResourceModel.load(family)
        self.source = rm.SOURCE

    def features(self, arch: ArchSpec, sizes: ProgramSizes):
        """The :class:`boards.resource_model.Features` of ``arch`` running the program."""
        return self._rm.features_from_arch(
            arch.to_dict(), family=self.family, rom_words=sizes.rom_words,
            program_words=sizes.program_words, program_bits=sizes.program_bits,
            param_words=sizes.param_words, pool_mult=sizes.pool_mult, add_mult=sizes.add_mult)

    def estimate(self, arch: ArchSpec, sizes: ProgramSizes) -> dict[str, float]:
        r = self.model.predict(self.features(arch, sizes))
        return {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram}


def estimator_for(family: str) -> ResourceEstimator:
    """The calibrated model of ``family`` if there is one, else :class:`NoResourceModel`."""
    try:
        return BoardsResourceModel(family)
    except ImportError:
        return NoResourceModel("boards.resource_model is not installed")
    except ValueError as exc:  # ResourceModelError: no calibration for this family
        return NoResourceModel(str(exc))


# ---------------------------------------------------------------- program sizes
@dataclass(frozen=True)
class _Layout:
    """Where the ELT ``kind`` bits fall in the other instruction words (hwgen.compiler.isa)."""

    word_bits: int
    elt_kind: tuple[tuple[str, int], ...]  # model op -> ELT kind
    layer_c_bits: tuple[tuple[int, int], ...]  # (bit of LAYER.C, kind bit)
    step_src_bits: tuple[tuple[int, int], ...]  # (bit of STEP.dma_src, kind bit)


def _field_at(fields, bit: int) -> tuple[str, int]:
    off = 0
    for name, width, _ in fields:
        if off <= bit < off + width:
            return name, bit - off
        off += width
    return "", 0  # beyond the word: reads as 0


@functools.lru_cache(maxsize=4096)
def _layout(arch: ArchSpec) -> _Layout:
    from hwgen.compiler.isa import (
        ELT_ADD,
        ELT_AVG,
        ELT_MAX,
        elt_fields,
        layer_fields,
        step_fields,
        word_bits,
    )

    ef = elt_fields(arch)
    lo = sum(w for _, w, _ in ef[:[n for n, _, _ in ef].index("kind")])
    width = dict((n, w) for n, w, _ in ef)["kind"]
    lay, step = [], []
    for b in range(width):
        for fields, want, out in ((layer_fields(arch), "C", lay),
                                  (step_fields(arch), "dma_src", step)):
            name, j = _field_at(fields, lo + b)
            if name != want:
                raise RuntimeError(
                    f"hwgen.compiler.isa layout changed: the ELT kind bit {b} now overlays field "
                    f"{name!r}, not {want!r}; update dse.resources.program_sizes")
            out.append((j, b))
    kinds = (("maxpool2d", ELT_MAX), ("avgpool2d", ELT_AVG), ("add", ELT_ADD))
    return _Layout(word_bits(arch), kinds, tuple(lay), tuple(step))


@functools.lru_cache(maxsize=65536)
def _weight_blocks(K: int, N: int, tk: int, tn: int, k_outer: bool, wpw: int,  # noqa: N803
                   modulus: int) -> tuple[int, int]:
    """(words, residues) of one layer's weight image: its (k, n) tiles packed in first-use
    order (``hwgen.compiler.codegen``: ``ceil(k * n / wpw)`` words each); ``residues`` has bit r set
    when some tile starts at a word offset = r (mod ``modulus``) from the layer's start."""
    ck, cn = -(-K // tk), -(-N // tn)
    ks = np.full(ck, tk, dtype=np.int64)
    ks[-1] = K - (ck - 1) * tk
    ns = np.full(cn, tn, dtype=np.int64)
    ns[-1] = N - (cn - 1) * tn
    w = -(-(ks[:, None] * ns[None, :]) // wpw)
    seq = w.ravel() if k_outer else w.T.ravel()
    starts = np.cumsum(seq) - seq
    res = 0
    for r in np.unique(starts % modulus).tolist():
        res |= 1 << r
    return int(seq.sum()), res


@functools.lru_cache(maxsize=64)
def _bit_set_residues(j: int, modulus: int) -> int:
    """Bit r set for every residue r (mod ``modulus``) whose bit ``j`` is 1."""
    return sum(1 << r for r in range(modulus) if (r >> j) & 1)


def program_sizes(arch: ArchSpec, layers: ModelLayers,
                  mappings: tuple[tuple[tuple[int, int, int], str], ...]) -> ProgramSizes:
    """The sizes of the program :func:`hwgen.build.flow.compile_model` bakes for ``layers`` on
    ``arch`` with ``mappings`` = ``((tile_m, tile_n, tile_k), loop order)`` per compute layer
    (in ``layers.compute`` order; the order is outermost first, as ``mapping.timing``)."""
    if len(mappings) != len(layers.compute):
        raise ValueError(f"{len(mappings)} mappings for {len(layers.compute)} compute layers "
                         f"({', '.join(layers.compute_names)})")
    lay = _layout(arch)
    wpw = arch.weights_per_ext_word
    modulus = 1 << (max(j for j, _ in lay.step_src_bits) + 1)
    words = 1  # END
    kinds = 0
    rom = 0
    seen = 0  # residues (mod modulus) of the weight image addresses of every DMA burst
    full = (1 << modulus) - 1
    for c, ((tm, tn, tk), order) in zip(layers.compute, mappings, strict=True):
        nest = c.nest
        K, N, M = nest.gemm_k, nest.gemm_n, nest.gemm_m  # noqa: N806
        tiles = math.ceil(M / tm) * math.ceil(N / tn) * math.ceil(K / tk)
        words += 1 + tiles + (1 if arch.double_buffer else 0)
        cfield = K if nest.kind == "gemm" else nest.C  # LAYER.C: the im2col channel count
        for j, b in lay.layer_c_bits:
            kinds |= ((cfield >> j) & 1) << b
        n, res = _weight_blocks(K, N, tk, tn, order.index("k") < order.index("n"), wpw,
                                modulus)
        s = rom % modulus
        seen |= ((res << s) | (res >> (modulus - s))) & full
        rom += n
    elt = dict(lay.elt_kind)
    for e in layers.eltwise:
        words += 1
        kinds |= elt[e.op]
    for j, b in lay.step_src_bits:
        if seen & _bit_set_residues(j, modulus):
            kinds |= 1 << b
    return ProgramSizes(rom_words=rom, program_words=words, program_bits=lay.word_bits,
                        param_words=sum(c.nest.gemm_n for c in layers.compute),
                        pool_mult=bool(kinds & 1), add_mult=bool(kinds & 2))
