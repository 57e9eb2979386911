"""The zoo registry: ``names()``, ``get(name)`` and ``ModelEntry``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.datasets import Dataset, load_dataset
from models.nets import CnnDigits, JscMlp, MlpDigits
from models.resnet import ResNet18, ResNetBlock
from models.transformer import TinyTransformer

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
INPUT_KINDS = ("data", "normal", "relu-normal")


class UnknownModelError(KeyError, ValueError):
    """No zoo model has this name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def make_batchnorm_nontrivial(model: nn.Module, seed: int) -> None:
    """Give every ``BatchNorm2d`` deterministic, non-identity affine and running stats.

    gamma ~ U[0.5, 1.5], beta ~ U[-0.25, 0.25], running_mean ~ U[-0.25, 0.25],
    running_var ~ U[0.5, 2.0], drawn from a generator seeded with ``seed`` in
    module order, so folding BN into the preceding convolution changes its
    weights and biases for real.
    """
    g = torch.Generator().manual_seed(int(seed) + 7919)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.5 * torch.rand(c, generator=g) - 0.25)
                m.running_mean.copy_(0.5 * torch.rand(c, generator=g) - 0.25)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(1)


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model: metadata plus how to build, load, feed and evaluate it.

    ``input_shape`` includes the batch dim 1. ``num_classes`` is ``None`` for
    models that are not classifiers. ``trained`` models ship a checkpoint in
    ``models/checkpoints/<name>.pt`` (+ ``.json`` with its training record).
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    trained: bool
    factory: Callable[[], nn.Module] = field(repr=False, compare=False)
    dataset_name: str | None = None
    input_kind: str = "normal"
    nontrivial_bn: bool = False

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh model with deterministic initialisation from ``seed`` (train mode).

        The global torch RNG state is left untouched.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = self.factory()
        if self.nontrivial_bn:
            make_batchnorm_nontrivial(model, seed)
        return model

    @property
    def checkpoint_path(self) -> Path:
        return CHECKPOINT_DIR / f"{self.name}.pt"

    @property
    def metadata_path(self) -> Path:
        return CHECKPOINT_DIR / f"{self.name}.json"

    def metadata(self) -> dict | None:
        """The training record (``<name>.json``) of a trained model, else ``None``."""
        if not self.trained or not self.metadata_path.exists():
            return None
        return json.loads(self.metadata_path.read_text())

    def load(self) -> nn.Module:
        """Eval-mode model: the shipped checkpoint if trained, else ``build(seed=0)``."""
        model = self.build(seed=0)
        if self.trained:
            if not self.checkpoint_path.exists():
                raise FileNotFoundError(
                    f"checkpoint for {self.name!r} missing at {self.checkpoint_path}; "
                    f"create it with: python -m models.train {self.name}"
                )
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        return model.eval()

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """One input of shape ``input_shape``, deterministic in ``seed``.

        Models with data: the test-split sample at index
        ``default_rng(seed).integers(n_test)``. Otherwise a standard normal
        tensor (``normal``), or its ReLU (``relu-normal``: a post-activation
        feature map, e.g. the input of a residual block).
        """
        if self.dataset_name is not None:
            ds = self.dataset()
            idx = int(np.random.default_rng(int(seed)).integers(len(ds.x_test)))
            x = torch.from_numpy(np.array(ds.x_test[idx : idx + 1], dtype=np.float32))
            return x.reshape(self.input_shape)
        g = torch.Generator().manual_seed(int(seed))
        x = torch.randn(self.input_shape, generator=g)
        return torch.relu(x) if self.input_kind == "relu-normal" else x

    def dataset(self) -> Dataset | None:
        """The model's train/test data (cached), or ``None`` for models without data."""
        return None if self.dataset_name is None else load_dataset(self.dataset_name)


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        name="mlp-digits",
        description="MLP 64-64-32-10 (ReLU) on 8x8 scikit-learn digits, flattened",
        input_shape=(1, 64),
        num_classes=10,
        trained=True,
        factory=MlpDigits,
        dataset_name="digits-flat",
        input_kind="data",
    ),
    ModelEntry(
        name="cnn-digits",
        description="CNN conv3x3(8)-conv3x3(16)-maxpool2-linear on 8x8 scikit-learn digits",
        input_shape=(1, 1, 8, 8),
        num_classes=10,
        trained=True,
        factory=CnnDigits,
        dataset_name="digits-image",
        input_kind="data",
    ),
    ModelEntry(
        name="jsc-mlp",
        description="MLP 16-64-32-32-5 (ReLU) on synthetic jet-substructure features",
        input_shape=(1, 16),
        num_classes=5,
        trained=True,
        factory=JscMlp,
        dataset_name="jsc-synthetic",
        input_kind="data",
    ),
    ModelEntry(
        name="resnet-block",
        description="ResNet basic block, 16 ch 16x16, conv-BN-ReLU-conv-BN + identity, ReLU "
        "(untrained, non-trivial BN)",
        input_shape=(1, 16, 16, 16),
        num_classes=None,
        trained=False,
        factory=ResNetBlock,
        input_kind="relu-normal",
        nontrivial_bn=True,
    ),
    ModelEntry(
        name="tiny-transformer",
        description="Post-norm transformer encoder block, seq 16, embed 32, 2 heads, MLP 64 "
        "(untrained)",
        input_shape=(1, 16, 32),
        num_classes=None,
        trained=False,
        factory=TinyTransformer,
        input_kind="normal",
    ),
    ModelEntry(
        name="resnet18",
        description="ImageNet ResNet-18, 3x224x224 -> 1000 (untrained, non-trivial BN; "
        "mapper benchmarks)",
        input_shape=(1, 3, 224, 224),
        num_classes=1000,
        trained=False,
        factory=ResNet18,
        input_kind="normal",
        nontrivial_bn=True,
    ),
)

_REGISTRY: dict[str, ModelEntry] = {e.name: e for e in _ENTRIES}


def names() -> list[str]:
    """Sorted names of all zoo models."""
    return sorted(_REGISTRY)


def get(name: str) -> ModelEntry:
    """The zoo entry called ``name``; raises ``UnknownModelError`` listing known names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(names())}"
        ) from None
