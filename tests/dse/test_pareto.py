
import numpy as np
import pytest

from dse.pareto import collapse, pareto_mask, varying


def brute(values, directions):
    sign = [1 if d == "minimize" else -1 for d in directions]
    out = []
    for i, a in enumerate(values):
        dominated = False
        for j, b in enumerate(values):
            if i == j:
                continue
            no_worse = all(sb * s <= sa * s for sa, sb, s in zip(a, b, sign, strict=True))
            better = any(sb * s < sa * s for sa, sb, s in zip(a, b, sign, strict=True))
            dominated |= no_worse and better
        out.append(not dominated)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_pareto_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    vals = rng.integers(0, 6, size=(300, 3)).astype(float)  # many ties
    dirs = ["maximize", "minimize", "maximize"]
    assert pareto_mask(vals, dirs).tolist() == brute(vals.tolist(), dirs)


def test_pareto_two_objectives_closed_form():
    # points on a staircase: all non-dominated; plus dominated interior points
    front = [(i, i) for i in range(5)]  # maximize x, minimize y
    inner = [(i, i + 1) for i in range(5)]
    m = pareto_mask(front + inner, ["maximize", "minimize"])
    assert m.tolist() == [True] * 5 + [False] * 5


def test_pareto_bad_input():
    with pytest.raises(ValueError, match="directions"):
        pareto_mask([[1.0]], ["up"])
    with pytest.raises(ValueError, match="shape"):
        pareto_mask([[1.0, 2.0]], ["maximize"])
    with pytest.raises(ValueError, match="NaN"):
        pareto_mask([[float("nan")]], ["maximize"])


def test_chunking_consistent():
    rng = np.random.default_rng(9)
    vals = rng.random((1500, 2))
    m = pareto_mask(vals, ["minimize", "minimize"])
    order = np.argsort(vals[:, 0])
    best, exp = np.inf, np.zeros(len(vals), bool)
    for i in order:  # sweep: non-dominated iff y below every y with smaller x
        if vals[i, 1] < best:
            exp[i], best = True, vals[i, 1]
    assert (m == exp).all()


def test_collapse_groups_equal_vectors():
    rows = [{"index": i, "t": t, "l": lut, "a": a}
            for i, (t, lut, a) in enumerate([(1, 2, 4), (1, 2, 5), (3, 4, 4), (1, 2, 6)])]
    groups = collapse(rows, ["t", "l"], prefer=lambda r: -r["index"])
    assert [(g[0]["index"], [m["index"] for m in g[1]]) for g in groups] == [
        (3, [0, 1, 3]), (2, [2])]
    assert varying(groups[0][1], ["t", "a"]) == {"a": [4, 5, 6]}
    assert varying(groups[1][1], ["t", "a"]) == {}
