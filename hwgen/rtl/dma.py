"""Weight DMA and the weight store behind its external-memory port.

The port (``ext_port_signature``, seen from the DMA) has three valid/ready streams:

- ``req``: one burst request ``{addr, len, write}`` (word address, number of words,
  a write burst); the memory takes a request while no burst is open;
- ``resp``: a read burst's words in order, ``ext_word_bits`` each (the DMA is
  always ready while a burst is open);
- ``wdata``: a write burst's words in order, ``{data, mask}`` (only the bits set in
  ``mask`` are written); word ``i`` of a write burst requested in cycle ``t`` is taken
  no earlier than ``t + ceil((i+1) / b)``; writes are posted (no acknowledgement). Only
  the activation DMA (``hwgen.rtl.act_dma``) writes.

Timing model (docs/timing.md): a burst whose request is accepted in cycle ``t``
has its word ``i`` (from 0) presented in cycle ``t + latency + ceil((i+1) / b)``
with ``latency``/``b`` = ``ext_latency``/``ext_bandwidth`` of the external
memory, or ``ROM_LATENCY``/1 for the baked :class:`WeightROM`. The DMA takes
the burst parameters in its ``start`` cycle and presents the request the cycle
after, so a burst takes ``DMA_SETUP + latency + ceil(words / b)`` cycles from
``start`` to the cycle its last word is written into the weight scratchpad.

A word holds ``ext_word_bits // w_bits`` weights, weight ``l`` in bits
``[l*w_bits, (l+1)*w_bits)`` (two's complement; ``hwgen.compiler.isa.pack_words``);
a tile's weights are packed contiguously, row-major (k, n), starting on a fresh word.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import EXT_ADDR_BITS, burst_len_bits, ext_len_bits, ext_request_layout
from hwgen.rtl.interfaces import dma_command_signature, weight_write_signature
from mapping.arch import ArchSpec


def ext_port_signature(arch: ArchSpec) -> wiring.Signature:
    """The external-memory port as seen from a DMA (requester)."""
    req = ext_request_layout(arch)
    word = unsigned(arch.ext_word_bits)
    return wiring.Signature({
        "req": Out(stream.Signature(req)),
        "resp": In(stream.Signature(word)),
        "wdata": Out(stream.Signature(data.StructLayout({"data": word, "mask": word}))),
    })


class WeightDMA(wiring.Component):
    """Moves one burst of packed weights into the weight scratchpad.

    ``cmd`` (:func:`~hwgen.rtl.interfaces.dma_command_signature`): ``start`` (one
    cycle) takes ``src`` (word address), ``words``, ``count`` (weights in the burst)
    and ``dst`` (scratchpad element address); ``busy`` is high from the cycle after
    ``start`` to the cycle the last word is written, inclusive (a ``start`` while
    busy is ignored). ``wr`` drives the weight scratchpad's write port, ``ext`` the
    weight store.
    """

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        self.wpw = arch.weights_per_ext_word
        super().__init__({
            "cmd": In(dma_command_signature(arch)),
            "ext": Out(ext_port_signature(arch)),
            "wr": Out(weight_write_signature(arch)),
        })

    def elaborate(self, platform):
        m = Module()
        a, wpw, cmd, ext = self.arch, self.wpw, self.cmd, self.ext
        src = Signal.like(cmd.src)
        words = Signal.like(cmd.words)
        left = Signal(len(cmd.count) + 1)  # weights still to write
        dst = Signal.like(cmd.dst)
        m.d.comb += [ext.req.payload.addr.eq(src), ext.req.payload.len.eq(words),
                     self.wr.addr.eq(dst)]
        # the word's weights (hwgen.compiler.isa.pack_words): lane l in bits [l*w_bits, ...)
        m.d.comb += self.wr.data.eq(ext.resp.payload[:wpw * a.w_bits])
        arrived = Signal()
        for lane in range(wpw):
            m.d.comb += self.wr.mask[lane].eq(arrived & (left > lane))
        with m.FSM(name="dma"):
            with m.State("IDLE"):
                with m.If(cmd.start):
                    m.d.sync += [src.eq(cmd.src), words.eq(cmd.words), left.eq(cmd.count),
                                 dst.eq(cmd.dst)]
                    m.next = "REQUEST"
            with m.State("REQUEST"):  # the cycle after start: present the request
                m.d.comb += [cmd.busy.eq(1), ext.req.valid.eq(1)]
                with m.If(ext.req.ready):
                    m.next = "RECEIVE"
            with m.State("RECEIVE"):  # one word per valid response, written as it arrives
                m.d.comb += [cmd.busy.eq(1), ext.resp.ready.eq(1), arrived.eq(ext.resp.valid)]
                with m.If(ext.resp.valid):
                    m.d.sync += [dst.eq(dst + wpw), left.eq(left - wpw), words.eq(words - 1)]
                    with m.If(words == 1):
                        m.next = "IDLE"
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
        left = Signal(ext_len_bits(a))
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
           "image_bits"]
