"""Brevitas QAT import (mapping.passes.qat_import): the imported graph's integer model
against Brevitas's own quantised forward (its QuantTensor ``.int()``), on seeded, untrained
models and random inputs."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

qnn = pytest.importorskip("brevitas.nn")
from brevitas.quant import Int8WeightPerChannelFloat, Int32Bias  # noqa: E402

from mapping.graph import UnsupportedOpError  # noqa: E402
from mapping.passes import prepare  # noqa: E402
from mapping.passes.qat_import import import_brevitas, is_brevitas  # noqa: E402
from sim import golden  # noqa: E402


def _mlp(bias_quant=Int32Bias, seed=0):
    torch.manual_seed(seed)
    kw = {"bias_quant": bias_quant} if bias_quant is not None else {}
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(64, 32, bias=True, weight_bit_width=4, **kw),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(32, 24, bias=True, weight_bit_width=4, **kw),
        qnn.QuantReLU(bit_width=3, return_quant_tensor=True),
        qnn.QuantLinear(24, 10, bias=True, weight_bit_width=4, **kw),
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
    ).eval()


class _ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.inp = qnn.QuantIdentity(bit_width=6, return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(2, 6, 3, padding=1, bias=True, weight_bit_width=5,
                                    weight_quant=Int8WeightPerChannelFloat,
                                    bias_quant=Int32Bias)
        self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(6 * 4 * 4, 5, bias=True, weight_bit_width=4,
                                  bias_quant=Int32Bias)
        self.out = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)

    def forward(self, x):
        x = self.pool(self.relu(self.conv(self.inp(x))))
        return self.out(self.fc(torch.flatten(x, 1)))


def _golden(g, x: torch.Tensor) -> np.ndarray:
    return np.asarray(golden.run(g, golden.quantize_input(g, x.numpy())))


def _brevitas_int(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).int().numpy().astype(np.int64)


def test_import_gives_plain_layers_with_brevitas_dequantised_weights():
    model = _mlp()
    qi = import_brevitas(model)
    assert not is_brevitas(qi.module) and is_brevitas(model)
    assert [type(m) for m in qi.module] == [nn.Identity, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU,
                                           nn.Linear, nn.Identity]
    for i in (1, 3, 5):
        qw = model[i].quant_weight()
        want = (qw.int().double() * qw.scale.double()).detach().numpy()
        np.testing.assert_allclose(qi.module[i].weight.detach().double().numpy(), want,
                                   rtol=1e-6)
        np.testing.assert_array_equal(qi.weights[str(i)].w_int, qw.int().numpy())
        assert qi.weights[str(i)].bit_width == 4 and qi.weights[str(i)].signed
    assert (qi.acts["0"].bit_width, qi.acts["0"].signed) == (4, True)
    assert (qi.acts["2"].bits, qi.acts["2"].signed) == (5, False)  # unsigned 4 bit: 0..15
    assert qi.acts["0"].scale == pytest.approx(float(model[0].act_quant.scale()))


def test_mlp_golden_equals_brevitas_bit_for_bit():
    """Int32Bias (bias at input scale x weight scale, as integer hardware needs): every
    output integer equals Brevitas's."""
    model = _mlp()
    x = torch.randn(300, 64, generator=torch.Generator().manual_seed(3)) * 0.6
    g = prepare(model, x[:1], x)
    by = {n.name: n.quant for n in g.nodes()}
    assert any(q.bits == 5 and q.relu for q in by.values())  # QuantReLU 4 bit -> 0..15
    got = _golden(g, x).reshape(300, 10)
    want = _brevitas_int(model, x)
    assert np.abs(want).max() > 10  # not all clamped or zero
    np.testing.assert_array_equal(got, want)


def test_conv_per_channel_weights_golden_equals_brevitas():
    model = _ConvNet().eval()
    x = torch.randn(40, 2, 8, 8, generator=torch.Generator().manual_seed(4))
    g = prepare(model, x[:1], x)
    conv = next(n for n in g.nodes() if n.op == "conv2d")
    assert len(set(conv.quant.w_scale.tolist())) == 6  # per output channel
    np.testing.assert_array_equal(_golden(g, x).reshape(40, 5), _brevitas_int(model, x))


def test_float_bias_differs_only_within_bias_rounding_of_a_tie():
    """Brevitas's default float bias: our bias is an integer in accumulator units
    (``s_in * s_w``), so an output can differ by 1 only where Brevitas's value is within
    half an accumulator unit (times the requantisation multiplier) of a rounding tie."""
    model = _mlp(bias_quant=None)
    x = torch.randn(300, 64, generator=torch.Generator().manual_seed(5)) * 0.6
    g = prepare(model, x[:1], x)
    first = next(n for n in g.nodes() if n.op == "linear")
    trace = golden.run(g, golden.quantize_input(g, x.numpy()), trace=True)
    with torch.no_grad():
        pre = model[1](model[0](x)).double().numpy()  # Brevitas's float pre-activation
    s_out = first.quant.scale
    want = np.clip(np.round(pre / s_out), 0, 15)
    got = np.asarray(trace[first.name]).reshape(want.shape)
    m = first.quant.in_scales[0] * first.quant.w_scale / s_out
    near = np.abs(np.abs(pre / s_out - np.floor(pre / s_out)) - 0.5) <= 0.5 * m + 1e-6
    assert np.all(np.abs(got - want) <= 1) and np.all(near[got != want])


def test_user_file_with_brevitas_layers_imports_its_scales(tmp_path):
    from mapping.passes import prepare_entry
    from mapping.source import load_source

    f = tmp_path / "qat.py"
    f.write_text(textwrap.dedent("""
        import brevitas.nn as qnn
        from brevitas.quant import Int32Bias
        from torch import nn

        def make():
            return nn.Sequential(qnn.QuantIdentity(bit_width=4, return_quant_tensor=True),
                                 qnn.QuantLinear(16, 8, bias=True, weight_bit_width=3,
                                                 bias_quant=Int32Bias),
                                 qnn.QuantReLU(bit_width=4, return_quant_tensor=True))
    """))
    src = load_source(f"{f}:make", input_shape=(1, 16))
    assert "QAT scales imported from Brevitas" in src.qat_note
    g = prepare_entry(src)
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(6))
    np.testing.assert_array_equal(_golden(g, x).reshape(20, 8), _brevitas_int(src.module(), x))
    lin = next(n for n in g.nodes() if n.op == "linear")
    assert (lin.quant.w_bits, lin.quant.bits) == (3, 5)


@pytest.mark.parametrize("layer, what", [
    (lambda: qnn.QuantEltwiseAdd(), "QuantEltwiseAdd"),
    (lambda: qnn.QuantIdentity(bit_width=4, act_quant=_narrow()), "narrow-range"),
])
def test_unsupported_brevitas_layers_are_one_line_errors(layer, what):
    model = nn.Sequential(nn.Linear(4, 4), layer())
    with pytest.raises(UnsupportedOpError, match=what) as exc:
        import_brevitas(model)
    assert "\n" not in str(exc.value) and "'1'" in str(exc.value)


def _narrow():
    from brevitas.quant import Int8ActPerTensorFloat

    class Narrow(Int8ActPerTensorFloat):
        narrow_range = True

    return Narrow
