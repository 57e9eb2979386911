"""``CheckedComponent``: a component that rejects bad constructor arguments before it exists.

Amaranth warns about every elaboratable that is created but never elaborated
(``UnusedElaboratable``); a constructor that raised from ``__init__`` would
leave such an object behind. A subclass defines :meth:`CheckedComponent.check`
with the constructor's arguments; ``__new__`` runs it before the object is
made, so a rejected component never exists and nothing needs silencing.
"""

from __future__ import annotations

from amaranth.lib import wiring


class CheckedComponent(wiring.Component):
    """``wiring.Component`` whose arguments are validated by :meth:`check` first."""

    @classmethod
    def check(cls, *args, **kwargs) -> None:
        """Raise ``ValueError`` (or a subclass) naming the bad argument and what is allowed."""

    def __new__(cls, *args, **kwargs):
        cls.check(*args, **kwargs)
        # the unused-elaboratable warning points at the caller of the constructor
        return super().__new__(cls, src_loc_at=1)
