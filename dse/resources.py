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
compute layer; one ELT word per pooling / residual add / lookup-table activation /
depthwise conv / strided copy; END; weight tiles packed in first-use order; the lookup
tables concatenated; the depthwise weight and parameter rows) without generating it. That covers the single-program
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
from mapping.hwconst import bits_for


@dataclass(frozen=True)
class ProgramSizes:
    """The baked program's sizes (:class:`boards.resource_model.Features` fields).

    ``rom_words``: weight-image words (``ext_word_bits`` wide; the resource model
    ignores them with an external weight store); ``program_words``/``program_bits``:
    the instruction ROM; ``param_words``: per-channel parameter entries;
    ``pool_mult``/``add_mult``: the average-pool / residual-add multipliers are built (the
    program has an average pool / an add or tensor multiply); ``lut_entries``: entries of the lookup ROM
    (``Program.luts``; ``arch.in_bits`` wide, one copy per lane, :func:`lookup_rom`);
    ``dw_weight_rows``/``dw_param_rows``: rows of the depthwise ROMs (``Program.dw_weights``,
    ``Program.dw_params``; :func:`depthwise_roms`), 0 without a depthwise layer;
    ``mul``: the program has a tensor multiply (``ResidualAdd``'s multiply mode is built).
    """

    rom_words: int
    program_words: int
    program_bits: int
    param_words: int
    pool_mult: bool
    add_mult: bool
    lut_entries: int = 0
    dw_weight_rows: int = 0
    dw_param_rows: int = 0
    mul: bool = False


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
        out = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "bram": r.bram}
        for k, v in self.extra(arch, sizes).items():
            out[k] += v
        return out

    def extra(self, arch: ArchSpec, sizes: ProgramSizes) -> dict[str, int]:
        """What the element-wise engine adds beyond :class:`boards.resource_model.Features`
        (the hook for units the calibrated model does not know yet): the lookup ROM, as
        the model maps every ROM (``map_memory``: logic at the fitted ``rom_logic``
        LUTs per bit, or block RAM). The Lookup unit's address adders and registers
        (``rows x bits_for(entries)``) are not priced until a calibration term covers them.

        With a depthwise layer (``hwgen.rtl.depthwise.DepthwiseMac``, built only then): its
        weight and parameter ROMs (:func:`depthwise_roms`) mapped the same way, and per
        lane (``arch.rows``) a multiply-accumulate (``in_bits x w_bits`` into ``acc_bits``)
        and a post-processing lane (its own ``PostProc``): DSP blocks exact (Yosys
        ``mul2dsp``, as the array's PEs and lanes), LUT/FF at the model's fitted ``pe`` and
        ``lanes`` coefficients (a PE's and a post-processing lane's datapath bits). COPY
        layers use the Pool unit: nothing of their own. A tensor multiply (``MUL``) adds per
        lane an ``in_bits x in_bits`` product (DSP blocks exact; its register at the
        ``lanes`` FF coefficient) and widens the residual add's ``ma`` multiplier to the
        product (DSP blocks: the difference, exact)."""
        rm, fam = self._rm, self.family
        out = {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
        roms = []
        rom = lookup_rom(arch, sizes.lut_entries)
        if rom is not None:
            roms.append(("lookup", rom))
        dw = depthwise_roms(arch, sizes)
        if dw is not None:
            roms += [("dw_weights", dw[0]), ("dw_params", dw[1])]
            lane = arch.acc_bits + rm.MULT_BITS + rm.SHIFT_BITS
            out["dsp"] += arch.rows * (rm.dsp_blocks(arch.in_bits, arch.w_bits, fam)
                                       + rm.dsp_blocks(arch.acc_bits, rm.MULT_BITS + 1, fam))
            out["lut"] += round(arch.rows * (
                self.model.lut_coef["pe"] * (arch.acc_bits + arch.w_bits + arch.in_bits)
                + self.model.lut_coef["lanes"] * lane))
            out["ff"] += round(arch.rows * self.model.ff_coef["lanes"] * lane)
        if sizes.mul:
            pw = min(2 * arch.in_bits, arch.acc_bits)
            out["dsp"] += arch.rows * (rm.dsp_blocks(arch.in_bits, arch.in_bits, fam)
                                       + rm.dsp_blocks(pw, rm.MULT_BITS + 1, fam)
                                       - rm.dsp_blocks(arch.in_bits, rm.MULT_BITS + 1, fam))
            out["lut"] += round(arch.rows * self.model.lut_coef["lanes"] * pw)
            out["ff"] += round(arch.rows * self.model.ff_coef["lanes"] * pw)
        for name, (depth, width, copies) in roms:
            mem = rm.Memory(name, depth, width, copies, True)
            kind, n = rm.map_memory(mem, fam)
            if kind == "block":
                out["bram"] += mem.arrays * n
            else:  # a ROM is logic or block RAM, never distributed RAM
                out["lut"] += round(self.model.lut_coef["rom_logic"] * mem.arrays * n)
        return out


def estimator_for(family: str) -> ResourceEstimator:
    """The calibrated model of ``family`` if there is one, else :class:`NoResourceModel`."""
    try:
        return BoardsResourceModel(family)
    except ImportError:
        return NoResourceModel("boards.resource_model is not installed")
    except ValueError as exc:  # ResourceModelError: no calibration for this family
        return NoResourceModel(str(exc))


# ---------------------------------------------------------------- lookup ROM, ROM budget
def lookup_rom(arch: ArchSpec, entries: int) -> tuple[int, int, int] | None:
    """``(depth, width, copies)`` of the lookup ROM of ``entries`` table entries
    (``hwgen.rtl.eltwise.Lookup``: depth padded to a power of two, ``arch.in_bits`` wide,
    one copy per lane, ``arch.rows`` lanes); ``None`` without tables (no Lookup unit)."""
    if not entries:
        return None
    return 1 << bits_for(entries), arch.in_bits, arch.rows


def depthwise_roms(arch: ArchSpec, sizes: ProgramSizes):
    """``((depth, width, 1), (depth, width, 1))`` of the depthwise weight and parameter ROMs
    (``hwgen.rtl.depthwise``: depth padded to a power of two, one row of ``arch.rows``
    weights / parameter entries); ``None`` without a depthwise layer (no unit)."""
    if not sizes.dw_weight_rows:
        return None
    from hwgen.compiler.isa import param_bits

    return ((1 << bits_for(sizes.dw_weight_rows), arch.rows * arch.w_bits, 1),
            (1 << bits_for(sizes.dw_param_rows), arch.rows * param_bits(arch), 1))


def depthwise_rom_bits(arch: ArchSpec, weight_rows: int, param_rows: int) -> int:
    """ROM bits of the depthwise weights and parameters (rows x ``arch.rows`` lanes x
    ``w_bits`` / parameter-entry bits), as ``hwgen.rtl.accelerator.Accelerator.check``
    counts them against the ROM budget."""
    from hwgen.compiler.isa import param_bits

    return arch.rows * (weight_rows * arch.w_bits + param_rows * param_bits(arch))


def rom_budget_error(arch: ArchSpec, sizes: ProgramSizes) -> str:
    """Why ``hwgen.rtl.accelerator.Accelerator`` would refuse the point's baked ROMs (its
    default ``rom_budget_bits``), or ``""``."""
    from hwgen.rtl.accelerator import DEFAULT_ROM_BUDGET_BITS as budget

    wbits = sizes.rom_words * arch.ext_word_bits
    if arch.weight_store == "rom" and wbits > budget:
        return (f"baked weights need {wbits} ROM bits, more than the ROM budget of {budget} "
                "bits (weight_store='external' has none)")
    lbits = sizes.lut_entries * arch.in_bits * arch.rows
    if lbits > budget:
        return (f"activation lookup tables need {lbits} ROM bits ({sizes.lut_entries} entries "
                f"x {arch.in_bits} bits x {arch.rows} lanes), more than the ROM budget of "
                f"{budget} bits")
    dbits = depthwise_rom_bits(arch, sizes.dw_weight_rows, sizes.dw_param_rows)
    if dbits > budget:
        return (f"depthwise weights and parameters need {dbits} ROM bits, more than the ROM "
                f"budget of {budget} bits")
    return ""


# ---------------------------------------------------------------- program sizes
# What the element-wise engine (hwgen.rtl.eltwise_engine) builds for a program: the average
# pool's window sum and multiplier only when it has an average pool (Features.pool_mult),
# ResidualAdd and its two multipliers only when it has an add or a tensor multiply
# (Features.add_mult); the depthwise unit only with depthwise weights
# (``ProgramSizes.dw_weight_rows``, priced in BoardsResourceModel.extra until a Features
# field in boards.resource_model covers it); COPY has no unit of its own.
ELT_OPS = ("maxpool2d", "avgpool2d", "add", "act", "dwconv", "copy", "mul")


@functools.lru_cache(maxsize=65536)
def _weight_words(K: int, N: int, tk: int, tn: int, wpw: int) -> int:  # noqa: N803
    """Words of one layer's weight image: its (k, n) tiles, ``ceil(k * n / wpw)`` words each
    (``hwgen.compiler.codegen``)."""
    ck, cn = -(-K // tk), -(-N // tn)
    ks = np.full(ck, tk, dtype=np.int64)
    ks[-1] = K - (ck - 1) * tk
    ns = np.full(cn, tn, dtype=np.int64)
    ns[-1] = N - (cn - 1) * tn
    return int((-(-(ks[:, None] * ns[None, :]) // wpw)).sum())


def program_sizes(arch: ArchSpec, layers: ModelLayers,
                  mappings: tuple[tuple[tuple[int, int, int], str], ...],
                  lut_entries: int = 0) -> ProgramSizes:
    """The sizes of the program :func:`hwgen.build.flow.compile_model` bakes for ``layers`` on
    ``arch`` with ``mappings`` = ``((tile_m, tile_n, tile_k), loop order)`` per compute layer
    (in ``layers.compute`` order; the order is outermost first, as ``mapping.timing``) and
    ``lut_entries`` lookup-table entries (:func:`dse.model.lut_entries`)."""
    if len(mappings) != len(layers.compute):
        raise ValueError(f"{len(mappings)} mappings for {len(layers.compute)} compute layers "
                         f"({', '.join(layers.compute_names)})")
    from hwgen.compiler.isa import word_bits

    wpw = arch.weights_per_ext_word
    words = 1  # END
    rom = 0
    for c, ((tm, tn, tk), _order) in zip(layers.compute, mappings, strict=True):
        nest = c.nest
        K, N, M = nest.gemm_k, nest.gemm_n, nest.gemm_m  # noqa: N806
        tiles = math.ceil(M / tm) * math.ceil(N / tn) * math.ceil(K / tk)
        words += 1 + tiles + (1 if arch.double_buffer else 0)
        rom += _weight_words(K, N, tk, tn, wpw)
    dww = dwp = 0  # depthwise ROM rows (hwgen.compiler.program.dw_instruction)
    for e in layers.eltwise:
        if e.op not in ELT_OPS:
            raise ValueError(f"layer {e.name!r}: op {e.op!r} has no ELT kind in "
                             f"dse.resources ({', '.join(ELT_OPS)})")
        words += 1
        if e.op == "dwconv":
            groups = -(-e.channels // arch.rows)
            dww += groups * e.window
            dwp += groups
    ops = {e.op for e in layers.eltwise}
    return ProgramSizes(rom_words=rom, program_words=words, program_bits=word_bits(arch),
                        param_words=sum(c.nest.gemm_n for c in layers.compute),
                        pool_mult="avgpool2d" in ops, add_mult=bool(ops & {"add", "mul"}),
                        lut_entries=lut_entries, dw_weight_rows=dww, dw_param_rows=dwp,
                        mul=any(e.op == "mul" for e in layers.eltwise))
