"""Level 0 sees every program layer: its cycles equal the compiled program's prediction.

Reference: the quantised graph compiled the way ``hwgen compile`` does it
(``mapping.passes.prepare`` -> ``mapping.mapper.map_graph`` -> ``hwgen.build.flow.chain_design``
-> ``Program.layers[i].predicted_cycles``, which the RTL tests check against the hardware
counters), plus ``mapping.timing.run_cycles`` for the streams; the program's sizes read off
the compiled ``Program`` (instruction and weight words, parameter entries, ``len(luts)``, the
per-bit ELT kind liveness of ``benchmarks/calibration_designs.py::eltwise_liveness``).

Each model of ``MODELS`` exercises program layer kinds (depthwise convolution and the strided
copies of a concatenation / broadcast included); a new kind gets a model here once the
compiler produces it.
"""

import dataclasses
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dse.level0 import Level0Evaluator
from dse.model import ELTWISE_OPS, EltwiseLayer, ModelError, eltwise_cycles, graph_layers
from dse.resources import NoResourceModel, ProgramSizes, lookup_rom, program_sizes
from dse.space import Space
from hwgen.build.flow import chain_design
from mapping import timing
from mapping.arch import ArchSpec
from mapping.graph import trace
from mapping.mapper import map_graph
from mapping.passes import fold_batchnorm, fuse_activations, lower, prepare
from mapping.source import import_file

ROOT = Path(__file__).resolve().parents[2]


class ActNet(nn.Module):
    """conv -> hardswish -> maxpool -> conv -> + skip (ReLU) -> sigmoid -> avgpool -> linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.act1 = nn.Hardswish()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.Sigmoid()
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 5)

    def forward(self, x):
        y = self.pool(self.act1(self.conv1(x)))
        y = torch.relu(self.conv2(y) + y)
        return self.fc(torch.flatten(self.avg(self.act2(y)), 1))


class TanhMlp(nn.Module):
    """linear -> tanh -> linear (one lookup table, a GEMM-only program)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MobileBlock(nn.Module):
    """conv -> depthwise 3x3/2 + BN + ReLU6 -> pointwise conv -> depthwise 3x3 -> linear
    (two depthwise layers: their ROM rows concatenate)."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, 2, 1, groups=6)
        self.bn = nn.BatchNorm2d(6)
        self.pw = nn.Conv2d(6, 5, 1)
        self.dw2 = nn.Conv2d(5, 5, 3, groups=5)
        self.fc = nn.Linear(5 * 3 * 3, 4)

    def forward(self, x):
        y = torch.relu(self.c0(x))
        y = nn.functional.relu6(self.bn(self.dw(y)))
        y = self.dw2(torch.relu(self.pw(y)))
        return self.fc(torch.flatten(y, 1))


class FireHead(nn.Module):
    """ceil_mode max pool -> Fire (squeeze, expand 1x1 and 3x3, channel concat) -> max
    pool to 1x1 -> adaptive average pool to 2x2 of that 1x1 map (a broadcast) -> linear."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(2, 6, 3)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)  # 8x8 -> 4x4
        self.sq = nn.Conv2d(6, 4, 1)
        self.e1 = nn.Conv2d(4, 3, 1)
        self.e3 = nn.Conv2d(4, 5, 3, padding=1)
        self.top = nn.MaxPool2d(4)
        self.avg = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(8 * 2 * 2, 3)

    def forward(self, x):
        x = torch.relu(self.sq(self.pool(torch.relu(self.c0(x)))))
        x = torch.cat([torch.relu(self.e1(x)), torch.relu(self.e3(x))], 1)
        return self.fc(torch.flatten(self.avg(self.top(x)), 1))


def _shuffle_unit():
    return import_file(ROOT / "examples" / "shuffle_unit.py").ShuffleUnit()


def _se_block():
    return import_file(ROOT / "examples" / "se_block.py").SEBlock()


