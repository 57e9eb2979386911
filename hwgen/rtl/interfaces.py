"""The accelerator's internal interfaces as ``wiring.Signature``s.

Each signature is written from the side of the unit that drives the access
(the *master*: the engine that reads a scratchpad, the sequencer that commands
an engine); the unit that serves it has the flipped signature (``In(sig)``),
so ``wiring.connect(m, master.port, slave.port)`` wires them.

- scratchpad ports: :func:`act_read_signature`, :func:`act_write_signature`,
  :func:`weight_read_signature`, :func:`weight_write_signature`,
  :func:`acc_update_signature` (the accumulator's read-modify-write),
  :func:`acc_read_signature`, :func:`table_read_signature` (the parameter table);
- datapath: :func:`array_signature`, :func:`postproc_signature` (seen from the
  unit feeding them; their port names are the components' own, flat);
- control: :func:`tile_command_signature`, :func:`elt_command_signature`,
  :func:`xfer_command_signature`, :func:`dma_command_signature`, :func:`run_signature`, :func:`phase_signature`
  (input / output stream phases), :func:`counter_signature`.

:func:`route` is the one multiplexer: several masters taking turns on one port.
:class:`PortView` presents flat ports of a component (the top level's, which
keep their names) as one interface object.
"""

from __future__ import annotations

from amaranth.hdl import Module, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hwgen.compiler.isa import (
    EXT_ADDR_BITS,
    OUT_BITS_BITS,
    burst_len_bits,
    elt_layout,
    layer_layout,
    step_layout,
    xfer_layout,
)
from mapping.arch import ArchSpec
from mapping.hwconst import CYCLE_COUNTER_BITS, LAYER_COUNTER_BITS, LAYER_ID_BITS, bits_for
from mapping.quant import MULT_BITS, SHIFT_BITS


# ---------------------------------------------------------------- scratchpads
def act_read_signature(arch: ArchSpec, lanes: int | None = None) -> wiring.Signature:
    """``lanes`` (default ``rows``) random read lanes of the activation scratchpad:
    ``en`` and one ``addr`` per lane in cycle t, ``data`` per lane in t+1."""
    lanes = arch.rows if lanes is None else lanes
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(data.ArrayLayout(unsigned(bits_for(arch.act_words)), lanes)),
        "data": In(data.ArrayLayout(signed(arch.in_bits), lanes)),
    })


def act_write_signature(arch: ArchSpec, lanes: int) -> wiring.Signature:
    """``lanes`` consecutive elements from ``addr``, lane j written when ``mask[j]``."""
    return wiring.Signature({
        "addr": Out(unsigned(bits_for(arch.act_words))),
        "mask": Out(lanes),
        "data": Out(data.ArrayLayout(signed(arch.in_bits), lanes)),
    })


def weight_read_signature(arch: ArchSpec) -> wiring.Signature:
    """One row of ``cols`` consecutive weights from ``addr`` (``data`` the next cycle)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(bits_for(arch.w_words))),
        "data": In(data.ArrayLayout(signed(arch.w_bits), arch.cols)),
    })


def weight_write_signature(arch: ArchSpec) -> wiring.Signature:
    """One external word's weights (``weights_per_ext_word`` consecutive, masked)."""
    wpw = arch.weights_per_ext_word
    return wiring.Signature({
        "addr": Out(unsigned(bits_for(arch.w_words))),
        "mask": Out(wpw),
        "data": Out(data.ArrayLayout(signed(arch.w_bits), wpw)),
    })


def acc_update_signature(arch: ArchSpec) -> wiring.Signature:
    """A result row into the accumulator buffer: ``data`` added to (``accumulate``) or
    written over the ``cols`` entries from ``addr`` (lane j when ``mask[j]``)."""
    return wiring.Signature({
        "valid": Out(1),
        "addr": Out(unsigned(bits_for(arch.acc_words))),
        "mask": Out(arch.cols),
        "accumulate": Out(1),
        "data": Out(data.ArrayLayout(signed(arch.acc_bits), arch.cols)),
    })


def acc_read_signature(arch: ArchSpec) -> wiring.Signature:
    """One accumulator row (``cols`` entries from ``addr``), ``data`` the next cycle."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(bits_for(arch.acc_words))),
        "data": In(data.ArrayLayout(signed(arch.acc_bits), arch.cols)),
    })


def table_read_signature(shape, lanes: int, addr_bits: int) -> wiring.Signature:
    """``lanes`` consecutive entries of a read-only table, ``data`` the next cycle."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(addr_bits)),
        "data": In(data.ArrayLayout(shape, lanes)),
    })


# ---------------------------------------------------------------- datapath
def array_signature(arch: ArchSpec, tag=16) -> wiring.Signature:
    """The systolic array's ports seen from the unit feeding it (``tag``: a width or a
    shape of the same width). Both dataflows: ``in_valid``, ``in_first``, ``in_data``
    (``rows`` lanes), ``in_tag``; results ``out_valid``, ``out_data`` (``cols`` lanes),
    ``out_tag``. WS adds the preload ``preload_valid``/``preload_row``, OS the
    ``in_last`` flag and the weight row ``in_w``."""
    tag = unsigned(tag) if isinstance(tag, int) else tag
    w_row = data.ArrayLayout(signed(arch.w_bits), arch.cols)
    members = {
        "in_valid": Out(1), "in_first": Out(1),
        "in_data": Out(data.ArrayLayout(signed(arch.in_bits), arch.rows)),
        "in_tag": Out(tag),
    }
    if arch.dataflow == "ws":
        members.update(preload_valid=Out(1), preload_row=Out(w_row))
    else:
        members.update(in_last=Out(1), in_w=Out(w_row))
    members.update(out_valid=In(1), out_data=In(data.ArrayLayout(signed(arch.acc_bits),
                                                                 arch.cols)),
                   out_tag=In(tag))
    return wiring.Signature(members)


