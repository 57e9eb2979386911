"""One processing element: a signed multiply-accumulate cell of the systolic array.

Products are signed ``in_bits x w_bits`` and sign-extended into ``acc_bits``;
sums wrap modulo ``2**acc_bits`` (two's complement), exactly as
:func:`mapping.quant.wrap` assumes.

Weight-stationary (``"ws"``)
    Two weight registers: *active* (used by the MAC) and *shadow* (written by the
    preload port ``w_load``/``w_data`` while the active weight computes). The
    input ``a`` moves right, the partial sum moves along the column. The
    ``first_in`` flag travels with ``a``: in the cycle it is set the MAC already
    uses the shadow weight and the shadow is copied into the active register,
    so a PE switches blocks exactly when the first vector of a pass reaches it.

Output-stationary (``"os"``)
    ``a`` moves right and ``w`` moves down, both with their flags. The
    accumulator restarts from the product when ``first_in`` is set. ``last_out``
    is ``last_in`` delayed one cycle: it is high during the one cycle in which
    ``acc`` holds the finished sum of the pass (the next pass may already be
    entering; its first product lands in ``acc`` at the end of that cycle).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from hwgen.rtl.checked import CheckedComponent

DATAFLOWS = ("ws", "os")


def check_widths(in_bits: int, w_bits: int, acc_bits: int) -> None:
    """Raise ValueError unless the operand/accumulator widths are usable."""
    for name, v in (("in_bits", in_bits), ("w_bits", w_bits)):
        if not isinstance(v, int) or isinstance(v, bool) or not 2 <= v <= 16:
            raise ValueError(f"{name} = {v!r} is invalid: must be an integer from 2 to 16")
    if not isinstance(acc_bits, int) or isinstance(acc_bits, bool) or not (
        in_bits + w_bits <= acc_bits <= 48
    ):
        raise ValueError(
            f"acc_bits = {acc_bits!r} is invalid: must be an integer from in_bits + w_bits "
            f"= {in_bits + w_bits} to 48"
        )


def check_dataflow(dataflow: str) -> str:
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow = {dataflow!r} is invalid: must be one of {', '.join(DATAFLOWS)}")
    return dataflow


class PE(CheckedComponent):
    """Signed MAC cell; ``dataflow`` selects the WS or OS port set (see module docstring)."""

    @classmethod
    def check(cls, in_bits: int, w_bits: int, acc_bits: int, dataflow: str = "ws") -> None:
        check_widths(in_bits, w_bits, acc_bits)
        check_dataflow(dataflow)

    def __init__(self, in_bits: int, w_bits: int, acc_bits: int, dataflow: str = "ws"):
        self.dataflow = dataflow
        self.in_bits, self.w_bits, self.acc_bits = in_bits, w_bits, acc_bits
        a, w, acc = signed(in_bits), signed(w_bits), signed(acc_bits)
        if dataflow == "ws":
            sig = {
                "a_in": In(a), "first_in": In(1), "psum_in": In(acc),
                "w_load": In(1), "w_data": In(w),
                "a_out": Out(a), "first_out": Out(1), "psum_out": Out(acc),
            }
        else:
            sig = {
                "a_in": In(a), "w_in": In(w), "first_in": In(1), "last_in": In(1),
                "a_out": Out(a), "w_out": Out(w), "first_out": Out(1), "last_out": Out(1),
                "acc": Out(acc),
            }
        super().__init__(sig)

    @staticmethod
    def register_bits(in_bits: int, w_bits: int, acc_bits: int, dataflow: str) -> int:
        """Flip-flops in one PE (the last column/row may lose some to synthesis pruning)."""
        if check_dataflow(dataflow) == "ws":
            # a, first flag, partial sum, active + shadow weight
            return in_bits + 1 + acc_bits + 2 * w_bits
        # a, w, first + last flags, accumulator
        return in_bits + w_bits + 2 + acc_bits

    def elaborate(self, platform):
        m = Module()
        if self.dataflow == "ws":
            active = Signal(signed(self.w_bits))
            shadow = Signal(signed(self.w_bits))
            w_eff = Mux(self.first_in, shadow, active)
            m.d.sync += [
                self.psum_out.eq(self.psum_in + self.a_in * w_eff),  # truncates: wraps
                self.a_out.eq(self.a_in),
                self.first_out.eq(self.first_in),
            ]
            with m.If(self.first_in):
                m.d.sync += active.eq(shadow)
            with m.If(self.w_load):
                m.d.sync += shadow.eq(self.w_data)
        else:
            prod = self.a_in * self.w_in
            m.d.sync += [
                self.acc.eq(Mux(self.first_in, prod, self.acc + prod)),  # truncates: wraps
                self.a_out.eq(self.a_in),
                self.w_out.eq(self.w_in),
                self.first_out.eq(self.first_in),
                self.last_out.eq(self.last_in),
            ]
        return m
