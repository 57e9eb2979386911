"""``report.md`` of a compiled model: what runs where, per-layer mapping, predicted cycles,
utilisation and on-chip memory.

Every figure is labelled *estimated* (the analytic timing contract,
``mapping.timing`` / ``mapping.cost``) or *measured*; a compile report holds
no measurement (``hwgen sim`` measures). The text is deterministic (no dates).
"""

from __future__ import annotations

from hwgen.build.manifest import MANIFEST_FILE, REPORT_FILE
from hwgen.compiler.program import OP_ELT, EltKind, decode, elt_fields, param_bits, word_bits
from mapping import timing

_CLOCK_NOTE = ("No time or throughput here: the clock target is not a verified clock. "
               "`hwgen synth BUILD --board BOARD --pnr` measures the Fmax (nextpnr) and prints "
               "the inferences/s at it.")


def _table(head: tuple[str, ...], rows: list[tuple], right: set[int] | None = None) -> str:
    right = right or set()
    cells = [tuple(str(c) for c in r) for r in rows]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def _kib(bits: int) -> str:
    return f"{bits / 8 / 1024:,.1f} KiB"


def memory_rows(arch, program=None, weight_words: int | None = None) -> list[tuple]:
    """On-chip memories: (memory, elements, bits, size)."""
    rows = [
        ("activation scratchpad", f"{arch.act_words:,} x {arch.in_bits} b",
         arch.act_words * arch.in_bits),
        ("weight scratchpad", f"{arch.w_words:,} x {arch.w_bits} b" + (
            " (2 halves)" if arch.double_buffer else ""), arch.w_words * arch.w_bits),
        ("accumulator buffer", f"{arch.acc_words:,} x {arch.acc_bits} b",
         arch.acc_words * arch.acc_bits),
    ]
    if program is not None:
        rows.append(("program ROM", f"{len(program.instructions):,} x {word_bits(arch)} b",
                     len(program.instructions) * word_bits(arch)))
        rows.append(("parameter table", f"{len(program.params):,} x {param_bits(arch)} b",
                     len(program.params) * param_bits(arch)))
        if program.luts:
            rows.append(("activation lookup ROM", f"{len(program.luts):,} x {arch.in_bits} b "
                         f"x {arch.rows} lanes", len(program.luts) * arch.in_bits * arch.rows))
        if program.dw_weights:  # hwgen.rtl.depthwise: one row of arch.rows lanes each
            rows.append(("depthwise weight ROM", f"{len(program.dw_weights):,} x {arch.w_bits} "
                         f"b x {arch.rows} lanes",
                         len(program.dw_weights) * arch.w_bits * arch.rows))
            rows.append(("depthwise parameter ROM", f"{len(program.dw_params):,} x "
                         f"{param_bits(arch)} b x {arch.rows} lanes",
                         len(program.dw_params) * param_bits(arch) * arch.rows))
    if weight_words is not None:
        where = "weight ROM (baked)" if arch.weight_store == "rom" else "external memory (off chip)"
        rows.append((where, f"{weight_words:,} x {arch.ext_word_bits} b",
                     weight_words * arch.ext_word_bits))
    return [(name, shape, f"{bits:,}", _kib(bits)) for name, shape, bits in rows]


def dw_macs(program) -> dict[int, int]:
    """``layer id -> MACs`` of the program's depthwise layers, read off their ELT words
    (``N * P * Q`` output pixels x ``count`` channels x ``kh * kw`` taps)."""
    fields = elt_fields(program.arch)
    out = {}
    for word in program.instructions:
        f = decode(fields, word)
        if f["op"] == OP_ELT and f["kind"] == EltKind.DW.value:
            out[f["layer_id"]] = f["N"] * f["P"] * f["Q"] * f["count"] * f["kh"] * f["kw"]
    return out


def bound(cost) -> str:
    """What limits a compute layer (``mapping.cost.LayerCost``): ``compute`` when the array
    never waits for a weight burst, else the cycles it waits (the DMA bandwidth or, single-
    buffered, every burst before its tile)."""
    stall = int(cost.breakdown.get("dma_stall", 0))
    if stall <= 0:
        return "compute"
    return f"weight transfers: array waits {stall:,} cycles ({stall / cost.cycles:.0%})"


def transfer_bound(li) -> str:
    """What limits a layer of a spilled program: its activation transfers when they take
    at least half its cycles, else its engine."""
    if not li.predicted_cycles or 2 * li.xfer_cycles < li.predicted_cycles:
        return "compute"
    return f"activation transfers ({li.xfer_cycles / li.predicted_cycles:.0%})"


