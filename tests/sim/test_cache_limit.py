"""The simulator build cache's size bound (sim.cache_limit): least recently used finished
builds go first until the folder is within the limit; the build just made, builds locked by
another process and unfinished folders stay. Expected survivors are worked out by hand."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from sim import cache_limit
from sim.runner import cached_build

MARKER = "hwgen_build.json"


def _build(root, name, size, used, record_bytes=True):
    d = root / name
    d.mkdir(parents=True)
    (d / "blob").write_bytes(b"x" * size)
    rec = {"build_seconds": 1.0, **({"bytes": size} if record_bytes else {})}
    (d / MARKER).write_text(json.dumps(rec))
    os.utime(d / MARKER, (used, used))
    return d


def test_least_recently_used_go_first(tmp_path, capsys):
    # sizes 400 each (one without the recorded size: measured), last used 1..5
    for i, name in enumerate("abcde"):
        _build(tmp_path, name, 400, 1000 + i, record_bytes=name != "b")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "blob").write_bytes(b"x" * 5000)
    gone = cache_limit.prune(tmp_path, MARKER, keep=tmp_path / "a", limit=1000)
    # 2000 > 1000: a is kept (just built), so b, c, then d go -> e + a = 800
    assert sorted(p.name for p in gone) == ["b", "c", "d"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "a", "e", "unfinished"]
    assert "removed 3 least recently used build(s)" in capsys.readouterr().err


def test_a_locked_build_stays(tmp_path):
    for i, name in enumerate("abc"):
        _build(tmp_path, name, 500, 1000 + i)
    with open(tmp_path / "a.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process is using build a
        gone = cache_limit.prune(tmp_path, MARKER, limit=600)
    # 1500 > 600: a (oldest) is locked, so b and then c go -> 500
    assert [p.name for p in gone] == ["b", "c"] and (tmp_path / "a").is_dir()


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("HWGEN_SIM_CACHE_GB", "2.5")
    assert cache_limit.limit_bytes() == 2_500_000_000
    monkeypatch.setenv("HWGEN_SIM_CACHE_GB", "0")
    assert cache_limit.limit_bytes() == 0
    monkeypatch.delenv("HWGEN_SIM_CACHE_GB")
    assert cache_limit.limit_bytes() == 10_000_000_000
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("HWGEN_SIM_CACHE_GB", bad)
        with pytest.raises(ValueError, match="HWGEN_SIM_CACHE_GB"):
            cache_limit.limit_bytes()


def test_cached_build_records_size_touches_on_hit_and_prunes(tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_SIM_CACHE_GB", str(1500 / 1e9))
    old = _build(tmp_path, "old", 1000, 1000)

    def make(d):
        (d / "exe").write_bytes(b"y" * 700)
        return {}

    new = tmp_path / "new"
    assert cached_build(new, new / "exe", make)[0] is False
    rec = json.loads((new / MARKER).read_text())
    assert rec["bytes"] >= 700
    assert not old.exists()  # 1000 + ~700 > 1500: the older build went
    os.utime(new / MARKER, (5, 5))
    assert cached_build(new, new / "exe", make)[0] is True
    assert (new / MARKER).stat().st_mtime > 5  # a hit is a use
