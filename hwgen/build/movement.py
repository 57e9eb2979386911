"""Data movement on the accelerator: ``concat``, ``select`` and pooling whose windows are
not all ``kernel``-sized, as program layers (``hwgen.build.flow.program_layers`` calls these).

- ``concat`` along channels (dim 1 of NCHW, or of ``(N, F)``): one
  :class:`~hwgen.compiler.copy_layer.CopyLayer` per input into its channel slice of
  the wider NHWC tensor. (Producers cannot write straight into the slice: a compute
  layer's output row stride is its ``gemm_n``, which also sizes its tiles.) The inputs
  share one scale (``mapping.passes.quant_concat``), so the copy is exact.
- ``select`` of channels (a chunk, a channel shuffle, a group of a grouped conv): one
  copy per run of consecutive source channels (:func:`channel_runs`): a slice is one
  copy, a shuffle of ``C`` channels in ``g`` groups ``C`` copies of one channel each.
- adaptive average pooling to a size the input is not a multiple of: exact when the
  input is 1x1 (every window is that one pixel: a broadcast, one copy per image with
  source pixel stride 0); other sizes have windows of several sizes (a divisor per
  window) and are refused naming the node and the sizes.
- average pooling with ``ceil_mode``: PyTorch divides the clipped last windows by
  fewer taps, so no per-layer constant divisor exists; refused naming the node.
  (Max pooling with ``ceil_mode`` is a ``PoolLayer`` with ``ceil_mode=True``.)
"""

from __future__ import annotations

import numpy as np

from hwgen.compiler.copy_layer import CopyLayer
from mapping import quant as Q
from mapping.graph import Node
from mapping.windows import avg_windows, divisors, is_adaptive


class MovementError(ValueError):
    """A concat or pooling node the accelerator cannot run exactly (one line, names it)."""


def layer_count(node: Node) -> int:
    """Hardware layers a node becomes (copies of a concat / select / broadcast, else 1)."""
    if node.op == "concat":
        return len(node.inputs)
    if node.op == "select":
        return len(channel_runs(node.attrs["index"]))
    if node.op == "avgpool2d" and is_adaptive(node.attrs):
        return node.in_shapes[0][0]
    return 1


def note(node: Node) -> str:
    """What the report says about a concat / broadcast node on the accelerator."""
    if node.op == "concat":
        return (f"concatenation: {len(node.inputs)} strided copies into channel slices "
                "(one scale for all inputs, exact)")
    if node.op == "select":
        runs = len(channel_runs(node.attrs["index"]))
        return (f"channel selection: {len(node.attrs['index'])} of "
                f"{node.in_shapes[0][1]} channels in {runs} strided cop"
                + ("y" if runs == 1 else "ies"))
    return "adaptive average pooling of a 1x1 map: broadcast copy (source pixel stride 0)"


def concat_layers(node: Node, srcs: list[str]) -> list[CopyLayer]:
    """One CopyLayer per input of a channel concatenation, in input order."""
    out = tuple(node.out_shape)
    if node.attrs.get("dim") != 1 or len(out) not in (2, 4):
        raise MovementError(f"node {node.name!r}: concat along dim {node.attrs.get('dim')} of "
                            f"a {len(out)}-D tensor; the accelerator concatenates channels "
                            "(dim 1 of (N, C, H, W) or (N, F)) only")
    pixels = int(np.prod(out)) // out[1]
    hwc = (out[2], out[3], out[1]) if len(out) == 4 else None
    layers, offset = [], 0
    for k, (src, shape) in enumerate(zip(srcs, node.in_shapes, strict=True)):
        c = int(shape[1])
        layers.append(CopyLayer(f"{node.name}.copy{k}", pixels=pixels, channels=c,
                                src_stride=c, dst_stride=out[1], dst_offset=offset,
                                src_elements=pixels * c, dst_elements=int(np.prod(out)),
                                out_bits=int(node.quant.bits), src=src, dst=node.name,
                                dst_hwc=hwc))
        offset += c
    return layers


def channel_runs(index) -> list[tuple[int, int, int]]:
    """``(dst, src, length)`` runs of a channel selection: maximal stretches of ``index``
    whose source channels are consecutive."""
    runs: list[tuple[int, int, int]] = []
    for k, c in enumerate(int(i) for i in index):
        if runs and runs[-1][1] + runs[-1][2] == c:
            d, s, n = runs[-1]
            runs[-1] = (d, s, n + 1)
        else:
            runs.append((k, c, 1))
    return runs


def select_layers(node: Node, src: str) -> list[CopyLayer]:
    """One CopyLayer per run of a channel selection (:func:`channel_runs`)."""
    shape, out = tuple(node.in_shapes[0]), tuple(node.out_shape)
    if len(out) not in (2, 4):
        raise MovementError(f"node {node.name!r}: channel selection of a {len(out)}-D tensor; "
                            "the accelerator selects channels of (N, C, H, W) or (N, F)")
    pixels = int(np.prod(out)) // out[1]
    hwc = (out[2], out[3], out[1]) if len(out) == 4 else None
    return [CopyLayer(f"{node.name}.copy{k}", pixels=pixels, channels=n, src_stride=shape[1],
                      dst_stride=out[1], dst_offset=d, src_elements=pixels * shape[1],
                      dst_elements=int(np.prod(out)), out_bits=int(node.quant.bits), src=src,
                      dst=node.name, dst_hwc=hwc, src_offset=s)
            for k, (d, s, n) in enumerate(channel_runs(node.attrs["index"]))]


def varying_pool(node: Node) -> bool:
    """True for an avgpool2d whose windows differ (adaptive non-divisor, ceil_mode)."""
    _, _, h, w = node.in_shapes[0]
    return node.op == "avgpool2d" and avg_windows(node.attrs, h, w) is not None


def varying_pool_layers(node: Node, src: str) -> list[CopyLayer]:
    """The broadcast copies of an adaptive average pool of a 1x1 map; MovementError
    naming the node and the sizes for every other pooling with varying windows."""
    n, c, h, w = node.in_shapes[0]
    _, _, oh, ow = node.out_shape
    div = divisors(*avg_windows(node.attrs, h, w))
    if not is_adaptive(node.attrs):
        raise MovementError(
            f"node {node.name!r}: average pooling with ceil_mode ({h}x{w} -> {oh}x{ow}): "
            f"PyTorch divides the clipped last windows by {sorted(set(div.ravel().tolist()))} "
            "taps; the accelerator has one divisor per layer (use ceil_mode=False or max)")
    q = node.quant
    lo, hi = Q.qrange(q.bits)
    v = np.arange(lo, hi + 1)
    if (h, w) != (1, 1) or (div != 1).any() or not np.array_equal(
            Q.requantize(v, q.mult, q.shift, q.bits, q.relu), Q.clamp(v, q.bits, q.relu)):
        raise MovementError(
            f"node {node.name!r}: adaptive average pooling {h}x{w} -> {oh}x{ow} has windows "
            f"of {sorted(set(div.ravel().tolist()))} pixels (a divisor per window); the "
            "accelerator runs it when the output is a multiple of the input (kernel = "
            "stride) or the input is 1x1 (a broadcast)")
    return [CopyLayer(f"{node.name}.copy{i}", pixels=oh * ow, channels=c, src_stride=0,
                      dst_stride=c, dst_offset=i * oh * ow * c, src_elements=n * c,
                      dst_elements=n * oh * ow * c, out_bits=int(q.bits), src=src,
                      dst=node.name, dst_hwc=(oh, ow, c), src_offset=i * c)
            for i in range(n)]
