"""ArchSpec: TOML round trip, presets, and the errors for bad input."""

from __future__ import annotations

import pytest

from mapping.arch import PRESETS, ArchSpec, ArchSpecError, preset, resolve


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_toml_round_trip(tmp_path, name):
    a = preset(name)
    path = tmp_path / f"{name}.toml"
    a.save(path)
    assert ArchSpec.load(path) == a
    assert resolve(str(path)) == a
    assert resolve(name) is PRESETS[name]


def test_round_trip_of_non_defaults(tmp_path):
    a = ArchSpec(rows=3, cols=5, dataflow="os", double_buffer=False, weight_store="external",
                 ext_bandwidth=0.25, ext_latency=40, in_bits=4, w_bits=6, acc_bits=20,
                 w_words=15, name="odd")
    a.save(tmp_path / "a.toml")
    assert ArchSpec.load(tmp_path / "a.toml") == a
    assert a.pes == 15 and a.weights_per_ext_word == 10


@pytest.mark.parametrize("kw, msg", [
    ({"rows": 0}, "ArchSpec.rows = 0 is invalid: must be between 1 and 64"),
    ({"cols": 65}, "ArchSpec.cols = 65 is invalid: must be between 1 and 64"),
    ({"rows": 2.0}, "ArchSpec.rows = 2.0 is invalid: must be an integer"),
    ({"dataflow": "WS"}, "ArchSpec.dataflow = 'WS' is invalid: must be one of ws, os"),
    ({"ext_bandwidth": -1.0}, r"ext_bandwidth = -1.0 is invalid: must be in \(0, 1\]"),
    ({"ext_bandwidth": 0}, r"ext_bandwidth = 0 is invalid"),
    ({"in_bits": 1}, "in_bits = 1 is invalid: must be an integer from 2 to 16"),
    ({"acc_bits": 12}, "acc_bits = 12 is invalid: must be at least in_bits \\+ w_bits = 16"),
    ({"w_words": 100}, "w_words = 100 is invalid: must hold at least one rows x cols weight "
                       "block per buffer half"),
    ({"acc_words": 4}, "acc_words = 4 is invalid: must hold at least one row of cols outputs"),
    ({"act_words": 0}, "act_words = 0 is invalid: must be a positive integer"),
    ({"weight_store": "flash"}, "weight_store = 'flash' is invalid: must be one of rom, external"),
    ({"ext_latency": -1}, "ext_latency = -1 is invalid"),
    ({"ext_word_bits": 4}, "ext_word_bits = 4 is invalid"),
    ({"clock_mhz": 0}, "clock_mhz = 0 is invalid"),
])
def test_bad_fields(kw, msg):
    base = {"rows": 8, "cols": 8}
    with pytest.raises(ArchSpecError, match=msg):
        ArchSpec(**{**base, **kw})


def test_bad_files(tmp_path):
    with pytest.raises(ArchSpecError, match="does not exist"):
        ArchSpec.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = [")
    with pytest.raises(ArchSpecError, match="is not valid TOML"):
        ArchSpec.load(bad)
    bad.write_text("rows = 4\n")
    with pytest.raises(ArchSpecError, match=r"needs an \[arch\] table"):
        ArchSpec.load(bad)
    bad.write_text("[arch]\nrows = 4\nspeed = 9\n")
    with pytest.raises(ArchSpecError, match="unknown ArchSpec field\\(s\\) speed; allowed:"):
        ArchSpec.load(bad)
    with pytest.raises(ArchSpecError, match="unknown architecture preset 'x'; presets: tiny-4x4"):
        resolve("x")