def _mapping_rows(cm) -> list[tuple]:
    arch = cm.arch
    rows = []
    for lm, cost in zip(cm.schedule.layers, cm.schedule.costs, strict=True):
        n = lm.nest
        rows.append((lm.layer, n.kind, f"{n.gemm_m}x{n.gemm_n}x{n.gemm_k}",
                     f"{lm.tile_m}x{lm.tile_n}x{lm.tile_k}", "".join(lm.order),
                     f"{n.macs:,}", f"{cost.cycles:,}",
                     f"{n.macs / (arch.pes * cost.cycles):.1%}" if cost.cycles else "-",
                     f"{cost.accesses.get('store.w.read', 0):,}", bound(cost)))
    return rows


def render(cm, files: list[str] | None = None) -> str:
    """The report of a :class:`hwgen.build.flow.CompiledModel`; ``files``: the build's
    top-level files (default: those in its manifest)."""
    arch, man = cm.arch, cm.manifest
    out: list[str] = [f"# {man.model} on {arch.name}", ""]
    out.append(f"Array {arch.rows}x{arch.cols} {arch.dataflow}, {arch.in_bits}-bit activations, "
               f"{arch.w_bits}-bit weights, {arch.acc_bits}-bit accumulators, "
               f"{'double' if arch.double_buffer else 'single'}-buffered weights, weight store "
               f"`{arch.weight_store}`, clock target {arch.clock_mhz:g} MHz. hwgen "
               f"{man.hwgen_version}, build format {man.format_version}, mapper objective "
               f"`{man.objective}`.")
    out.append("")
    out.append("All cycle figures below are **estimated** by the analytic timing contract "
               "(`mapping.timing`, docs/timing.md); `hwgen sim` measures them with the "
               "hardware counters.")
    out += ["", "## What runs where", ""]
    rows = []
    for p in cm.placements:
        layer = "" if p.layer is None else str(p.layer)
        rows.append((p.name, p.op, p.where, layer, p.note))
    out.append(_table(("node", "op", "runs on", "layer", "note"), rows))
    host = cm.host_ops
    if host:
        out += ["", f"**Host-executed ops ({len(host)}):** "
                + ", ".join(f"`{p.name}` ({p.op})" for p in host)
                + ". The accelerator does not run them yet: the host dequantises, applies the "
                "op in float64 and requantises (`mapping.quant.host_op`, bit-exact with "
                "`sim.golden`). They take no accelerator cycles and are not in the totals."]
    out += ["", "## Per-layer mapping (estimated)", ""]
    words = "external words read" if arch.weight_store == "external" else "weight ROM words"
    out.append(_table(("layer", "kind", "GEMM MxNxK", "tile m x n x k", "order", "MACs",
                       "cycles", "PE util", words, "bound by"), _mapping_rows(cm),
                      right={5, 6, 7, 8}))
    spilled = cm.program is not None and cm.program.spilled
    if spilled:
        out += ["", "The tensors do not fit the activation scratchpad together "
                f"(act_words = {arch.act_words:,}), so they live in external memory and every "
                "layer runs in row bands (docs/timing.md, \"Activations in external memory\"): "
                "the cycles here are the mapper's for the layer on chip; the program's cycles "
                "below add each band's loads and stores (and its weights reloaded per band). "
                "Weights are read in DMA bursts"]
    else:
        out += ["", "Activations stay on chip (written back: 0 external words per layer); "
                "weights are read in DMA bursts"]
    out[-1] += (f" from external memory ({arch.ext_bandwidth:g} words/cycle after "
                f"{arch.ext_latency} cycles)." if arch.weight_store == "external"
                else " from the on-chip weight ROM.")
    if cm.kernels:
        out += ["", "## Kernels", ""]
        out.append("This graph is not a single chain of accelerator layers, so each array op "
                   "is compiled as its own single-layer program (a batched matmul as one "
                   "kernel per independent GEMM); the host streams each kernel's input in, "
                   "reads its output and runs the host ops and data movement in between. "
                   "A matmul's second operand is an activation: the host writes it (quantised, "
                   "in the weight-store word format) into the external weight memory of that "
                   "kernel before starting it.")
        out.append("")
        krows = [(k.name, k.node, k.dir, k.weights, f"{k.predicted_cycles:,}",
                  f"{k.input_count:,}", f"{k.output_count:,}") for k in cm.kernels]
        out.append(_table(("kernel", "node", "directory", "weights from", "cycles", "in",
                           "out"), krows, right={4, 5, 6}))
        total = sum(k.predicted_cycles + k.input_count + k.output_count for k in cm.kernels)
        out += ["", f"Accelerator cycles, all kernels incl. their input/output streams: "
                f"**{total:,}** (estimated), host ops excluded. {_CLOCK_NOTE}"]
    else:
        prog = cm.program
        out += ["", "## Program layers (estimated)", ""]
        if spilled:
            prow = [(i, li.name, li.kind, f"{li.predicted_cycles:,}", f"{li.ext_read_words:,}",
                     f"{li.ext_write_words:,}", f"{li.xfer_cycles:,}", transfer_bound(li),
                     f"{li.out_elements:,}") for i, li in enumerate(prog.layers)]
            out.append(_table(("#", "layer", "kind", "cycles", "act words read",
                               "act words written", "transfer cycles", "bound by", "outputs"),
                              prow, right={0, 3, 4, 5, 6, 8}))
            out += ["", "Activation words are external-memory words of "
                    f"{timing.act_per_word(arch)} activations; transfers do not overlap the "
                    "engines, so a layer whose transfers take most of its cycles is bound by "
                    "the memory."]
        else:
            prow = [(i, li.name, li.kind, f"{li.predicted_cycles:,}", li.in_base, li.out_base,
                     f"{li.out_elements:,}") for i, li in enumerate(prog.layers)]
            out.append(_table(("#", "layer", "kind", "cycles", "in base", "out base",
                               "outputs"), prow, right={0, 3, 4, 5, 6}))
        layers = sum(li.predicted_cycles for li in prog.layers)
        total = layers + prog.input_count + prog.output_count
        macs = sum(lm.nest.macs for lm in cm.schedule.layers)
        util = macs / (arch.pes * total) if total else 0.0
        dw = dw_macs(prog)
        dw_text = ""
        if dw:
            dw_cyc = sum(prog.layers[i].predicted_cycles for i in dw)
            dw_text = (f" Plus {sum(dw.values()):,} depthwise MACs in {len(dw)} layer(s), run "
                       f"on the element-wise lanes ({arch.rows} lanes, not the array) in "
                       f"{dw_cyc:,} cycles: lane MAC utilisation "
                       f"{sum(dw.values()) / (arch.rows * dw_cyc):.1%} (estimated); "
                       f"{macs + sum(dw.values()):,} MACs in all.")
        out += ["", f"One inference, start to done: {prog.input_count:,} input cycles + "
                f"{layers:,} layer cycles + {prog.output_count:,} output cycles = **{total:,} "
                f"cycles** (estimated); {macs:,} MACs on the array, PE utilisation "
                f"{util:.1%}.{dw_text} {_CLOCK_NOTE}"]
        luts = [p for p in cm.placements if p.op == "act" and p.where == "accelerator"]
        if luts:
            out += ["", f"**Activations as lookup tables ({len(luts)}):** "
                    + "; ".join(f"`{p.name}` {p.note}" for p in luts)
                    + ". Each runs on the element-wise engine: every element indexes a table "
                    "generated from the float function at compile time "
                    "(`mapping.quant.act_table`), exact by construction."]
        if spilled:
            ext_act = prog.ext_words - (len(prog.weight_image)
                                        if arch.weight_store == "external" else 0)
            out += ["", f"Activations in external memory: {ext_act:,} words (the input at word "
                    f"{prog.ext_tensors['input'][0]:,}, written by the host before start); "
                    f"{sum(li.ext_read_words for li in prog.layers):,} words read and "
                    f"{sum(li.ext_write_words for li in prog.layers):,} written per inference; "
                    f"{prog.summary()['instructions']:,} instructions."]
        else:
            used = max(max(li.in_base, li.out_base) + li.out_elements for li in prog.layers)
            out += ["", f"Activation scratchpad in use: up to element {used:,} of "
                    f"{arch.act_words:,}; {prog.summary()['instructions']:,} instructions."]
    out += ["", "## On-chip memory", ""]
    wwords = (man.program or {}).get("weight_words") if not cm.kernels else \
        max((k.weight_words for k in cm.kernels), default=0)
    out.append(_table(("memory", "elements", "bits", "size"),
                      memory_rows(arch, cm.program, wwords), right={2, 3}))
    out += ["", "## Files", ""]
    if files is None:
        files = [f for f in man.files if "/" not in f]
    for name in sorted(set(files) | {MANIFEST_FILE, REPORT_FILE}):
        out.append(f"- `{name}`")
    for k in cm.kernels:
        out.append(f"- `{k.dir}/` (kernel {k.name})")
    return "\n".join(out) + "\n"

