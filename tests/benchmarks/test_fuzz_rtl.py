"""The seeded CI slice of the RTL fuzz campaign (benchmarks/fuzz_rtl.py): random layer x
architecture cases in the generated Verilog, bit-exact vs the integer reference and
cycle-exact vs mapping.timing; and the checker itself catches a wrong output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fuzz_rtl  # noqa: E402

from sim.runner import default_cache_dir  # noqa: E402

SLICE = range(100, 106)
REGRESSIONS = (51, 75)  # inputs narrower than 8 bits: the harness did not mask the port
# (since the newer kinds, 51 draws a depthwise conv on 3-bit inputs; still a narrow port)
PER_AXIS = (5032, 5054)  # Conv1d-style 1 x k kernels on height-1 inputs, per-axis geometry
NEW_KINDS = (7027, 7001, 7015)  # a depthwise conv on the input; a conv + lookup-table
# activation; a GEMM whose 2 outputs gate the 13 pixels of its input (tensor multiply)


def test_draw_is_deterministic_and_varied():
    a = [fuzz_rtl.draw(s).description for s in range(20)]
    assert a == [fuzz_rtl.draw(s).description for s in range(20)]
    assert len(set(a)) == 20
    assert any("conv" in d for d in a) and any("gemm" in d for d in a)
    assert any(" os " in d for d in a) and any(" ws " in d for d in a)
    per_axis = [fuzz_rtl.draw(s).description for s in PER_AXIS]
    assert all(" 1x" in d and " s1x2 " in d for d in per_axis), per_axis
    kinds = " | ".join(fuzz_rtl.draw(s).description for s in range(7000, 7030))
    for kind in ("; dw C", "+ dw k", "+ pool max ceil", "+ lut ", "+ mul gate ",
                 "+ mul square"):  # the newer kinds are drawn
        assert kind in kinds, kind


@pytest.mark.parametrize("seed", [*SLICE, *REGRESSIONS, *PER_AXIS, *NEW_KINDS])
def test_fuzz_slice(seed):
    out = fuzz_rtl.run_case(seed, str(default_cache_dir()))  # these few builds are kept
    assert out.ok, f"seed {seed}: {out.description}: {out.error} {out.details}"


def test_the_checker_catches_a_wrong_output(monkeypatch):
    real = fuzz_rtl.reference
    monkeypatch.setattr(fuzz_rtl, "reference", lambda case, x: real(case, x) + 1)
    out = fuzz_rtl.run_case(SLICE[0], str(default_cache_dir()))  # the same Verilog: cached
    assert not out.ok and out.mismatched_samples == 2 and out.cycle_differences == 0


def test_seed_lists():
    assert fuzz_rtl.parse_seeds("3, 10-12,5") == [3, 10, 11, 12, 5]
    assert fuzz_rtl._ranges([0, 1, 2, 5, 7, 8]) == "0..2, 5, 7..8"
    with pytest.raises(ValueError, match="'1-x'"):
        fuzz_rtl.parse_seeds("1-x")
