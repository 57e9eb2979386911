"""lower: loop nests built from shapes, checked against hand-derived dimensions."""

from __future__ import annotations

import models
from mapping.graph import trace
from mapping.loopnest import LoopNest
from mapping.passes import fold_batchnorm, lower, prepare_entry


def test_lower_mlp_quantised_bits():
    g = prepare_entry(models.get("mlp-digits"), bits=4, w_bits=3)
    assert [n.name for n in g.compute_nodes()] == ["fc1", "fc2", "fc3"]
    assert g.node("fc1").nest == LoopNest.gemm(1, 64, 64, in_bits=4, w_bits=3, out_bits=4)
    assert g.node("fc3").nest.gemm_k == 32 and g.node("fc3").nest.gemm_n == 10


def test_lower_cnn_conv_nest():
    g = prepare_entry(models.get("cnn-digits"))
    n = g.node("conv2").nest
    assert (n.kind, n.N, n.K, n.C, n.H, n.W, n.P, n.Q, n.R, n.S, n.pad_h, n.pad_w) == (
        "conv", 1, 16, 8, 8, 8, 8, 8, 3, 3, 1, 1)
    assert n.macs == g.node("conv2").macs == 8 * 8 * 16 * 8 * 9
    assert g.node("fc").nest.gemm_k == 256


def test_lower_transformer_heads_are_batched_gemms():
    g = prepare_entry(models.get("tiny-transformer"))
    mm = g.node("matmul")
    assert mm.attrs["batch"] == 2
    assert (mm.nest.gemm_m, mm.nest.gemm_n, mm.nest.gemm_k) == (16, 16, 16)
    assert mm.nest.macs * mm.attrs["batch"] == mm.macs
    q = g.node("q_proj").nest
    assert (q.gemm_m, q.gemm_n, q.gemm_k) == (16, 32, 32)
    assert len(g.compute_nodes()) == 8


def test_lower_unquantised_defaults_and_no_mutation():
    entry = models.get("resnet18")
    g = fold_batchnorm(trace(entry.build(0).eval(), entry.example_input()))
    low = lower(g)
    assert g.compute_nodes() == []
    c1 = low.node("conv1").nest
    assert (c1.P, c1.Q, c1.stride_h, c1.stride_w, c1.pad_h, c1.pad_w, c1.in_bits) == (
        112, 112, 2, 2, 3, 3, 8)
    assert sum(n.nest.macs for n in low.compute_nodes()) == low.total_macs
