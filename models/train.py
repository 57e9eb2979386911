"""Train the zoo's trained models and write their checkpoints.

``python -m models.train [NAME ...] [--seed S] [--epochs E] [--out DIR]``
trains ``mlp-digits``, ``cnn-digits`` and ``jsc-mlp`` (default: all three)
with Adam on CPU, deterministically (seeded init and shuffling, deterministic
algorithms, one thread), and writes ``<name>.pt`` (the state_dict) and
``<name>.json`` (the training record: seed, hyper-parameters, float accuracies,
torch version, a hash of the weights) to ``models/checkpoints/``.

:func:`fit` is the one training loop: the checkpoints are trained with it, and
pruning's fine-tuning (:mod:`models.finetune`) runs it on the pruned copy.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.datasets import Dataset
from models.metrics import evaluate
from models.registry import CHECKPOINT_DIR, get


@dataclass(frozen=True)
class TrainConfig:
    """Adam hyper-parameters for one model: ``epochs`` over shuffled mini-batches."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0


TRAIN_CONFIGS: dict[str, TrainConfig] = {
    "mlp-digits": TrainConfig(epochs=60, lr=3e-3, batch_size=32, weight_decay=1e-4),
    "cnn-digits": TrainConfig(epochs=40, lr=3e-3, batch_size=32, weight_decay=1e-4),
    "jsc-mlp": TrainConfig(epochs=20, lr=1e-3, batch_size=64, weight_decay=1e-3),
}


@contextlib.contextmanager
def deterministic_torch(threads: int = 1) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count; restores both afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
        batch_size: int, weight_decay: float = 0.0, seed: int = 0,
        masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Train ``model`` in place on inputs ``x`` and class ids ``y``; returns it in eval mode.

    Adam (``lr``, ``weight_decay``) on cross-entropy, ``epochs`` passes over
    mini-batches of ``batch_size`` in the order of ``torch.randperm`` drawn from
    a ``torch.Generator`` seeded with ``seed``, under :func:`deterministic_torch`:
    the same model, data, hyper-parameters and seed give bit-identical weights.
    ``masks``: parameter name -> tensor of 0/1 in the parameter's dtype; masked
    gradient entries are zeroed before each step and masked weights after it.
    """
    params = dict(model.named_parameters())
    masks = masks or {}
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    with deterministic_torch():
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), batch_size):
                idx = perm[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[idx]), y[idx]).backward()
                for name, m in masks.items():
                    params[name].grad.mul_(m)
                opt.step()
                with torch.no_grad():
                    for name, m in masks.items():
                        params[name].mul_(m)
    return model.eval()


def train_model(model: nn.Module, dataset: Dataset, config: TrainConfig, seed: int) -> nn.Module:
    """Train ``model`` in place on ``dataset``'s train split with :func:`fit`; returns it
    in eval mode. The same model init, data, config and seed give bit-identical weights."""
    if config.epochs < 0 or config.batch_size <= 0 or config.lr <= 0:
        raise ValueError(f"invalid training config {config}: need epochs >= 0, batch, lr > 0")
    x = torch.from_numpy(np.array(dataset.x_train, dtype=np.float32))
    y = torch.from_numpy(np.array(dataset.y_train, dtype=np.int64))
    return fit(model, x, y, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
               weight_decay=config.weight_decay, seed=seed)


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the state_dict's names, dtypes, shapes and raw bytes (in order)."""
    h = hashlib.sha256()
    for key, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def train(
    name: str,
    seed: int = 0,
    epochs: int | None = None,
    out_dir: Path | None = CHECKPOINT_DIR,
) -> tuple[nn.Module, dict]:
    """Build ``name`` from ``seed``, train it, and (if ``out_dir``) write ``.pt`` + ``.json``.

    ``epochs`` overrides the model's default (``TRAIN_CONFIGS``). Returns the
    trained eval-mode model and its training record.
    """
    if name not in TRAIN_CONFIGS:
        raise ValueError(
            f"model {name!r} has no training recipe; trainable models: "
            f"{', '.join(sorted(TRAIN_CONFIGS))}"
        )
    entry = get(name)
    config = TRAIN_CONFIGS[name]
    if epochs is not None:
        config = TrainConfig(epochs, config.lr, config.batch_size, config.weight_decay)
    dataset = entry.dataset()
    model = train_model(entry.build(seed=seed), dataset, config, seed)
    record = {
        "name": name,
        "seed": int(seed),
        "optimizer": "Adam",
        **asdict(config),
        "dataset": dataset.name,
        "n_train": len(dataset.y_train),
        "n_test": len(dataset.y_test),
        "train_accuracy": evaluate(model, dataset, "train"),
        "test_accuracy": evaluate(model, dataset, "test"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_sha256": weights_sha256(model),
        "torch_version": torch.__version__,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out_dir / f"{name}.pt")
        (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return model, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"models (default: {', '.join(TRAIN_CONFIGS)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the default epochs")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    args = parser.parse_args(argv)
    for name in args.names or list(TRAIN_CONFIGS):
        if name not in TRAIN_CONFIGS:
            parser.error(f"cannot train {name!r}; trainable: {', '.join(sorted(TRAIN_CONFIGS))}")
    for name in args.names or list(TRAIN_CONFIGS):
        _, rec = train(name, seed=args.seed, epochs=args.epochs, out_dir=args.out)
        print(
            f"{name}: {rec['epochs']} epochs, train acc {rec['train_accuracy']:.4f}, "
            f"test acc {rec['test_accuracy']:.4f} -> {args.out / (name + '.pt')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