def postproc_signature(arch: ArchSpec, lanes: int, out_width: int) -> wiring.Signature:
    """The post-processing unit's ports seen from the unit feeding it: per lane ``acc``,
    ``bias``, ``mult``, ``shift``; per row ``in_valid``, ``out_bits``, ``relu``; the
    result ``out_valid``/``out`` (signed ``out_width``)."""
    acc = data.ArrayLayout(signed(arch.acc_bits), lanes)
    return wiring.Signature({
        "in_valid": Out(1), "acc": Out(acc), "bias": Out(acc),
        "mult": Out(data.ArrayLayout(unsigned(MULT_BITS), lanes)),
        "shift": Out(data.ArrayLayout(unsigned(SHIFT_BITS), lanes)),
        "out_bits": Out(OUT_BITS_BITS), "relu": Out(1),
        "out_valid": In(1), "out": In(data.ArrayLayout(signed(out_width), lanes)),
    })


# ---------------------------------------------------------------- control
def tile_command_signature(arch: ArchSpec) -> wiring.Signature:
    """Start one tile: ``go`` with its STEP word ``step`` and the ``layer`` header (held
    for the whole layer); ``busy`` from the cycle after ``go`` to its last write."""
    return wiring.Signature({
        "go": Out(1), "step": Out(step_layout(arch)), "layer": Out(layer_layout(arch)),
        "busy": In(1),
    })


def elt_command_signature(arch: ArchSpec) -> wiring.Signature:
    """Start one pool / add layer: ``go`` with its ELT word ``instr``; ``busy`` from the
    cycle after ``go`` to its last write."""
    return wiring.Signature({"go": Out(1), "instr": Out(elt_layout(arch)), "busy": In(1)})


def xfer_command_signature(arch: ArchSpec) -> wiring.Signature:
    """Start one activation transfer: ``go`` with its XFER word ``instr``; ``busy`` from the
    cycle after ``go`` to its last scratchpad write (load) or last word taken (store)."""
    return wiring.Signature({"go": Out(1), "instr": Out(xfer_layout(arch)), "busy": In(1)})


def dma_command_signature(arch: ArchSpec) -> wiring.Signature:
    """Start one weight burst: ``start`` with the weight-store word address ``src``,
    ``words``, ``count`` weights and the scratchpad address ``dst``; ``busy`` from the
    cycle after ``start`` to the cycle the last word is written."""
    return wiring.Signature({
        "start": Out(1),
        "src": Out(unsigned(EXT_ADDR_BITS)),
        "words": Out(unsigned(burst_len_bits(arch))),
        "count": Out(unsigned(bits_for(arch.w_words + 1) + 1)),
        "dst": Out(unsigned(bits_for(arch.w_words))),
        "busy": In(1),
    })


def run_signature() -> wiring.Signature:
    """One run, seen from the host: ``start`` (in idle or done), ``busy`` from then to
    ``done``, which holds until the next ``start``."""
    return wiring.Signature({"start": Out(1), "busy": In(1), "done": In(1)})


def phase_signature() -> wiring.Signature:
    """A stream phase of a run: ``rewind`` (the run's start), ``active`` while the
    phase lasts, ``done`` from the stream unit when it has moved every element."""
    return wiring.Signature({"rewind": Out(1), "active": Out(1), "done": In(1)})


def counter_signature() -> wiring.Signature:
    """The cycle counters: ``cycle_count`` (free running), ``run_cycles`` (start to
    done), and the per-layer counter of layer ``layer_sel`` on ``layer_count``."""
    return wiring.Signature({
        "cycle_count": Out(CYCLE_COUNTER_BITS), "run_cycles": Out(CYCLE_COUNTER_BITS),
        "layer_sel": In(LAYER_ID_BITS), "layer_count": Out(LAYER_COUNTER_BITS),
    })


# ---------------------------------------------------------------- helpers
class PortView:
    """The ports ``owner.<name>`` for every member of ``signature``, as one interface
    object (e.g. a component's flat top-level ports, which keep their names, seen as
    the :func:`counter_signature` they implement)."""

    def __init__(self, owner, signature: wiring.Signature):
        self.signature = signature
        for name in signature.members:
            setattr(self, name, getattr(owner, name))


def route(m: Module, port, masters: list[tuple[Value | None, object]]) -> None:
    """Let several ``masters`` (interface objects of one signature, lane counts may
    differ) take turns on ``port`` (the serving side): the first master whose condition
    holds drives the port's inputs, the last one (condition ``None``) otherwise; every
    master sees the port's outputs (read data), narrower masters their low lanes."""
    names = list(port.signature.members)
    for i, (cond, master) in enumerate(masters):
        if list(master.signature.members) != names:
            raise TypeError(f"master {i} has members {list(master.signature.members)}, "
                            f"the port {names}")
        if (cond is None) != (i == len(masters) - 1):
            raise ValueError("every master but the last needs a condition")
    drive = [n for n, mem in masters[0][1].signature.members.items() if mem.flow == Out]
    for i, (cond, master) in enumerate(masters):
        branch = m.If(cond) if i == 0 else m.Elif(cond) if cond is not None else m.Else()
        with branch:
            m.d.comb += [getattr(port, n).eq(getattr(master, n)) for n in drive]
    for _, master in masters:
        m.d.comb += [getattr(master, n).eq(getattr(port, n)) for n in names if n not in drive]
