"""Where each node of a graph runs: one accelerator program (a *chain*) when every op is one
the hardware compiles, else per-layer *kernels* with the rest on the host
(:func:`plan`; ``hwgen.build.flow`` compiles what it decides), and the report's placement
notes for depthwise convs and lookup-table activations."""

from __future__ import annotations

from hwgen.build import movement
from hwgen.build.manifest import Placement
from hwgen.compiler.mul_layer import mul_geometry
from mapping import quant as Q
from mapping.arch import ArchSpec
from mapping.graph import DataflowGraph, Node
from mapping.passes.lower import is_depthwise

HOST_OPS = Q.HOST_OPS
LAYOUT_OPS = ("reshape", "transpose", "flatten")
POOL_OPS = ("maxpool2d", "avgpool2d")
PROGRAM_OPS = ("linear", "conv2d", "flatten", "add", "act", "concat", "select",
               "mul") + POOL_OPS


def on_program(n: Node) -> bool:
    """True if node ``n`` can be a layer of an accelerator program: its op is one of
    :data:`PROGRAM_OPS`, and a ``mul`` is of two tensors the multiply layer runs
    (``hwgen.compiler.mul_layer.mul_geometry``: same shape, or a per-channel gate)."""
    if n.op != "mul":
        return n.op in PROGRAM_OPS
    return "scalar" not in n.attrs and mul_geometry(n.in_shapes, n.out_shape) is not None


def single_program(graph: DataflowGraph) -> bool:
    """True if one accelerator program runs the whole graph: one input, one output and
    only ops the hardware compiles (:func:`on_program`: linear, conv2d, flatten, max/avg
    pool, residual add, lookup-table activation, concat, channel select, tensor multiply)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    body = [n for n in graph.nodes() if n.op not in ("input", "output")]
    return all(on_program(n) for n in body) and not (
        body and body[-1].op == "flatten" and not _flattens_pixel(graph, body[-1]))


def _flattens_pixel(graph: DataflowGraph, n) -> bool:
    """A flatten of one pixel (``N x C x 1 x 1``, e.g. after global average pooling): NHWC
    and NCHW orders agree, so a trailing one changes nothing the output stream carries."""
    shape = graph.node(n.inputs[0]).out_shape
    return len(shape) != 4 or shape[2] * shape[3] == 1


def plan(graph: DataflowGraph) -> tuple[str, list[Placement]]:
    """``("chain" | "kernels", placements)``: how the graph is compiled (module docstring)."""
    chain = single_program(graph)
    places: list[Placement] = []
    layer = 0
    for n in graph.nodes():
        if n.op in ("input", "output"):
            places.append(Placement(n.name, n.op, "io", note="input stream" if n.op == "input"
                                    else "output stream"))
        elif n.op in HOST_OPS:
            places.append(Placement(n.name, n.op, "host", note="not on the accelerator: run "
                                    "in float64 on the host and requantised (mapping.quant.host_op)"))
        elif n.op in LAYOUT_OPS:
            note = ("no instruction: the next linear's weight rows are permuted to NHWC"
                    if n.op == "flatten" and chain else
                    "data movement done by the host between kernels")
            places.append(Placement(n.name, n.op, "layout", note=note))
        elif n.op in PROGRAM_OPS or n.op == "matmul":  # (flatten: a layout op, above)
            if not chain and (n.op not in ("linear", "conv2d", "matmul") or is_depthwise(n)):
                places.append(Placement(n.name, n.op, "host", note="between kernels: run on the "
                                        "host (integer, mapping.quant semantics)"))
                continue
            note = ""
            if n.op == "matmul":
                batch = int(n.attrs.get("batch", 1))
                note = (f"{batch} independent GEMMs (one kernel each); " if batch > 1 else "") + \
                    "second operand is an activation, loaded by the host into the weight memory"
            elif n.op == "act":
                note = lut_note(n)
            elif n.op == "mul":
                note = mul_note(n)
            elif n.op in ("concat", "select") or (n.op in POOL_OPS
                                                  and movement.varying_pool(n)):
                note = movement.note(n)
            elif is_depthwise(n):
                note = dw_note(n)
            places.append(Placement(n.name, n.op, "accelerator", layer=layer, note=note))
            layer += movement.layer_count(n)  # 1 but for copies (concat, select, broadcast)
        else:
            places.append(Placement(n.name, n.op, "host", note=f"op {n.op!r} is not compiled "
                                    "to the accelerator"))
    return ("chain" if chain else "kernels"), places


def dw_note(node: Node, arch: ArchSpec | None = None) -> str:
    """What the report says about a depthwise conv2d (element-wise engine, not the array);
    with ``arch``: its lanes, cycles and MAC utilisation (estimated)."""
    note = "depthwise conv on the element-wise engine (not the array)"
    if arch is None:
        return note
    macs, cyc, util = dw_mac_utilisation(node, arch)
    return (f"{note}: {arch.rows} lanes, {macs:,} MACs in {cyc:,} cycles, MAC utilisation "
            f"{util:.1%} (useful MACs / (lanes x cycles), estimated)")


def dw_mac_utilisation(node: Node, arch: ArchSpec) -> tuple[int, int, float]:
    """``(useful MACs, cycles, MACs / (rows * cycles))`` of a depthwise node on ``arch``
    (``mapping.timing.dw_cycles``)."""
    from mapping import timing

    n, c, p, q = node.out_shape
    r, s = node.params["weight"].shape[2:]
    cyc = timing.dw_cycles(n * p * q, c, r * s, arch)
    return node.macs, cyc, node.macs / (arch.rows * cyc)


def mul_note(node: Node) -> str:
    """What the report says about a ``mul`` of two tensors on the accelerator."""
    pixels, channels, broadcast, _ = mul_geometry(node.in_shapes, node.out_shape)
    what = (f"gate: {pixels} pixels x {channels} channels times one value per channel "
            "(squeeze-excitation)" if broadcast else f"{channels} elements times {channels}")
    return f"tensor multiply on the element-wise engine, {what}"


def lut_note(node: Node) -> str:
    """What the report says about an ``act`` node on the accelerator."""
    entries = len(node.params["qtable"])
    return (f"{node.attrs['fn']}: lookup table of {entries} entries "
            f"({node.quant.extra.get('in_bits', '?')}-bit input, {node.quant.bits}-bit output)")
