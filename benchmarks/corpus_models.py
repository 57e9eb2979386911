"""The corpus: models written outside this repository, built exactly as published.

Each :class:`CorpusModel` names a constructor from torchvision, timm, transformers or
Brevitas (their own model code, imported from the installed package: nothing copied
here), or a short hand-written tutorial-style model (LeNet-5, an hls4ml-style jet tagger,
a 1-D CNN, a tanh/sigmoid MLP), with the input shape it is compiled for, the preset and
the ``--set`` overrides it needs. Weights are random from a fixed seed (the corpus checks
compilation and bit-exactness, not accuracy; no pretrained weights, no network).

The packages are the optional extra ``corpus`` (``pip install -c constraints.txt
-e '.[corpus]'``). torchvision's compiled ops do not load beside the pinned CPU torch
("operator torchvision::nms does not exist", raised from
``torchvision/_meta_registrations.py``); its model code is pure Python, so
:func:`shim_torchvision` puts an empty module in place of ``_meta_registrations``
before torchvision is first imported (timm and transformers import torchvision too).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

SEED = 0


def shim_torchvision() -> None:
    """Let torchvision's pure-Python model code import beside the CPU torch (module doc)."""
    name = "torchvision._meta_registrations"
    if "torchvision" not in sys.modules and name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)


@dataclass(frozen=True)
class CorpusModel:
    """One corpus entry: ``build()`` returns the model (eval mode, seeded weights)."""

    name: str
    source: str  # where the model code comes from
    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # batch first
    preset: str = "edge-8x8"
    overrides: dict = field(default_factory=dict)  # ArchSpec fields (`--set k=v`)
    note: str = ""

    def build(self) -> nn.Module:
        torch.manual_seed(SEED)
        return self.make().eval()

    def example_input(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(self.input_shape, generator=g)

    def calibration(self, n: int = 16, seed: int = 1) -> torch.Tensor:
        """Seeded standard-normal calibration batch shaped like the input."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn((n, *self.input_shape[1:]), generator=g)

    @property
    def set_args(self) -> str:
        return " ".join(f"--set {k}={v}" for k, v in self.overrides.items())


# ----------------------------------------------------------------- published models
def _tv(name: str, **kw) -> Callable[[], nn.Module]:
    def make():
        shim_torchvision()
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kw)
    return make


def _timm(name: str, **kw) -> Callable[[], nn.Module]:
    def make():
        shim_torchvision()
        import timm

        return timm.create_model(name, pretrained=False, **kw)
    return make


class BertHidden(nn.Module):
    """Adapter, not model code: runs a ``transformers.BertModel`` on ``inputs_embeds``
    (the token embedding lookup stays on the host) and returns ``last_hidden_state``."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, x):
        return self.bert(inputs_embeds=x).last_hidden_state


def _bert() -> nn.Module:
    shim_torchvision()
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=64, hidden_size=32, num_attention_heads=2,
                     num_hidden_layers=2, intermediate_size=64, max_position_embeddings=16,
                     attn_implementation="eager")
    return BertHidden(BertModel(cfg, add_pooling_layer=False))


