import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory):
    """A synthesis cache shared by the tests of one run (and its xdist workers)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache = root / "hwgen-synth-cache"
    cache.mkdir(exist_ok=True)
    old = os.environ.get("HWGEN_CACHE")
    os.environ["HWGEN_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("HWGEN_CACHE", None)
    else:
        os.environ["HWGEN_CACHE"] = old


@pytest.fixture(scope="session")
def design_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("designs")
