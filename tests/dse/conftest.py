import pytest

from dse.space import Param, Space

SMALL = {
    "base": {"acc_bits": 32, "ext_word_bits": 64, "act_words": 4096, "w_words": 4096,
             "acc_words": 1024},
    "choices": {"rows": [2, 4, 8], "cols": [2, 4, 8], "dataflow": ["ws", "os"],
                "double_buffer": [True, False], "act_banks": [1, 2], "bits": [8],
                "objective": ["latency"]},
}


@pytest.fixture
def small_space() -> Space:
    return Space.from_dict(SMALL)


@pytest.fixture
def small_toml(tmp_path):
    import tomli_w

    path = tmp_path / "space.toml"
    path.write_text(tomli_w.dumps(SMALL))
    return path


def tiny_space() -> Space:
    return Space((Param("rows", (2, 4)), Param("cols", (2, 4))), {"w_words": 4096})
