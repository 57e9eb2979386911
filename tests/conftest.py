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


@pytest.fixture(autouse=True)
def _private_nest_cache(tmp_path_factory, monkeypatch):
    """Every test maps with its own empty nest cache (``hwgen.cli.nest_cache``): a test of
    ``hwgen map`` traces its model, and nothing lands in the user's ``~/.cache``."""
    monkeypatch.setenv("HWGEN_NEST_CACHE", str(tmp_path_factory.mktemp("nests")))
