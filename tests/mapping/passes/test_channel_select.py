"""Channel slices and shuffles: chunk / split / narrow / ``x[:, a:b]`` and the
view-transpose-view channel shuffle trace to ``select`` nodes (torch.fx and torch.export),
whose float64 run equals the torch module; the shuffle's permutation equals numpy's closed
form; spatial reorders and slices along other dims are not folded / are one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from trace_check import Fn, check, ops

from mapping.graph import UnsupportedOpError, trace
from mapping.passes import run_float_graph
from mapping.passes.channel_select import channel_permutation
from mapping.passes.trace_layers import chunk_sizes, split_sizes
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[3]
X = torch.randn(2, 8, 5, 4)


def _shuffle_unit():
    return import_file(ROOT / "examples" / "shuffle_unit.py")


def _selects(g):
    return [n.attrs["index"] for n in g.nodes() if n.op == "select"]


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_is_one_select(groups):
    g = check(Fn(lambda s, x: _shuffle_unit().shuffle(x, groups)), X)
    assert ops(g) == ["input", "select", "output"]
    want = np.arange(8).reshape(groups, 8 // groups).T.ravel()  # out k <- in want[k]
    assert _selects(g) == [tuple(want)]


@pytest.mark.parametrize("f,want", [
    (lambda s, x: x.chunk(3, dim=1)[2] * 2.0, [(6, 7)]),
    (lambda s, x: torch.chunk(x, 2, 1)[0] + torch.chunk(x, 2, 1)[1], [(0, 1, 2, 3), (4, 5, 6, 7)]),
    (lambda s, x: x.split([3, 5], dim=1)[1], [(3, 4, 5, 6, 7)]),
    (lambda s, x: torch.split(x, 3, 1)[2], [(6, 7)]),
    (lambda s, x: x[:, 2:7:2], [(2, 4, 6)]),
    (lambda s, x: x.narrow(1, 1, 2), [(1, 2)]),
    (lambda s, x: x[:, :], []),  # every channel: no node
])
def test_channel_slices(f, want):
    assert sorted(_selects(check(Fn(f), X))) == want


def test_chunk_and_split_sizes_are_torchs():
    t = torch.zeros(1, 11)
    for chunks in range(1, 13):
        assert chunk_sizes(11, chunks) == [p.shape[1] for p in t.chunk(chunks, 1)]
    for size in (1, 3, 4, 11, 20):
        assert split_sizes(11, size) == [p.shape[1] for p in t.split(size, 1)]


def test_shuffle_unit_through_torch_export():
    torch.manual_seed(0)
    m = _shuffle_unit().ShuffleUnit().eval()
    x = torch.randn(3, 2, 6, 6)
    fx_graph = trace(m, x[:1])
    ex_graph = trace(torch.export.export(m, (x[:1],)))
    assert _selects(fx_graph) == _selects(ex_graph) != []
    assert "transpose" not in ops(ex_graph) and "reshape" not in ops(ex_graph)
    with torch.no_grad():
        want = m.double()(x.double()).numpy()
    for g in (fx_graph, ex_graph):
        np.testing.assert_allclose(run_float_graph(g, x), want, rtol=1e-9, atol=1e-9)


def test_spatial_reorders_are_not_channel_selects():
    # (N, C, H, W) -> (N, C, W, H) -> (N, C, H, W) keeps the shape but moves pixels
    g = check(Fn(lambda s, x: x.transpose(2, 3).reshape(x.shape)), torch.randn(2, 3, 4, 4))
    assert "select" not in ops(g)
    from mapping.graph import Node

    t = Node("t", "transpose", ["x"], [(1, 3, 4, 4)], (1, 3, 4, 4), {"perm": (0, 1, 3, 2)})
    assert channel_permutation([t], (1, 3, 4, 4)) is None


def test_slicing_other_dims_is_one_line_error():
    with pytest.raises(UnsupportedOpError) as exc:
        trace(Fn(lambda s, x: x.chunk(2, dim=2)[0]), X)
    msg = str(exc.value)
    assert "slicing along dim 2" in msg and "\n" not in msg and "supported:" in msg
