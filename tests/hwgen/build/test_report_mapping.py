"""The report's per-layer mapping table: weight words each layer reads and what bounds it
(compute, or the cycles the array waits for weight bursts), both against the timing
contract's own tile walk (``mapping.timing``), for an external weight store slow enough that
some layers wait and a double-buffered ROM where the bursts hide."""

from __future__ import annotations

import pytest

from hwgen.build.flow import compile_model
from mapping import timing
from mapping.arch import preset


def _row(report: str, layer: str) -> list[str]:
    """The layer's row of the mapping table (10 cells; the placement and program tables
    name it too)."""
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in report.splitlines()
            if ln.startswith(f"| {layer} |")]
    return next(r for r in rows if len(r) == 10)


@pytest.mark.parametrize("changes", [
    dict(weight_store="external", ext_bandwidth=0.25, ext_latency=12, double_buffer=True),
    dict(weight_store="rom", double_buffer=True),
    dict(weight_store="rom", double_buffer=False),
])
def test_words_and_bound_follow_the_contract(mlp_graph, tmp_path, changes):
    arch = preset("tiny-4x4").replace(**changes)
    cm = compile_model(mlp_graph, arch, tmp_path / "b", model="mlp-digits")
    report = (tmp_path / "b" / "report.md").read_text()
    header = "external words read" if arch.weight_store == "external" else "weight ROM words"
    assert f"| {header} | bound by |" in report
    waits = 0
    for lm in cm.schedule.layers:
        t = timing.layer_cycles(lm, arch)
        words = sum(timing.weight_words(tile, arch) for tile in timing.iter_tiles(lm)
                    if tile.load_weights)
        row = _row(report, lm.layer)
        assert row[8] == f"{words:,}"
        want = ("compute" if t.dma_stall == 0 else
                f"weight transfers: array waits {t.dma_stall:,} cycles "
                f"({t.dma_stall / t.cycles:.0%})")
        assert row[9] == want
        waits += t.dma_stall > 0
    if not arch.double_buffer or arch.weight_store == "external":
        assert waits > 0  # single-buffered bursts, or a quarter word per cycle: visible
