"""Small zoo networks: MLPs for digits and jet tagging, a CNN for 8x8 digits.

Every module is written with explicit, named sub-modules (no ``nn.Sequential``)
so that ``torch.fx`` node names are stable and readable: ``fc1``, ``relu1``, ...
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Attributes ``fc1 .. fcN`` (``nn.Linear``) and ``relu1 .. relu{N-1}``
    (``nn.ReLU``, one module per use); forward: ``fc1 relu1 fc2 relu2 ... fcN``
    (no activation after the last layer: the outputs are logits).
    Input ``(B, sizes[0])``, output ``(B, sizes[-1])``.
    """

    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        if len(sizes) < 2 or any(int(s) <= 0 for s in sizes):
            raise ValueError(f"MLP sizes must be >= 2 positive ints, got {sizes!r}")
        self.sizes = tuple(int(s) for s in sizes)
        self.num_layers = len(self.sizes) - 1
        for i in range(self.num_layers):
            setattr(self, f"fc{i + 1}", nn.Linear(self.sizes[i], self.sizes[i + 1]))
            if i + 1 < self.num_layers:
                setattr(self, f"relu{i + 1}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.num_layers):
            x = getattr(self, f"relu{i}")(getattr(self, f"fc{i}")(x))
        return getattr(self, f"fc{self.num_layers}")(x)


class MlpDigits(MLP):
    """``mlp-digits``: 64 -> 64 -> 32 -> 10 with ReLU between.

    fc1 Linear(64, 64), relu1, fc2 Linear(64, 32), relu2, fc3 Linear(32, 10).
    Input ``(B, 64)`` (8x8 digit, flattened, values in [0, 1]); output ``(B, 10)`` logits.
    """

    def __init__(self):
        super().__init__((64, 64, 32, 10))


class JscMlp(MLP):
    """``jsc-mlp``: 16 -> 64 -> 32 -> 32 -> 5 with ReLU between.

    fc1 Linear(16, 64), relu1, fc2 Linear(64, 32), relu2, fc3 Linear(32, 32),
    relu3, fc4 Linear(32, 5). Input ``(B, 16)`` standardised features; output
    ``(B, 5)`` logits.
    """

    def __init__(self):
        super().__init__((16, 64, 32, 32, 5))


class CnnDigits(nn.Module):
    """``cnn-digits``: two 3x3 convolutions, a 2x2 max-pool and a linear classifier.

    =========  ============================  ===============
    attribute  module                        output shape
    =========  ============================  ===============
    (input)                                  (B, 1, 8, 8)
    conv1      Conv2d(1, 8, 3, padding=1)    (B, 8, 8, 8)
    relu1      ReLU                          (B, 8, 8, 8)
    conv2      Conv2d(8, 16, 3, padding=1)   (B, 16, 8, 8)
    relu2      ReLU                          (B, 16, 8, 8)
    pool       MaxPool2d(2)                  (B, 16, 4, 4)
    flatten    Flatten                       (B, 256)
    fc         Linear(256, 10)               (B, 10) logits
    =========  ============================  ===============
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        x = self.flatten(self.pool(x))
        return self.fc(x)