def _brevitas_mlp() -> nn.Module:
    """A Brevitas QAT MLP as its tutorials write it: 4-bit weights and activations."""
    import brevitas.nn as qnn

    return nn.Sequential(
        qnn.QuantIdentity(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(64, 32, bias=True, weight_bit_width=4),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(32, 32, bias=True, weight_bit_width=4),
        qnn.QuantReLU(bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(32, 10, bias=True, weight_bit_width=4),
    )


# ------------------------------------------------------- hand-written tutorial models
class LeNet5(nn.Module):
    """LeNet-5 as the PyTorch tutorials write it (32x32 grey input)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = nn.functional.relu(self.fc1(x))
        x = nn.functional.relu(self.fc2(x))
        return self.fc3(x)


def _jet_tagger() -> nn.Module:
    """hls4ml tutorial's jet tagger: 16 features -> 64 -> 32 -> 32 -> 5 logits (the
    tutorial's final softmax is left out: it picks the same class)."""
    layers: list[nn.Module] = []
    width = 16
    for out in (64, 32, 32):
        layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers, nn.Linear(width, 5))


class Cnn1d(nn.Module):
    """A 1-D CNN for a 64-sample, 1-channel signal (4 classes)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def _tanh_sigmoid_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Sigmoid(),
                         nn.Linear(32, 2))


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Give BatchNorm layers non-trivial seeded running statistics and affine parameters
    (a fresh model's are 0/1: folding them would test nothing)."""
    g = torch.Generator().manual_seed(SEED + 1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            if m.affine:
                m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model


def _bn(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    return lambda: _randomise_bn(make())


# ------------------------------------------------------------------------ the corpus
# weights beyond the preset's ROM budget are served by the external memory model
EXT = {"weight_store": "external"}
MID = "mid-16x16"  # 64 K activation words: ImageNet-style CNNs at 32x32 need > 16 K
IN32 = (1, 3, 32, 32)

CORPUS: list[CorpusModel] = [
    CorpusModel("lenet5", "hand-written (PyTorch tutorial)", LeNet5, (1, 1, 32, 32)),
    CorpusModel("jet-tagger", "hand-written (hls4ml tutorial)", _bn(_jet_tagger), (1, 16)),
    CorpusModel("cnn1d", "hand-written", _bn(Cnn1d), (1, 1, 64)),
    CorpusModel("tanh-sigmoid-mlp", "hand-written", _tanh_sigmoid_mlp, (1, 8)),
    CorpusModel("brevitas-qat-mlp", "brevitas 0.13 (QuantIdentity/QuantLinear/QuantReLU, "
                "4-bit)", _brevitas_mlp, (1, 64), preset="tiny-4x4"),
    CorpusModel("tv-resnet18", "torchvision.models.resnet18", _bn(_tv("resnet18")), IN32,
                MID, EXT, "32x32 input"),
    CorpusModel("tv-mobilenet_v2", "torchvision.models.mobilenet_v2",
                _bn(_tv("mobilenet_v2")), IN32, MID, note="32x32 input"),
    CorpusModel("tv-squeezenet1_1", "torchvision.models.squeezenet1_1",
                _tv("squeezenet1_1"), IN32, MID, note="32x32 input"),
    CorpusModel("tv-vgg11", "torchvision.models.vgg11", _tv("vgg11", num_classes=10), IN32,
                MID, {**EXT, "act_words": 131072},  # 3 K input + 64 K of the first conv
                "32x32 input, 10 classes"),
    CorpusModel("tv-efficientnet_b0", "torchvision.models.efficientnet_b0",
                _bn(_tv("efficientnet_b0")), IN32, MID, EXT, "32x32 input"),
    CorpusModel("tv-shufflenet_v2_x0_5", "torchvision.models.shufflenet_v2_x0_5",
                _bn(_tv("shufflenet_v2_x0_5")), IN32, MID, note="32x32 input"),
    CorpusModel("timm-resnet10t", "timm resnet10t", _bn(_timm("resnet10t")), IN32, MID, EXT,
                "32x32 input"),
    CorpusModel("timm-mobilenetv3_small_100", "timm mobilenetv3_small_100",
                _bn(_timm("mobilenetv3_small_100")), IN32, MID, note="32x32 input"),
    CorpusModel("timm-vit_tiny_patch16_224", "timm vit_tiny_patch16_224",
                _timm("vit_tiny_patch16_224", img_size=32), IN32, MID,
                note="img_size=32: 4 patches + class token"),
    CorpusModel("hf-bert-tiny", "transformers BertModel (hidden 32, 2 heads, 2 layers)",
                _bert, (1, 8, 32), MID,
                note="8 tokens; input = token embeddings (lookup on the host)"),
]

BY_NAME = {m.name: m for m in CORPUS}
