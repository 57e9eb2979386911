"""Verilog emission: files, manifest contents, byte-identical output for identical input."""

from __future__ import annotations

import json

import numpy as np

from hwgen.emit import TOP_MODULE, emit
from hwgen.program import ComputeLayer, compile_program
from hwgen.top import Accelerator
from mapping import timing
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping

ARCH = ArchSpec(rows=2, cols=2, act_words=256, w_words=64, acc_words=64, ext_word_bits=16)


def _accel(arch=ARCH, seed=0):
    rng = np.random.default_rng(seed)
    nest = LoopNest.gemm(4, 3, 5)
    lm = LayerMapping("fc1", nest, arch.dataflow, 2, 3, 5)
    layer = ComputeLayer(lm, rng.integers(-128, 128, (5, 3)), rng.integers(-50, 50, 3),
                         np.full(3, 1 << 14), np.full(3, 9))
    return Accelerator(arch, compile_program(arch, [layer])), lm


def test_emit_files_and_manifest(tmp_path):
    acc, lm = _accel()
    man = emit(acc, tmp_path)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == man
    for key in ("hwgen_version", "top_module", "verilog", "arch", "program", "layers",
                "predicted_cycles_total"):
        assert key in man
    assert man["top_module"] == TOP_MODULE
    assert ArchSpec.from_dict(man["arch"]) == ARCH
    pred = timing.layer_cycles(lm, ARCH).cycles
    assert man["layers"] == [{"name": "fc1", "kind": "gemm", "predicted_cycles": pred}]
    assert man["predicted_cycles_total"] == pred
    text = (tmp_path / man["verilog"]).read_text()
    assert f"module {TOP_MODULE}(" in text.replace(" (", "(")
    words = (tmp_path / "weights.hex").read_text().split()
    assert [int(w, 16) for w in words] == acc.weights


def test_emit_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    emit(_accel()[0], a)
    emit(_accel()[0], b)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n


def test_external_store_has_port(tmp_path):
    acc, _ = _accel(ARCH.replace(weight_store="external"))
    man = emit(acc, tmp_path)
    assert "ext__req__valid" in man["ports"]["external_memory"]
    assert "ext__req__valid" in (tmp_path / man["verilog"]).read_text()


def _initialised(text: str) -> dict[str, list[int]]:
    """Memory name -> words of its ``initial`` block (parsed independently of emit)."""
    import re

    out: dict[str, list[int]] = {}
    for block in re.findall(r"initial begin\n(.*?)\n  end", text, re.S):
        for name, _i, val in re.findall(r"\\?(\w+) ?\[(\d+)\] = \d+'s?([bdh]\w+);", block):
            base = {"b": 2, "d": 10, "h": 16}[val[0]]
            out.setdefault(name, []).append(int(val[1:], base))
    return out


def test_scratchpads_have_no_power_up_contents_roms_keep_theirs(tmp_path):
    from hwgen.emit import drop_scratch_zero_init

    acc, _ = _accel()
    man = emit(acc, tmp_path)
    text = (tmp_path / man["verilog"]).read_text()
    inits = _initialised(text)
    assert not [n for n in inits if n.startswith(("act_bank", "w_bank", "acc_bank"))]
    assert "act_bank0" in text and "w_bank0" in text  # the memories are still there
    # every baked ROM/table keeps its contents: the program ROM holds the program
    prog = [words for n, words in inits.items() if len(words) == len(acc.program.instructions)
            and sorted(words) == sorted(acc.program.instructions)]
    assert prog, sorted(inits)
    # an all-zero table that is not a scratchpad keeps its initial block
    zero_tab = "  initial begin\n    tab_bank0[0] = 8'h00;\n    tab_bank0[1] = 8'h00;\n  end\n"
    zero_act = zero_tab.replace("tab_bank0", "act_bank1_copy3")
    assert drop_scratch_zero_init(zero_tab + zero_act) == zero_tab
    nonzero = zero_act.replace("[1] = 8'h00", "[1] = 8'h05")
    assert drop_scratch_zero_init(nonzero) == nonzero