# name -> (module factory, input shape, the program layer ops it must contain)
MODELS = {
    "shuffle-unit": (_shuffle_unit, (1, 2, 6, 6), {"copy", "dwconv", "maxpool2d"}),
    "se-block": (_se_block, (1, 3, 6, 6), {"mul", "dwconv", "act", "add"}),
    "actnet": (ActNet, (1, 1, 10, 10), {"act", "maxpool2d", "avgpool2d", "add"}),
    "tanh-mlp": (TanhMlp, (1, 12), {"act"}),
    "mobile-block": (MobileBlock, (1, 3, 9, 9), {"dwconv"}),
    "fire-head": (FireHead, (1, 2, 10, 10), {"copy", "maxpool2d"}),
}

SPACE = Space.from_dict({
    "base": {"acc_bits": 32, "ext_word_bits": 64, "act_words": 2048, "w_words": 1024,
             "acc_words": 512},
    "choices": {"rows": [2, 4], "cols": [4, 2], "dataflow": ["ws", "os"],
                "double_buffer": [True, False], "bits": [6, 8], "objective": ["latency"]},
})


def _eltwise_liveness():
    spec = importlib.util.spec_from_file_location(
        "calibration_designs", ROOT / "benchmarks" / "calibration_designs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.eltwise_liveness


def _model(name):
    factory, shape, _ = MODELS[name]
    torch.manual_seed(0)
    m = factory().eval()
    x = torch.randn(shape)
    calib = torch.randn((16,) + shape[1:])
    return m, x, calib


def _mappings(ev, m):
    out = []
    for name in ev.layers.compute_names:
        tiles, order = m[f"tiles.{name}"].split(":")
        out.append((tuple(int(t) for t in tiles.split("x")), order))
    return tuple(out)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_level0_cycles_equal_compiled_program(name):
    module, x, calib = _model(name)
    g = lower(fuse_activations(fold_batchnorm(trace(module, x))))
    layers = graph_layers(g, name)
    assert MODELS[name][2] <= {e.op for e in layers.eltwise}
    ev = Level0Evaluator(SPACE, layers, NoResourceModel("test"), {"bram_bits": 1e12})
    liveness = _eltwise_liveness()
    graphs = {}
    checked = 0
    for i in range(0, SPACE.size, 3):  # every third point: all shapes, both widths
        p = SPACE.point(i)
        arch = SPACE.arch(p)
        m = ev.evaluate(p)
        assert m["feasible"], m["reason"]
        bits = p["bits"]
        if bits not in graphs:
            graphs[bits] = prepare(module, x, calib, bits=bits)
        q = graphs[bits]
        prog, _ = chain_design(q, arch, map_graph(q, arch, "latency"), name)
        per_layer = {li.name: li.predicted_cycles for li in prog.layers}
        assert {k[7:]: v for k, v in m.items() if k.startswith("cycles.")} == per_layer
        total = timing.run_cycles(prog.input_count, sum(per_layer.values()), prog.output_count)
        assert m["cycles"] == total
        sizes = ev.program(arch, _mappings(ev, m), ev.lut_entries(SPACE.quant_key(p)))
        pool, add = liveness(arch, prog)
        assert (sizes.rom_words, sizes.program_words, sizes.param_words, sizes.pool_mult,
                sizes.add_mult, sizes.lut_entries, sizes.dw_weight_rows,
                sizes.dw_param_rows, sizes.mul) == (
            len(prog.weight_image), len(prog.instructions), len(prog.params), pool, add,
            len(prog.luts), len(prog.dw_weights), len(prog.dw_params),
            any(li.kind == "mul" for li in prog.layers))
        checked += 1
    assert checked >= 10


def test_lut_entries_follow_the_input_width():
    """An act's table has 2**(width of what it reads) entries: per-layer bits of its
    producer count, the model-wide width otherwise (mapping.quant.act_table)."""
    from dse.model import lut_entries

    module, x, calib = _model("actnet")
    layers = graph_layers(lower(fuse_activations(fold_batchnorm(trace(module, x)))))
    # act1 reads conv1, act2 reads the add (model-wide width)
    assert lut_entries(layers, 6, {}) == 64 + 64
    assert lut_entries(layers, 6, {"conv1": 8}) == 256 + 64
    q = prepare(module, x, calib, bits=6, per_layer_bits={"conv1": 8})
    assert [len(n.params["qtable"]) for n in q.nodes() if n.op == "act"] == [256, 64]


def test_lookup_rom_shape_and_liveness():
    """The lookup ROM is rows copies of a power-of-two deep, in_bits wide table
    (hwgen.rtl.eltwise.Lookup); a LUT layer builds neither the average-pool nor the
    residual-add multipliers (hwgen.rtl.eltwise_engine builds them for their layers only)."""
    arch = ArchSpec(rows=4, cols=4, in_bits=8, w_bits=8, ext_word_bits=64,
                    double_buffer=False)
    assert lookup_rom(arch, 0) is None
    assert lookup_rom(arch, 256) == (256, 8, 4)
    assert lookup_rom(arch, 256 + 64) == (512, 8, 4)
    from dse.model import ComputeLayer
    from mapping.loopnest import LoopNest

    one = SimpleNamespace(compute=(ComputeLayer("g", LoopNest.gemm(1, 16, 16), "input"),),
                          eltwise=(EltwiseLayer("a", "act", 0, 0, 0, 16, "g"),),
                          compute_names=["g"])
    s = program_sizes(arch, one, (((1, 8, 8), "mnk"),), 256)
    assert (s.program_words, s.pool_mult, s.add_mult, s.lut_entries) == (7, False, False, 256)


def test_unknown_layer_kind_is_an_error():
    arch = ArchSpec(rows=4, cols=4)
    with pytest.raises(ModelError, match="op 'gemv' has no level-0 cycle model"):
        eltwise_cycles(EltwiseLayer("d", "gemv", 1, 1, 1, 1), arch)
    assert set(ELTWISE_OPS) == {"maxpool2d", "avgpool2d", "add", "act", "dwconv", "copy",
                                "mul"}

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(4, 4, 3, groups=2)

        def forward(self, x):
            return self.c(x)

    # level 0 refuses it unlowered; lower splits it into dense groups (two selects, two
    # convs of 2 -> 2 channels, a concat: four copies)
    g = fuse_activations(fold_batchnorm(trace(Grouped().eval(), torch.randn(1, 4, 6, 6))))
    with pytest.raises(ModelError, match="grouped convolution"):
        graph_layers(g, "grouped")
    layers = graph_layers(lower(g), "grouped")
    assert [(c.nest.C, c.nest.K) for c in layers.compute] == [(2, 2), (2, 2)]
    assert [(e.op, e.channels) for e in layers.eltwise] == [("copy", 2)] * 4


def test_depthwise_and_copy_cycles_in_closed_form():
    """docs/timing.md: depthwise = 2 + out pixels x ceil(C / rows) x taps + 4; copy =
    2 + pixels x ceil(C / rows) + 3, one copy per concat input."""
    arch = ArchSpec(rows=4, cols=4)
    module, x, _ = _model("mobile-block")
    layers = graph_layers(lower(fuse_activations(fold_batchnorm(trace(module, x)))))
    dw = {e.name: eltwise_cycles(e, arch) for e in layers.eltwise if e.op == "dwconv"}
    # dw: 9x9 -> 5x5, 6 channels (2 groups of 4), 9 taps; dw2: 5x5 -> 3x3, 5 channels
    assert sorted(dw.values()) == sorted([2 + 25 * 2 * 9 + 4, 2 + 9 * 2 * 9 + 4])
    module, x, _ = _model("fire-head")
    layers = graph_layers(lower(fuse_activations(fold_batchnorm(trace(module, x)))))
    cp = [(e.name, eltwise_cycles(e, arch)) for e in layers.eltwise if e.op == "copy"]
    cat = next(n for n, _ in cp if ".copy" in n and not n.startswith("avg"))
    base = cat.rsplit(".", 1)[0]
    # concat of 3 + 5 channels over 4x4 pixels, broadcast 1x1 -> 2x2 of 8 channels
    assert [c for n, c in cp if n.startswith(base + ".")] == [2 + 16 * 1 + 3, 2 + 16 * 2 + 3]
    assert [c for n, c in cp if not n.startswith(base + ".")] == [2 + 4 * 2 + 3]


def test_depthwise_roms_and_budget():
    """Depthwise ROM rows: ceil(C / rows) x taps weight rows and ceil(C / rows) parameter
    rows per layer (Program.dw_weights / dw_params); their bits count against the ROM budget
    (hwgen.rtl.accelerator.DEFAULT_ROM_BUDGET_BITS), as Accelerator.check does."""
    from dse.model import ComputeLayer
    from dse.resources import depthwise_rom_bits, depthwise_roms, rom_budget_error
    from hwgen.rtl.accelerator import DEFAULT_ROM_BUDGET_BITS
    from mapping.loopnest import LoopNest

    arch = ArchSpec(rows=4, cols=4, in_bits=8, w_bits=8, acc_bits=32, ext_word_bits=64,
                    double_buffer=False)
    one = SimpleNamespace(compute=(ComputeLayer("g", LoopNest.gemm(1, 16, 16), "input"),),
                          eltwise=(EltwiseLayer("d", "dwconv", 25, 6, 9, 0, "g"),
                                   EltwiseLayer("e", "dwconv", 9, 5, 4, 0, "d")),
                          compute_names=["g"])
    s = program_sizes(arch, one, (((1, 8, 8), "mnk"),))
    assert (s.dw_weight_rows, s.dw_param_rows) == (2 * 9 + 2 * 4, 2 + 2)
    pbits = 32 + 15 + 6  # bias (acc_bits), multiplier, shift: mapping.quant
    assert depthwise_roms(arch, s) == ((32, 4 * 8, 1), (4, 4 * pbits, 1))
    assert depthwise_rom_bits(arch, 26, 4) == 4 * (26 * 8 + 4 * pbits)
    assert rom_budget_error(arch, s) == ""
    big = ProgramSizes(0, 1, 1, 0, False, False, dw_weight_rows=DEFAULT_ROM_BUDGET_BITS // 32,
                       dw_param_rows=1)
    assert rom_budget_error(arch, big).startswith("depthwise weights and parameters need")
    assert depthwise_roms(arch, dataclasses.replace(s, dw_weight_rows=0)) is None


def test_depthwise_unit_in_the_resource_estimate():
    """BoardsResourceModel.extra prices the depthwise unit: per lane an in_bits x w_bits
    MAC multiplier and an acc_bits x 16 requantisation multiplier in DSP blocks (Yosys
    mul2dsp, boards.family_rules.dsp_blocks), and its two ROMs; a program without one adds
    nothing."""
    from boards.family_rules import dsp_blocks
    from dse.resources import BoardsResourceModel

    try:
        est = BoardsResourceModel("ecp5")
    except (ImportError, ValueError) as exc:
        pytest.skip(f"no calibrated ecp5 model: {exc}")
    arch = ArchSpec(rows=4, cols=4, in_bits=8, w_bits=8, acc_bits=32)
    none = ProgramSizes(0, 1, 1, 0, False, False)
    assert est.extra(arch, none) == {"lut": 0, "ff": 0, "dsp": 0, "bram": 0}
    dw = dataclasses.replace(none, dw_weight_rows=26, dw_param_rows=4)
    extra = est.extra(arch, dw)
    assert extra["dsp"] == 4 * (dsp_blocks(8, 8, "ecp5") + dsp_blocks(32, 16, "ecp5")) > 0
    assert extra["lut"] > 0 and extra["ff"] > 0
    base = est.estimate(arch, none)
    with_dw = est.estimate(arch, dw)
    assert with_dw["dsp"] == base["dsp"] + extra["dsp"]


def test_graph_that_is_not_one_program_is_an_error():
    class Host(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return torch.softmax(self.fc(x), -1)

    g = lower(fuse_activations(fold_batchnorm(trace(Host().eval(), torch.randn(1, 8)))))
    with pytest.raises(ModelError, match="one accelerator program.*softmax"):
        graph_layers(g, "host")
