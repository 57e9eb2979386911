"""Row bands (``mapping.bands``) against brute force: every output row in exactly one band,
each band's input rows from the first to the last row its windows touch, the buffers
within capacity."""

from __future__ import annotations

import numpy as np
import pytest

from mapping.bands import BandError, RowWindow, band_mapping, plan_bands
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


def _touched(win: RowWindow, p0: int, p1: int) -> set[int]:
    """Input rows read by output rows p0..p1-1, by walking every tap (padding excluded)."""
    rows = set()
    for p in range(p0, p1):
        for t in range(win.taps):
            h = p * win.stride - win.pad + t * win.dilation
            if 0 <= h < win.rows_in:
                rows.add(h)
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_bands_cover_the_output_and_load_exactly_the_rows_read(seed):
    rng = np.random.default_rng(seed)
    taps, stride, dil = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    pad = int(rng.integers(0, taps))
    H = int(rng.integers(taps * dil, 40))  # noqa: N806
    P = (H + 2 * pad - dil * (taps - 1) - 1) // stride + 1  # noqa: N806
    if P < 1:
        return
    win = RowWindow(H, P, int(rng.integers(1, 50)), int(rng.integers(1, 50)), taps, stride,
                    dil, pad, extra_row=int(rng.integers(0, 20)))
    apw = int(rng.choice([1, 2, 4, 8]))
    slack = 2 * (apw - 1)
    cap = win.need(1, slack) + int(rng.integers(0, 3 * win.need(1, slack)))
    bands = plan_bands(win, cap, apw, "layer")
    assert [b.p0 for b in bands] == sorted(b.p0 for b in bands) and bands[0].p0 == 0
    assert all(a.p1 == b.p0 for a, b in zip(bands, bands[1:], strict=False))
    assert bands[-1].p1 == P
    heights = [b.p1 - b.p0 for b in bands]
    assert len(set(heights[:-1])) <= 1 and heights[-1] <= heights[0]
    for b in bands:
        touched = _touched(win, b.p0, b.p1)
        # one contiguous burst from the first row read to the last (rows a dilated or
        # strided window skips inside it are loaded too), no padding rows
        assert (b.lo, b.hi) == (min(touched), max(touched) + 1)
        assert (b.hi - b.lo) * win.in_row + (b.p1 - b.p0) * (win.out_row + win.extra_row) \
            + win.buffers * slack <= cap
    if heights[0] < P:  # the tallest band that fits: one more row would not
        assert win.need(heights[0] + 1, slack) > cap


def test_one_row_must_fit():
    win = RowWindow(10, 10, 40, 80, taps=3, pad=1)
    with pytest.raises(BandError, match=r"layer c: .*act_words=100\) cannot hold one output row "
                                        r".*40 per input row x 3 rows, 80 per output row.* at "
                                        r"least 228"):
        plan_bands(win, 100, 8, "c")


def test_band_mapping_keeps_weight_tiles_and_clips_tile_m():
    nest = LoopNest.conv(1, 16, 8, 12, 12, 3, 3, padding=1)
    lm = LayerMapping("c", nest, "ws", 50, 8, 24, ("m", "n", "k"))
    b = band_mapping(lm, 36)
    assert (b.nest.gemm_m, b.nest.gemm_n, b.nest.gemm_k) == (36, 16, 72)
    assert (b.tile_m, b.tile_n, b.tile_k, b.order) == (36, 8, 24, ("m", "n", "k"))
    assert band_mapping(lm, nest.gemm_m) is lm
