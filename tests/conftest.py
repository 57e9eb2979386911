"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture
def verilator():
    """Skips the test when Verilator (the fast engine) is not installed."""
    from sim.tools import SimulatorNotFoundError, find_simulator

    try:
        find_simulator("verilator")
    except SimulatorNotFoundError as exc:
        pytest.skip(str(exc))
