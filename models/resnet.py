"""Residual networks: the torchvision-style ``BasicBlock`` and ImageNet ResNet-18.

Parameter names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` ...), so a torchvision ``resnet18`` state_dict loads
unchanged. Unlike torchvision, every ReLU is its own module (``relu1``,
``relu2``) so each ``torch.fx`` node has its own name.
"""

from __future__ import annotations

import torch
from torch import nn


class Downsample(nn.Sequential):
    """Projection shortcut: ``0`` = Conv2d(c_in, c_out, 1, stride, bias=False), ``1`` = BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
        )


class BasicBlock(nn.Module):
    """ResNet basic block (``c_in`` -> ``planes`` channels, spatial size / ``stride``).

    forward::

        out = relu1(bn1(conv1(x)))       # conv1: 3x3, stride, pad 1, bias=False
        out = bn2(conv2(out))            # conv2: 3x3, stride 1, pad 1, bias=False
        identity = downsample(x) if present else x
        return relu2(out + identity)

    ``downsample`` (a ``Downsample``: 1x1 conv + BN) exists iff ``stride != 1``
    or ``c_in != planes``; otherwise the attribute is ``None``.
    """

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.downsample = (
            Downsample(c_in, planes, stride) if stride != 1 or c_in != planes else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + identity)


class ResNetBlock(BasicBlock):
    """``resnet-block``: one identity ``BasicBlock(16, 16, stride=1)``.

    Input ``(B, 16, 16, 16)``; conv1/conv2 are 3x3, 16->16, pad 1, bias=False;
    every intermediate and the output are ``(B, 16, 16, 16)``. ``downsample`` is
    ``None`` (identity skip).
    """

    def __init__(self, channels: int = 16):
        super().__init__(channels, channels, stride=1)


class ResNet18(nn.Module):
    """``resnet18``: standard ImageNet ResNet-18 (no torchvision dependency).

    =========  ====================================================  ==================
    attribute  module                                                output shape
    =========  ====================================================  ==================
    (input)                                                          (B, 3, 224, 224)
    conv1      Conv2d(3, 64, 7, stride 2, pad 3, bias=False)         (B, 64, 112, 112)
    bn1, relu  BatchNorm2d(64), ReLU                                 (B, 64, 112, 112)
    maxpool    MaxPool2d(3, stride 2, pad 1)                         (B, 64, 56, 56)
    layer1     2 x BasicBlock(64 -> 64)                              (B, 64, 56, 56)
    layer2     BasicBlock(64 -> 128, stride 2, downsample), + 1      (B, 128, 28, 28)
    layer3     BasicBlock(128 -> 256, stride 2, downsample), + 1     (B, 256, 14, 14)
    layer4     BasicBlock(256 -> 512, stride 2, downsample), + 1     (B, 512, 7, 7)
    avgpool    AdaptiveAvgPool2d(1)                                  (B, 512, 1, 1)
    flatten    Flatten                                               (B, 512)
    fc         Linear(512, num_classes)                              (B, 1000)
    =========  ====================================================  ==================

    ``layerN`` are ``nn.Sequential`` of two ``BasicBlock`` (``layerN.0``, ``layerN.1``).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))
