"""Model zoo: a registry of PyTorch models by name, their data sets and training.

Usage::

    import models
    models.names()                       # sorted zoo names
    entry = models.get("mlp-digits")     # ModelEntry (UnknownModelError if unknown)
    model = entry.load()                 # eval-mode, trained checkpoint if shipped
    x = entry.example_input(seed=0)      # shape entry.input_shape
    acc = models.evaluate(model, entry.dataset())

All models are ``torch.fx``-symbolically-traceable: explicit named sub-modules
and plain tensor ops only (see each class docstring for its layer shapes).
Trained checkpoints are produced by ``python -m models.train [NAME ...]``.
"""

from models.datasets import Dataset, digits, jsc_synthetic, load_dataset
from models.metrics import evaluate, predict
from models.registry import ModelEntry, UnknownModelError, get, names

__all__ = [
    "Dataset",
    "ModelEntry",
    "UnknownModelError",
    "digits",
    "evaluate",
    "get",
    "jsc_synthetic",
    "load_dataset",
    "names",
    "predict",
]
