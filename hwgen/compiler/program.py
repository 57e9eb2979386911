"""``Program``: the controller's instruction stream, the weight-store image and
the per-channel post-processing table, compiled from a list of layers.

``compile_program(arch, layers, output=None)`` takes :class:`ComputeLayer`,
:class:`PoolLayer`, :class:`AddLayer`, :class:`LutLayer` and :class:`FlattenLayer` objects
(``hwgen.compiler.layers``) that read and write named tensors (``src``/``src2``/
``dst``; by default each layer reads the previous one's output and the first
reads the streamed-in input ``"input"``). Each tensor gets an address range of
the activation scratchpad for its live range (``hwgen.compiler.buffers``). The
instruction set is in ``hwgen.compiler.isa``; one layer's code in ``hwgen.compiler.codegen``.
The compiler unrolls the tile loop (``mapping.timing.iter_tiles``) in
software, so the hardware only walks passes and rows with adders and
comparators. ``flatten`` compiles to no instruction: a linear layer reading a
flattened tensor has its weight rows permuted to consume NHWC directly.
The tables of all ``LutLayer``s are concatenated into ``Program.luts`` (the
element-wise engine's lookup ROM); each layer's ELT word holds the ROM address of
its input value 0 (``tab``). A :class:`DwLayer` (depthwise convolution) has its weights in
``Program.dw_weights`` (one row per ``rows`` channels and kernel tap) and its per-channel
bias / multiplier / shift in ``Program.dw_params`` (one row per ``rows`` channels): the
element-wise engine's depthwise ROMs (``hwgen.rtl.depthwise``). A :class:`CopyLayer` moves
channels (``hwgen.compiler.copy_layer``), a :class:`MulLayer` multiplies two tensors
(``hwgen.compiler.mul_layer``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwgen.compiler.buffers import Buffer, allocate
from hwgen.compiler.codegen import (
    add_instruction,
    check_compute,
    compute_instructions,
    dw_instruction,
    flatten_permutation,
    lut_instruction,
    pool_cycles,
    pool_instruction,
)
from hwgen.compiler.copy_layer import CopyLayer, copy_cycles, copy_instruction
from hwgen.compiler.isa import (  # noqa: F401 (re-exported: the ISA is part of the program API)
    ELT_ADD,
    ELT_AVG,
    ELT_LUT,
    ELT_MAX,
    LUT_ADDR_BITS,
    OP_BITS,
    OP_ELT,
    OP_END,
    OP_LAYER,
    OP_STEP,
    PARAM_ADDR_BITS,
    EltKind,
    Op,
    decode,
    dims_bits,
    elt_fields,
    elt_layout,
    encode,
    layer_fields,
    layer_layout,
    param_bits,
    param_layout,
    step_fields,
    step_layout,
    word_bits,
)
from hwgen.compiler.layers import (
    INPUT,
    AddLayer,
    ComputeLayer,
    DwLayer,
    FlattenLayer,
    LutLayer,
    PoolLayer,
    ProgramError,
)
from hwgen.compiler.mul_layer import MulLayer, mul_cycles, mul_instruction
from hwgen.compiler.spill import compile_spilled
from mapping import timing
from mapping.arch import ArchSpec
from mapping.hwconst import MAX_LAYERS
from mapping.quant import (  # noqa: F401 (MULT_BITS, SHIFT_BITS re-exported with the ISA)
    MULT_BITS,
    SHIFT_BITS,
    SHIFT_MAX,
    SHIFT_MIN,
)

__all__ = ["INPUT", "AddLayer", "ComputeLayer", "CopyLayer", "DwLayer", "FlattenLayer", "LayerInfo",
           "LutLayer", "MulLayer", "PoolLayer", "Program", "ProgramError", "compile_program"]

HW_LAYERS = (ComputeLayer, PoolLayer, AddLayer, LutLayer, DwLayer, CopyLayer, MulLayer)


@dataclass
class LayerInfo:
    """One hardware layer of a program (``layer_id`` = its index in ``Program.layers``).

    ``kind``: ``gemm``, ``conv``, ``maxpool``, ``avgpool``, ``add``, ``lut``, ``dwconv``, ``copy``
    or ``mul``; ``src``/
    ``src2``/``dst`` tensor names with their scratchpad bases; ``predicted_cycles``
    from ``mapping.timing`` (estimated).
    """

    name: str
    kind: str
    predicted_cycles: int
    in_base: int
    out_base: int
    out_elements: int
    src: str = ""
    dst: str = ""
    src2: str | None = None
    in2_base: int | None = None
    # spilled programs: activation words read from / written to external memory by the
    # layer's XFERs, and their cycles (estimated, part of ``predicted_cycles``)
    ext_read_words: int = 0
    ext_write_words: int = 0
    xfer_cycles: int = 0


@dataclass
class Program:
    """Instruction ROM image, weight-store image (external words) and parameter table.

    ``layers``: the hardware layers in order (their cycle counters are
    ``layer_sel`` 0..len-1); ``tensors``: name -> ``(base, elements)`` in the
    activation scratchpad (aliases from FlattenLayer included); the input
    (``input_base``, ``input_count``) is streamed in, ``output_name``'s tensor
    (``output_base``, ``output_count``) streamed out. ``luts``: the element-wise engine's
    lookup ROM, every ``LutLayer``'s table in layer order (empty without one).
    """

    arch: ArchSpec
    instructions: list[int]
    weight_image: list[int]
    params: list[int]
    layers: list[LayerInfo]
    input_base: int
    input_count: int
    output_base: int
    output_count: int
    tensors: dict[str, tuple[int, int]] = field(default_factory=dict)
    output_name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    luts: list[int] = field(default_factory=list)
    dw_weights: list[int] = field(default_factory=list)  # packed rows of `rows` weights
    dw_params: list[int] = field(default_factory=list)  # packed rows of `rows` param entries
    # spilled programs (hwgen.compiler.spill): the tensors live in external memory, name ->
    # (word address, elements); the host writes the input there (``input_count`` = 0: no
    # stream), the output is loaded back and streamed out; ``ext_words`` words are used
    # (the weight image first when the weights are external, then the activations)
    ext_tensors: dict[str, tuple[int, int]] = field(default_factory=dict)
    ext_words: int = 0

    @property
    def spilled(self) -> bool:
        """The activations live in external memory (XFER instructions move them)."""
        return bool(self.ext_tensors)

    @property
    def compute_layers(self) -> int:
        """Hardware layers with a cycle counter (compute, pool and add layers)."""
        return len(self.layers)

    def summary(self) -> dict[str, Any]:
        return {
            "instructions": len(self.instructions),
            "instruction_bits": word_bits(self.arch),
            "weight_words": len(self.weight_image),
            "weight_word_bits": self.arch.ext_word_bits,
            "param_entries": len(self.params),
            **({"lut_entries": len(self.luts)} if self.luts else {}),
            "input_base": self.input_base, "input_count": self.input_count,
            "output_base": self.output_base, "output_count": self.output_count,
            **({"spilled": True, "ext_words": self.ext_words,
                "input_ext": list(self.ext_tensors[INPUT])} if self.spilled else {}),
        }


@dataclass
class _Tensor:
    buf: int  # index into the buffer list (aliases share it)
    hwc: tuple[int, int, int] | None
    flattened: bool = False
    parts: bool = False  # written by several CopyLayers (a concatenation)


class _Tensors:
    """Name resolution, shapes and live ranges of the program's tensors."""

    def __init__(self, names: list[str]):
        self.bufs: list[Buffer] = [Buffer(INPUT, 0, -1, -1)]
        self.t: dict[str, _Tensor] = {INPUT: _Tensor(0, None)}
        self.names = names

    def read(self, name: str, count: int, i: int, who: str) -> _Tensor:
        if name not in self.t:
            raise ProgramError(f"{who}: reads tensor '{name}', which no earlier layer writes "
                               f"(known: {', '.join(sorted(self.t))})")
        t = self.t[name]
        b = self.bufs[t.buf]
        if b.first < 0 and b.size == 0:
            b.size = count
        elif b.size != count:
            raise ProgramError(f"{who}: reads {count} elements of tensor '{name}', which holds "
                               f"{b.size}")
        b.last = max(b.last, i)
        return t

    def write(self, name: str, count: int, i: int, who: str, hwc) -> None:
        if name in self.t:
            raise ProgramError(f"{who}: tensor '{name}' is already written by an earlier layer "
                               "(or is the input); give the layer another dst")
        self.bufs.append(Buffer(name, count, i, i))
        self.t[name] = _Tensor(len(self.bufs) - 1, hwc)

    def write_part(self, name: str, count: int, i: int, who: str, hwc) -> None:
        """A CopyLayer's write: the first creates the tensor, later ones (same size) add
        their part to it and keep it live."""
        t = self.t.get(name)
        if t is None:
            self.write(name, count, i, who, hwc)
            self.t[name].parts = True
        elif not t.parts or self.bufs[t.buf].size != count:
            raise ProgramError(f"{who}: copies into tensor '{name}', which another kind of "
                               "layer wrote (or of another size)")
        else:
            self.bufs[t.buf].last = max(self.bufs[t.buf].last, i)

    def base(self, name: str) -> int:
        return self.bufs[self.t[name].buf].base


