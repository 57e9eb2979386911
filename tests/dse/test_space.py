import itertools

import pytest

from dse.space import Param, Space, SpaceError, default_space
from mapping.arch import ArchSpec


def test_grid_points_follow_itertools_product(small_space):
    names = small_space.names
    expected = [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*(p.choices for p in small_space.params))]
    assert small_space.size == len(expected) == 3 * 3 * 2 * 2 * 2
    assert [small_space.point(i) for i in range(small_space.size)] == expected


def test_toml_round_trip(small_space, small_toml):
    assert Space.from_toml(small_toml) == small_space
    assert Space.from_dict(small_space.to_dict()).digest() == small_space.digest()


def test_arch_of_point(small_space):
    p = small_space.point(5)
    a = small_space.arch(p)
    assert isinstance(a, ArchSpec)
    assert (a.rows, a.cols, a.dataflow, a.act_banks) == (p["rows"], p["cols"], p["dataflow"],
                                                          p["act_banks"])
    assert a.in_bits == a.w_bits == 8 and a.acc_words == 1024


def test_per_layer_bits_set_hardware_width():
    sp = default_space(["conv1", "conv2", "fc"], per_layer_bits=True)
    sp = Space(sp.params, {**sp.base, "in_bits": 4, "w_bits": 4})  # model input: 4 bits
    p = {**sp.point(0), "bits.conv1": 4, "bits.conv2": 6, "bits.fc": 4}
    assert sp.layer_bits(p) == {"conv1": 4, "conv2": 6, "fc": 4}
    assert sp.quant_key(p) == (4, (("conv1", 4), ("conv2", 6), ("fc", 4)))
    assert sp.arch(p).w_bits == sp.arch(p).in_bits == 6  # the widest layer


def test_default_space_size():
    assert default_space().size == 259_200


def test_invalid_combination_is_reported(small_space):
    sp = Space((Param("rows", (16,)), Param("w_words", (64,))), {})
    arch, why = sp.arch_or_error(sp.point(0))
    assert arch is None and "w_words" in why


@pytest.mark.parametrize("bad, match", [
    ({"choices": {"rowz": [1]}}, "unknown parameter 'rowz'"),
    ({"choices": {"rows": []}}, "no choices"),
    ({"choices": {"rows": [1, 1]}}, "repeated"),
    ({"choices": {"objective": ["speed"]}}, "objective choices"),
    ({"choices": {"bits": [1]}}, "from 2 to 16"),
    ({"choices": {"rows": [2]}, "base": {"rows": 4}}, "both fixed"),
    ({"choices": {"rows": [2]}, "extra": {}}, "unknown space section"),
    ({"base": {}}, "needs a \\[choices\\] table"),
])
def test_bad_spaces(bad, match):
    with pytest.raises(SpaceError, match=match):
        Space.from_dict(bad)


def test_bad_index(small_space):
    with pytest.raises(SpaceError, match="out of range"):
        small_space.point(small_space.size)
