"""A ShuffleNetV2-style unit: channel split (``chunk``), a branch with a depthwise and a
grouped convolution, concatenation, channel shuffle, and a channel slice before the head.

    hwgen compile examples/shuffle_unit.py:ShuffleUnit --input-shape 1,2,6,6 -o build/shuffle

Every op runs on the accelerator: the shuffle costs no instruction (the tensor is stored
with its channels permuted: ``mapping.passes.channel_layout``), the grouped conv runs as
two dense convs (``mapping.passes.group_split``).
"""

import torch
from torch import nn


def shuffle(x, groups):
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: chunk, a branch (1x1, depthwise 3x3, grouped 1x1), concat,
    channel shuffle; then a channel slice and a head."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(2, 8, 3, padding=1)
        self.b1 = nn.Conv2d(4, 4, 1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.b2 = nn.Conv2d(4, 4, 1, groups=2)
        self.fc = nn.Linear(6 * 3 * 3, 3)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = torch.relu(self.c0(x))
        x1, x2 = x.chunk(2, dim=1)
        y = torch.relu(self.b2(self.bn(self.dw(torch.relu(self.b1(x2))))))
        x = shuffle(torch.cat((x1, y), dim=1), 2)
        x = self.pool(x)[:, 1:7]
        return self.fc(torch.flatten(x, 1))
