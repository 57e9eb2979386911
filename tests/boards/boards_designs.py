"""Small Amaranth designs for the synthesis tests (written to Verilog files)."""

from __future__ import annotations

from pathlib import Path

from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class MacArray(wiring.Component):
    """rows x cols registered signed multiply-accumulators; a row's activation is shared."""

    def __init__(self, rows: int, cols: int, a_bits: int = 8, w_bits: int = 8,
                 acc_bits: int = 32):
        self.rows, self.cols = rows, cols
        self.a_bits, self.w_bits, self.acc_bits = a_bits, w_bits, acc_bits
        super().__init__({
            "a": In(signed(a_bits)).array(rows),
            "w": In(signed(w_bits)).array(rows, cols),
            "clear": In(1),
            "acc": Out(signed(acc_bits)).array(rows, cols),
        })

    def elaborate(self, platform):
        m = Module()
        for r in range(self.rows):
            for c in range(self.cols):
                a = Signal(signed(self.a_bits))
                w = Signal(signed(self.w_bits))
                p = Signal(signed(self.a_bits + self.w_bits))
                acc = Signal(signed(self.acc_bits))
                m.d.sync += [a.eq(self.a[r]), w.eq(self.w[r][c]), p.eq(a * w)]
                with m.If(self.clear):
                    m.d.sync += acc.eq(0)
                with m.Else():
                    m.d.sync += acc.eq(acc + p)
                m.d.comb += self.acc[r][c].eq(acc)
        return m


class SimpleRam(wiring.Component):
    """One write port, one synchronous read port over ``depth`` x ``width`` bits."""

    def __init__(self, depth: int, width: int):
        self.depth, self.width = depth, width
        super().__init__({
            "waddr": In(range(depth)), "wdata": In(width), "we": In(1),
            "raddr": In(range(depth)), "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(self.waddr), w.data.eq(self.wdata), w.en.eq(self.we),
                     r.addr.eq(self.raddr), self.rdata.eq(r.data)]
        return m


def mac_array_verilog(directory: Path, rows: int, cols: int, **widths) -> tuple[Path, str]:
    name = f"mac{rows}x{cols}"
    path = Path(directory) / f"{name}.v"
    if not path.exists():
        path.write_text(verilog.convert(MacArray(rows, cols, **widths), name=name))
    return path, name


def ram_verilog(directory: Path, depth: int, width: int) -> tuple[Path, str]:
    name = f"ram{depth}x{width}"
    path = Path(directory) / f"{name}.v"
    if not path.exists():
        path.write_text(verilog.convert(SimpleRam(depth, width), name=name))
    return path, name


# ---- a real (small) accelerator: hwgen.rtl.accelerator.Accelerator running one GEMM -------------------
GEMM_SEED = 6


def gemm_accelerator(rows: int, cols: int, *, bits: int = 8, acc_bits: int = 24,
                     dataflow: str = "ws", gemm: tuple[int, int, int] = (2, 4, 4)):
    """(ArchSpec, Program) of a ``rows x cols`` accelerator running one seeded GEMM.

    ``gemm`` is (M, N, K) of ``out[M, N] = a[M, K] @ w[K, N]``, tiled by the whole
    problem. Scratchpads are as small as the GEMM allows so that synthesis is fast.
    """
    import numpy as np

    from hwgen.compiler.program import ComputeLayer, compile_program
    from mapping.arch import ArchSpec
    from mapping.loopnest import LoopNest
    from mapping.schedule import LayerMapping

    m, n, k = gemm
    arch = ArchSpec(name=f"gemm-{rows}x{cols}", rows=rows, cols=cols, dataflow=dataflow,
                    in_bits=bits, w_bits=bits, acc_bits=acc_bits, act_words=64,
                    w_words=max(32, 2 * rows * cols), acc_words=max(16, cols),
                    ext_word_bits=max(16, bits), ext_latency=2)
    rng = np.random.default_rng(GEMM_SEED)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    nest = LoopNest.gemm(m, n, k, in_bits=bits, w_bits=bits)
    layer = ComputeLayer(LayerMapping("L0", nest, dataflow, m, n, k),
                         rng.integers(lo, hi + 1, size=(k, n)), rng.integers(-100, 100, n),
                         rng.integers(1 << 14, 1 << 15, n), rng.integers(8, 16, n),
                         out_bits=min(8, bits))
    return arch, compile_program(arch, [layer])


def gemm_accelerator_verilog(directory: Path, rows: int, cols: int, **kw) -> tuple[Path, str]:
    """Emit ``gemm_accelerator(rows, cols, **kw)`` into ``directory/gemm{rows}x{cols}/``."""
    from hwgen.build.emit import TOP_MODULE, emit
    from hwgen.rtl.accelerator import Accelerator

    out = Path(directory) / f"gemm{rows}x{cols}"
    path = out / f"{TOP_MODULE}.v"
    if not path.exists():
        arch, prog = gemm_accelerator(rows, cols, **kw)
        emit(Accelerator(arch, prog), out)
    return path, TOP_MODULE


def zoo_accelerator(directory: Path, model: str, arch_name: str, *, bits: int = 8) -> Path:
    """Compile zoo ``model`` at ``bits``/``bits`` for preset ``arch_name`` into
    ``directory/<model>-<arch>/`` (as ``hwgen compile`` does); the build directory."""
    import models
    from hwgen.build.flow import compile_model
    from mapping.arch import preset
    from mapping.passes import prepare_entry

    arch = preset(arch_name)
    out = Path(directory) / f"{model}-{arch_name}"
    if not (out / "manifest.json").is_file():
        g = prepare_entry(models.get(model), bits=bits, w_bits=bits, acc_bits=arch.acc_bits)
        compile_model(g, arch, out, model=model, settings={"bits": bits})
    return out