def compile_program(arch: ArchSpec, layers: list, output: str | None = None) -> Program:
    """Compile ``layers`` (ComputeLayer / PoolLayer / AddLayer / LutLayer / FlattenLayer).

    The input tensor ``"input"`` is streamed in (NHWC), tensor ``output``
    (default: the last layer's ``dst``) streamed out. Raises ProgramError naming
    the layer and the limit (unknown or re-written tensor names, element counts
    that disagree, activations beyond ``act_words``, fields that do not fit).
    """
    for x in layers:
        if not isinstance(x, (*HW_LAYERS, FlattenLayer)):
            raise ProgramError(f"layer {x!r} is not a ComputeLayer, PoolLayer, AddLayer, "
                               "LutLayer, DwLayer, CopyLayer, MulLayer or FlattenLayer")
    hw = [x for x in layers if isinstance(x, HW_LAYERS)]
    if not hw:
        raise ProgramError("a program needs at least one compute layer (or pool / add layer)")
    if len(hw) > MAX_LAYERS:
        raise ProgramError(f"{len(hw)} hardware layers; at most {MAX_LAYERS}")
    # --- pass 1: resolve names, shapes and live ranges
    T = _Tensors([x.name for x in hw])  # noqa: N806
    prev, i = INPUT, -1
    plan = []  # (layer, index, src names, dst name, flattened src tensor)
    for x in layers:
        src = x.src if x.src is not None else prev
        if isinstance(x, FlattenLayer):
            if src not in T.t:
                raise ProgramError(f"{x.name}: flattens tensor '{src}', which no earlier layer "
                                   "writes")
            dst = x.dst if x.dst is not None else src
            if dst != src:
                if dst in T.t:
                    raise ProgramError(f"{x.name}: tensor '{dst}' is already written")
                T.t[dst] = _Tensor(T.t[src].buf, T.t[src].hwc)
            T.t[dst].flattened = True
            prev = dst
            continue
        i += 1
        dst = x.dst if x.dst is not None else x.name
        if isinstance(x, ComputeLayer):
            check_compute(x, arch)
            nest = x.mapping.nest
            if nest.kind == "gemm":
                cnt, hwc = nest.gemm_m * nest.gemm_k, (nest.gemm_m, 1, nest.gemm_n)
            else:
                cnt, hwc = nest.N * nest.H * nest.W * nest.C, (nest.P, nest.Q, nest.gemm_n)
            ts = T.read(src, cnt, i, x.name)
            T.write(dst, nest.gemm_m * nest.gemm_n, i, x.name, hwc)
            plan.append((x, i, (src,), dst, ts))
        elif isinstance(x, PoolLayer):
            g = x.geometry()
            T.read(src, x.in_elements, i, x.name)
            T.write(dst, x.N * g["P"] * g["Q"] * x.C, i, x.name, (g["P"], g["Q"], x.C))
            plan.append((x, i, (src,), dst, None))
        elif isinstance(x, DwLayer):
            g = x.geometry()
            T.read(src, x.in_elements, i, x.name)
            T.write(dst, x.N * g["P"] * g["Q"] * x.C, i, x.name, (g["P"], g["Q"], x.C))
            plan.append((x, i, (src,), dst, None))
        elif isinstance(x, CopyLayer):
            T.read(src, x.src_elements, i, x.name)
            T.write_part(dst, x.dst_elements, i, x.name, x.dst_hwc)
            plan.append((x, i, (src,), dst, None))
        elif isinstance(x, MulLayer):
            x.check(arch)
            ta = T.read(src, x.elements, i, x.name)
            T.read(x.src2, x.gate_elements, i, x.name)
            T.write(dst, x.elements, i, x.name, ta.hwc)  # the first operand's layout
            plan.append((x, i, (src, x.src2), dst, None))
        elif isinstance(x, LutLayer):
            ta = T.read(src, x.elements, i, x.name)
            T.write(dst, x.elements, i, x.name, ta.hwc)  # the operand's layout
            plan.append((x, i, (src,), dst, None))
        else:
            if x.src2 is None:
                raise ProgramError(f"{x.name}: an AddLayer needs src2, the name of the skip "
                                   "operand (an earlier tensor)")
            ta = T.read(src, x.elements, i, x.name)
            T.read(x.src2, x.elements, i, x.name)
            T.write(dst, x.elements, i, x.name, ta.hwc)  # the operands' layout
            plan.append((x, i, (src, x.src2), dst, None))
        prev = dst
    out_name = prev if output is None else output
    if out_name not in T.t:
        raise ProgramError(f"output tensor '{out_name}' is not written by any layer")
    if T.bufs[0].size == 0:
        raise ProgramError("no layer reads the input tensor 'input'")
    T.bufs[T.t[out_name].buf].last = len(hw)
    # --- pass 2: allocate the activation scratchpad; if the tensors do not fit, spill
    try:
        allocate(T.bufs, [x.name for x in hw], arch.act_words)
    except ProgramError:
        return _spilled_program(arch, plan, T, out_name, len(hw))
    # --- pass 3: code
    instrs: list[int] = []
    image: list[int] = []
    params: list[int] = []
    luts: list[int] = []
    dww: list[int] = []
    dwp: list[int] = []
    infos: list[LayerInfo] = []
    for x, i, srcs, dst, ts in plan:
        bases = [T.base(s) for s in srcs]
        ob = T.base(dst)
        out_elems = T.bufs[T.t[dst].buf].size
        if isinstance(x, ComputeLayer):
            wmat = np.asarray(x.weights, dtype=np.int64)
            nest = x.mapping.nest
            if ts.flattened and ts.hwc is not None and nest.kind == "gemm":
                if nest.gemm_k != ts.hwc[0] * ts.hwc[1] * ts.hwc[2]:
                    raise ProgramError(f"{x.name}: K={nest.gemm_k} after flatten of {ts.hwc}")
                wmat = wmat[flatten_permutation(ts.hwc)]
            instrs += compute_instructions(arch, x, wmat, i, bases[0], ob, params, image)
            cyc = timing.layer_cycles(x.mapping, arch).cycles
        elif isinstance(x, PoolLayer):
            instrs.append(pool_instruction(arch, x, i, bases[0], ob))
            cyc = pool_cycles(arch, x)
        elif isinstance(x, CopyLayer):
            instrs.append(copy_instruction(arch, x, i, bases[0], ob))
            cyc = copy_cycles(arch, x)
        elif isinstance(x, MulLayer):
            instrs.append(mul_instruction(arch, x, i, bases[0], bases[1], ob))
            cyc = mul_cycles(arch, x)
        elif isinstance(x, LutLayer):
            instrs.append(lut_instruction(arch, x, i, bases[0], ob, luts))
            cyc = timing.lut_cycles(x.elements, arch)
        elif isinstance(x, DwLayer):
            instrs.append(dw_instruction(arch, x, i, bases[0], ob, dww, dwp))
            g = x.geometry()
            cyc = timing.dw_cycles(x.N * g["P"] * g["Q"], x.C, g["kh"] * g["kw"], arch)
        else:
            instrs.append(add_instruction(arch, x, i, bases[0], bases[1], ob))
            cyc = timing.add_cycles(x.elements, arch)
        infos.append(LayerInfo(name=x.name, kind=_kind(x), predicted_cycles=cyc, in_base=bases[0],
                               out_base=ob, out_elements=out_elems, src=srcs[0], dst=dst,
                               src2=srcs[1] if len(srcs) > 1 else None,
                               in2_base=bases[1] if len(bases) > 1 else None))
    instrs.append(encode(layer_layout(arch), dict(op=Op.END), "END"))
    ob = T.bufs[T.t[out_name].buf]
    return Program(arch=arch, instructions=instrs, weight_image=image, params=params,
                   layers=infos, input_base=T.bufs[0].base, input_count=T.bufs[0].size,
                   output_base=ob.base, output_count=ob.size,
                   tensors={n: (T.bufs[t.buf].base, T.bufs[t.buf].size) for n, t in T.t.items()},
                   output_name=out_name, luts=luts, dw_weights=dww, dw_params=dwp)


