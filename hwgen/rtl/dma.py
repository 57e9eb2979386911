"""Weight DMA and the weight store behind its external-memory port.

The port (``ext_port_signature``, seen from the DMA) has two valid/ready streams:

- ``req``: one burst request ``{addr, len}`` (word address, number of words);
- ``resp``: the burst's words in order, ``ext_word_bits`` each (the DMA is
  always ready while a burst is open).

Timing model (docs/timing.md): a burst whose request is accepted in cycle ``t``
has its word ``i`` (from 0) presented in cycle ``t + latency + ceil((i+1) / b)``
with ``latency``/``b`` = ``ext_latency``/``ext_bandwidth`` of the external
memory, or ``ROM_LATENCY``/1 for the baked :class:`WeightROM`. The DMA takes
the burst parameters in its ``start`` cycle and presents the request the cycle
after, so a burst takes ``DMA_SETUP + latency + ceil(words / b)`` cycles from
``start`` to the cycle its last word is written into the weight scratchpad.

A word holds ``ext_word_bits // w_bits`` weights, weight ``l`` in bits
``[l*w_bits, (l+1)*w_bits)`` (two's complement); a tile's weights are packed
contiguously, row-major (k, n), starting on a fresh word.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.rtl.memory import bits_for
from mapping.arch import ArchSpec

EXT_ADDR_BITS = 32


def burst_len_bits(arch: ArchSpec) -> int:
    """Bits of a burst length: a burst never exceeds the weight scratchpad."""
    return bits_for(arch.w_words + 2)


def ext_port_signature(arch: ArchSpec) -> wiring.Signature:
    """The external-memory port as seen from the DMA (requester)."""
    req = data.StructLayout({"addr": unsigned(EXT_ADDR_BITS), "len": unsigned(burst_len_bits(arch))})
    return wiring.Signature({
        "req": Out(stream.Signature(req)),
        "resp": In(stream.Signature(unsigned(arch.ext_word_bits))),
    })


def pack_words(values: list[int], w_bits: int, per_word: int) -> list[int]:
    """Pack signed ``w_bits`` values ``per_word`` to a word, LSB first (last word zero-padded)."""
    mask = (1 << w_bits) - 1
    words = []
    for i in range(0, len(values), per_word):
        word = 0
        for lane, v in enumerate(values[i:i + per_word]):
            word |= (int(v) & mask) << (lane * w_bits)
        words.append(word)
    return words


class WeightDMA(wiring.Component):
    """Moves one burst of packed weights into the weight scratchpad.

    ``start`` (one cycle) takes ``src`` (word address), ``words``, ``count``
    (weights in the burst) and ``dst`` (scratchpad element address); ``busy``
    is high from the cycle after ``start`` to the cycle the last word is
    written, inclusive. The ``wr_*`` ports drive the weight scratchpad's write port.
    """

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.wpw = arch.weights_per_ext_word
        lb = burst_len_bits(arch)
        wa = bits_for(arch.w_words)
        super().__init__({
            "start": In(1),
            "src": In(unsigned(EXT_ADDR_BITS)),
            "words": In(unsigned(lb)),
            "count": In(unsigned(bits_for(arch.w_words + 1) + 1)),
            "dst": In(unsigned(wa)),
            "busy": Out(1),
            "ext": Out(ext_port_signature(arch)),
            "wr_addr": Out(unsigned(wa)),
            "wr_mask": Out(self.wpw),
            "wr_data": Out(data.ArrayLayout(signed(arch.w_bits), self.wpw)),
        })

    def elaborate(self, platform):
        m = Module()
        a, wpw = self.arch, self.wpw
        src = Signal.like(self.src)
        words = Signal.like(self.words)
        left = Signal(len(self.count) + 1)  # weights still to write
        dst = Signal.like(self.dst)
        requesting = Signal()
        receiving = Signal()
        m.d.comb += [
            self.busy.eq(requesting | receiving),
            self.ext.req.valid.eq(requesting),
            self.ext.req.payload.addr.eq(src),
            self.ext.req.payload.len.eq(words),
            self.ext.resp.ready.eq(receiving),
        ]
        with m.If(self.start):
            m.d.sync += [src.eq(self.src), words.eq(self.words), left.eq(self.count),
                         dst.eq(self.dst), requesting.eq(1)]
        with m.If(requesting & self.ext.req.ready):
            m.d.sync += [requesting.eq(0), receiving.eq(1)]
        word = self.ext.resp.payload
        m.d.comb += self.wr_addr.eq(dst)
        for lane in range(wpw):
            m.d.comb += [
                self.wr_data[lane].eq(word[lane * a.w_bits:(lane + 1) * a.w_bits].as_signed()),
                self.wr_mask[lane].eq(receiving & self.ext.resp.valid & (left > lane)),
            ]
        with m.If(receiving & self.ext.resp.valid):
            m.d.sync += [dst.eq(dst + wpw), left.eq(left - wpw), words.eq(words - 1)]
            with m.If(words == 1):
                m.d.sync += receiving.eq(0)
        return m


class WeightROM(wiring.Component):
    """The baked weight store: serves bursts on the DMA's port from a ROM.

    Accepts a request when idle, reads one word per cycle from the next cycle on
    (synchronous ROM), so word ``i`` is presented ``ROM_LATENCY + 1 + i`` cycles
    after the request cycle (``ROM_LATENCY`` = 1).
    """

    def __init__(self, arch: ArchSpec, image: list[int]):
        self.arch = arch
        self.image = [int(w) for w in image] or [0]
        super().__init__({"port": In(ext_port_signature(arch))})

    def elaborate(self, platform):
        m = Module()
        a = self.arch
        rom = memory.Memory(shape=unsigned(a.ext_word_bits), depth=len(self.image),
                            init=self.image)
        m.submodules.rom = rom
        rd = rom.read_port()
        cur = Signal(EXT_ADDR_BITS)
        left = Signal(burst_len_bits(a))
        active = Signal()
        valid = Signal()
        port = self.port
        m.d.comb += [port.req.ready.eq(~active), rd.addr.eq(cur), rd.en.eq(1),
                     port.resp.valid.eq(valid), port.resp.payload.eq(rd.data)]
        m.d.sync += valid.eq(active)
        with m.If(port.req.valid & ~active):
            m.d.sync += [cur.eq(port.req.payload.addr), left.eq(port.req.payload.len),
                         active.eq(port.req.payload.len != 0)]
        with m.Elif(active):
            m.d.sync += [cur.eq(cur + 1), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += active.eq(0)
        return m


def image_bits(arch: ArchSpec, image: list[int]) -> int:
    """Bits of a weight-store image."""
    return len(image) * arch.ext_word_bits


__all__ = ["EXT_ADDR_BITS", "WeightDMA", "WeightROM", "burst_len_bits", "ext_port_signature",
           "image_bits", "pack_words"]
