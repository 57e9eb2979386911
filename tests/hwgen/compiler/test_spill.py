"""The spill compiler (``hwgen.compiler.spill``) against the cost model (``mapping.bands``):
for random compute layers, scratchpads and memories, a one-layer spilled program's
predicted cycles and external words are the cost model's plus the output's load back
(closed form: one XFER of the output from element 0); its XFERs cover every output element
exactly once (counted from the decoded words, LOOPs written out)."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.compiler.isa import OP_BITS, OP_LOOP, OP_XFER, decode, loop_layout, xfer_layout
from hwgen.compiler.program import ComputeLayer, compile_program
from mapping import timing
from mapping.arch import ArchSpec
from mapping.bands import spilled_cost
from mapping.loopnest import LoopNest
from mapping.mapper import search_layer
from mapping.schedule import MappingError


def _case(seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.choice([1, 2, 4, 8])), int(rng.choice([2, 4, 8]))
    if rng.random() < 0.3:
        nest = LoopNest.gemm(int(rng.integers(2, 40)), int(rng.integers(1, 20)),
                             int(rng.integers(1, 30)))
    else:
        k, st, pd = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
        h = int(rng.integers(k, 14))
        nest = LoopNest.conv(1, int(rng.integers(1, 12)), int(rng.integers(1, 9)), h,
                             int(rng.integers(k, 10)), k, k, stride=st, padding=pd)
    arch = ArchSpec(rows=rows, cols=cols, act_words=4096, w_words=rows * cols * 32,
                    acc_words=cols * 64, ext_word_bits=int(rng.choice([16, 32, 64])),
                    ext_latency=int(rng.integers(0, 9)),
                    ext_bandwidth=float(rng.choice([1.0, 0.5, 0.25])),
                    weight_store=str(rng.choice(["rom", "external"])))
    need = nest.gemm_m * nest.gemm_n + (nest.N * nest.C * nest.H * nest.W
                                        if nest.kind == "conv" else nest.gemm_m * nest.gemm_k)
    # smaller than the input and output together (it spills), at least the output (streamed
    # out from the scratchpad)
    arch = arch.replace(act_words=max(8, nest.gemm_m * nest.gemm_n,
                                      int(need * rng.uniform(0.2, 0.9))))
    return arch, nest, rng


@pytest.mark.parametrize("seed", range(30))
def test_one_spilled_layer_costs_what_the_cost_model_says(seed):
    arch, nest, rng = _case(seed)
    try:
        lm = search_layer(nest, arch, "latency", layer="c").mapping
    except MappingError:  # not even one output row fits: the error names the minimum
        pytest.skip("one output row does not fit")
    n = nest.gemm_n
    layer = ComputeLayer(lm, rng.integers(-8, 8, size=(nest.gemm_k, n)), np.zeros(n, int),
                         np.full(n, 1 << 14), np.full(n, 10))
    prog = compile_program(arch, [layer])
    assert prog.spilled
    cost, li = spilled_cost(lm, arch), prog.layers[0]
    out_words = timing.xfer_words(0, prog.output_count, arch)
    assert li.predicted_cycles == cost.cycles + timing.xfer_cycles(out_words, False, arch)
    assert (li.ext_read_words, li.ext_write_words) == (cost.act_read_words + out_words,
                                                       cost.act_write_words)
    # the stores, LOOPs written out, write every output element once
    mask = (1 << OP_BITS) - 1
    words, i, written = prog.instructions, 0, []
    xl, ll = xfer_layout(arch), loop_layout(arch)
    out_base = prog.ext_tensors[layer.name][0]
    apw = timing.act_per_word(arch)
    while i < len(words):
        body, reps = [words[i]], [{"d_a": 0, "d_b": 0}]
        if words[i] & mask == OP_LOOP:
            f = decode(ll, words[i])
            body, reps = words[i + 1:i + 1 + f["body"]], [
                {"d_a": k * f["d_a"], "d_b": k * f["d_b"]} for k in range(f["count"])]
            i += f["body"]
        i += 1
        for rep in reps:
            for w in body:
                if w & mask != OP_XFER:
                    continue
                x = decode(xl, w)
                if not x["store"]:
                    continue
                ext = x["ext"] + (0, rep["d_a"], rep["d_b"])[x["dsel"]]
                for r in range(x["runs"]):
                    first = (ext + r * x["wstride"] - out_base) * apw + x["off"]
                    written += range(first, first + x["count"])
    assert sorted(written) == list(range(nest.gemm_m * n))
