"""The same ``hwgen compile`` in two processes with different hash seeds writes
byte-identical build directories (Verilog, RTLIL, hex files, graph, manifest, report)."""

import os
import subprocess
import sys
from pathlib import Path


def _compile(out: Path, hash_seed: str) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, "-m", "hwgen", "compile", "cnn-digits", "--arch", "tiny-4x4",
                    "--dataflow", "os", "-o", str(out)], env=env, check=True,
                   capture_output=True, timeout=600)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_compile_is_byte_identical_across_processes(tmp_path):
    import shutil

    out = tmp_path / "build"
    a = _compile(out, "1")
    shutil.rmtree(out)
    b = _compile(out, "12345")
    assert sorted(a) == sorted(b)
    assert any(name.endswith(".v") for name in a) and "manifest.json" in a
    differ = [name for name in a if a[name] != b[name]]
    assert differ == []
