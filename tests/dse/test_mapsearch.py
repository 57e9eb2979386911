"""dse.mapsearch against the mapper it short-cuts: mapping.mapper.search_layer chooses the
same mapping (tiles, order, cycles, accesses) for every objective, and fails the same way."""

import random

import numpy as np
import pytest

from dse.mapsearch import _prune, survivors
from dse.model import model_layers, nests_for_bits
from dse.space import default_space
from mapping.energy import ACCESS_KEYS, energy_table
from mapping.mapper import search_layer
from mapping.schedule import MappingError


@pytest.mark.parametrize("seed", [0, 1])
def test_same_choice_as_search_layer(seed):
    sp = default_space()
    layers = model_layers("cnn-digits")
    rng = random.Random(seed)
    checked = failed = 0
    for _ in range(30):
        p = sp.point(rng.randrange(sp.size))
        arch, _ = sp.arch_or_error(p)
        if arch is None:
            continue
        for c, nest in zip(layers.compute, nests_for_bits(layers, sp.model_bits(p), {}),
                           strict=True):
            try:
                s = survivors(nest, arch, c.name)
            except MappingError as exc:
                with pytest.raises(MappingError) as ref:
                    search_layer(nest, arch, "latency", c.name)
                assert str(exc) == str(ref.value)
                failed += 1
                continue
            for obj in ("latency", "energy", "edp"):
                ref = search_layer(nest, arch, obj, c.name)
                cyc, acc, tiles, order = s.row(s.best(obj, energy_table(nest, arch), nest.macs))
                lm = ref.mapping
                assert s.valid == ref.valid  # the same grid, priced by the same code
                assert (tiles, order) == ((lm.tile_m, lm.tile_n, lm.tile_k), "".join(lm.order))
                assert cyc == ref.cost.cycles
                assert acc == tuple(ref.cost.accesses[k] for k in ACCESS_KEYS)
                checked += 1
    assert checked >= 60


def brute_prune(values):
    keep = []
    for i, a in enumerate(values):
        if not any(all(b <= a) for b in values[:i]):  # an earlier row no worse everywhere
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(4))
def test_prune_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 5, size=(200, 4))  # many ties and equal rows
    v[:, 2] = 7  # a constant column
    assert _prune(v).tolist() == brute_prune(v)
