"""An EfficientNet / MobileNetV3-style block with squeeze-excitation: expand 1x1 +
Hardswish, depthwise 3x3 + BatchNorm + ReLU, the squeeze-excitation gate (global average,
1x1 reduce + ReLU, 1x1 expand + Hardsigmoid, ``s * y``), project 1x1, residual add; then a
global average, SiLU written out as ``x * sigmoid(x)`` and a linear head.

    hwgen compile examples/se_block.py:SEBlock --input-shape 1,3,8,8 -o build/se

Every op runs on the accelerator: both multiplies of two tensors (the gate, one value per
channel, and the same-shape product of the SiLU) on the element-wise engine
(``hwgen.compiler.mul_layer``).
"""

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class SEBlock(nn.Module):
    """MBConv with squeeze-excitation, global average pooling, SiLU and a classifier."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(8, 16, 1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn = nn.BatchNorm2d(16)
        self.se_reduce = nn.Conv2d(16, 4, 1)
        self.se_expand = nn.Conv2d(4, 16, 1)
        self.project = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = F.hardswish(self.expand(x))
        y = torch.relu(self.bn(self.dw(y)))
        s = F.adaptive_avg_pool2d(y, 1)
        s = F.hardsigmoid(self.se_expand(torch.relu(self.se_reduce(s))))
        y = s * y  # the gate first, as torchvision's EfficientNet writes it
        x = x + self.project(y)
        x = x.mean((2, 3))
        x = x * torch.sigmoid(x)
        return self.fc(x)
