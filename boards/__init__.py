"""FPGA device catalogue, synthesis and place-and-route wrappers, resource model.

``boards.get(name)`` finds a board or device; ``boards.synth.synthesize`` runs
Yosys, ``boards.report.fit`` checks a result against a device budget and
``boards.pnr.place_and_route``/``estimate_fmax`` run nextpnr for Fmax.
"""

from boards.catalogue import BOARDS, DEVICES, Board, Device, UnknownBoardError, get, names

__all__ = ["BOARDS", "DEVICES", "Board", "Device", "UnknownBoardError", "get", "names"]