def _kind(x) -> str:
    """``LayerInfo.kind`` of a hardware layer."""
    if isinstance(x, ComputeLayer):
        return x.mapping.nest.kind
    if isinstance(x, PoolLayer):
        return f"{x.kind}pool"
    return {CopyLayer: "copy", MulLayer: "mul", LutLayer: "lut", DwLayer: "dwconv",
            AddLayer: "add"}[type(x)]


def _spilled_program(arch: ArchSpec, plan: list, tensors: _Tensors, out_name: str,
                     n_hw: int) -> Program:
    """The program with its tensors in external memory (``hwgen.compiler.spill``)."""
    image: list[int] = []
    params: list[int] = []
    luts: list[int] = []
    dww: list[int] = []
    dwp: list[int] = []
    r = compile_spilled(arch, plan, tensors, out_name, n_hw, image, params, luts, dww, dwp)
    instrs = r["instructions"] + [encode(layer_layout(arch), dict(op=Op.END), "END")]
    infos = []
    for x, i, srcs, dst, _ in plan:
        rd, wr, xc = r["traffic"].get(i, (0, 0, 0))
        infos.append(LayerInfo(name=x.name, kind=_kind(x), predicted_cycles=r["cycles"][i],
                               in_base=-1, out_base=-1,
                               out_elements=tensors.bufs[tensors.t[dst].buf].size,
                               src=srcs[0], dst=dst, src2=srcs[1] if len(srcs) > 1 else None,
                               ext_read_words=rd, ext_write_words=wr, xfer_cycles=xc))
    return Program(arch=arch, instructions=instrs, weight_image=image, params=params,
                   layers=infos, input_base=0, input_count=0, output_base=0,
                   output_count=r["output_count"], output_name=out_name, luts=luts,
                   dw_weights=dww, dw_params=dwp, ext_tensors=r["ext_tensors"],
                   ext_words=r["ext_words"])
