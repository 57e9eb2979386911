"""LeNet-5, written the way the PyTorch tutorial writes it ("Neural Networks", 60-minute blitz).

This file is an example of *your own model*: hwgen knows nothing about it. Compile it with::

    hwgen compile examples/lenet5.py:Net --input-shape 1,1,32,32 -o build/lenet5

``Net`` is a plain ``nn.Module`` class; hwgen instantiates it with no arguments. Pass trained
weights with ``--weights state_dict.pt`` (a ``torch.save(model.state_dict(), ...)`` file) and
calibration samples with ``--calib x.npy`` (float, shaped ``(N, 1, 32, 32)``).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    """Two 5x5 convolutions with max pooling, then three fully connected layers (10 classes)."""

    def __init__(self):
        super().__init__()
        # 1 input image channel, 6 output channels, 5x5 square convolution kernel
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        # an affine operation: y = Wx + b
        self.fc1 = nn.Linear(16 * 5 * 5, 120)  # 5*5 from the image dimension
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # max pooling over a (2, 2) window
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        # if the size is a square, you can specify with a single number
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)  # flatten all dimensions except the batch dimension
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x
