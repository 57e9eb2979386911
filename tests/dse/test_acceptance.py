"""The issue's acceptance run (slow: about 10 minutes on 2 cores)."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_full_dse_run(tmp_path):
    run = tmp_path / "run"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hwgen", "dse", "cnn-digits", "--board",
                        "ulx3s-85f", "--jobs", "2", "-o", str(run)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    with open(run / "points.csv") as fh:
        assert len(list(csv.DictReader(fh))) >= 10_000
    verified = json.loads((run / "verified.json").read_text())
    assert len(verified) >= 3
    for v in verified.values():
        assert "error" not in v, v.get("error")
        assert v["l2"]["bit_exact"] and v["l1"]["lut"] > 0
    report = (run / "report.md").read_text()
    assert "cycles L0 | cycles L2" in report and "LUT L1" in report
    assert seconds <= 600, f"took {seconds:.0f} s"
