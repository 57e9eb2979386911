"""benchmarks/act_banking.py: its vectorised im2col addresses equal LoopNest.im2col_index's
coordinates laid out NHWC, and its conflict test on hand-made cycles."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import act_banking  # noqa: E402

from mapping.loopnest import LoopNest  # noqa: E402


def test_addresses_follow_im2col_index():
    rng = np.random.default_rng(3)
    for nest in (LoopNest.conv(2, 5, 3, 7, 6, 3, 2, stride=(2, 1), padding=(1, 0),
                               dilation=(1, 2)), LoopNest.gemm(4, 3, 9)):
        m = rng.integers(0, nest.gemm_m, size=200)
        k = rng.integers(0, nest.gemm_k, size=200)
        got = act_banking.addresses(nest, m, k)
        for mi, ki, a in zip(m, k, got, strict=True):
            at = nest.im2col_index(int(mi), int(ki))
            if nest.kind == "gemm":
                want = mi * nest.gemm_k + ki
            elif at is None:
                want = -1
            else:
                n, c, h, w = at
                want = ((n * nest.H + h) * nest.W + w) * nest.C + c
            assert a == want


def test_conflicts_by_hand():
    cycles = np.array([[0, 1, 2, 3], [0, 4, 1, 2], [0, -1, -1, 4], [5, -1, 9, -1]])
    # banks mod 4: (0,1,2,3) ok; (0,0,1,2) clash; (0,-,-,0) clash; (1,-,1,-) clash
    assert act_banking.conflicts(cycles, 4).tolist() == [False, True, True, True]
    assert act_banking.conflicts(cycles, 8).tolist() == [False, False, False, False]
