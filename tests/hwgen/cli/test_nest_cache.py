"""``hwgen.cli.nest_cache``: the traced nests ``hwgen map`` reuses, and when it must not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hwgen.cli import main, nest_cache
from mapping.loopnest import LoopNest

NESTS = [("conv1", LoopNest.conv(1, 8, 3, 10, 10, 3, 3, padding=1, in_bits=6)),
         ("fc", LoopNest.gemm(1, 10, 72))]


def test_round_trip_and_misses(tmp_path):
    key = nest_cache.cache_key("resnet18", None, 8)
    assert key and nest_cache.load(key) is None
    nest_cache.store(key, NESTS)
    assert nest_cache.load(key) == NESTS
    path = nest_cache.cache_dir() / f"{key}.json"
    path.write_text("{not json")  # a damaged entry is a miss, not an error
    assert nest_cache.load(key) is None
    path.write_text(json.dumps({"format": nest_cache.FORMAT + 1, "nests": []}))
    assert nest_cache.load(key) is None


def test_key_covers_what_the_nests_depend_on(tmp_path):
    k = nest_cache.cache_key
    assert k("resnet18", None, 8) == k("resnet18", None, 8)
    assert len({k("resnet18", None, 8), k("resnet18", None, 6), k("resnet-block", None, 8),
                k("resnet18", "1,3,64,64", 8)}) == 4
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"one")
    first = k(str(onnx), None, 8)
    onnx.write_bytes(b"two")
    assert first and k(str(onnx), None, 8) != first
    assert k(str(tmp_path / "missing.onnx"), None, 8) is None
    assert k("model.py:Net", None, 8) is None and k("model.py", None, 8) is None


def test_second_map_reads_the_nests_without_torch(tmp_path, capsys):
    """The second ``hwgen map`` of a zoo model prints the same table from the cached nests
    and does not import torch (a fresh process)."""
    assert main(["map", "cnn-digits", "--arch", "edge-8x8"]) == 0
    first = capsys.readouterr().out
    code = ("import sys; from hwgen.cli import main; "
            "rc = main(['map', 'cnn-digits', '--arch', 'edge-8x8']); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ), check=True)
    assert r.stdout.splitlines()[-1] == "TORCH False"
    assert r.stdout.splitlines()[:-1] == first.splitlines()
