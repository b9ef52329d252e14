"""Models a user might bring as ``package.module:callable``, for the pruning tests.

- ``two_path_net``: a residual add, a channel concatenation and a per-channel
  ``nn.Parameter`` scale that no layer owns, all in one small net.
- ``sliced_net``: ``forward`` keeps the first 8 channels with a constant slice; pruning the
  conv before it would silently change which channels are kept.
- ``hardcoded_view_net``: ``forward`` reshapes with a constant channel count, so a pruned
  model cannot run.
- ``mixed_block_net``: a residual around expand -> depthwise -> squeeze-excite -> project,
  then a two-branch concatenation.
- ``grouped_inception_net``: an inception-style concat of grouped-conv branches.
"""

from __future__ import annotations

import torch
from torch import nn


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TwoPathNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = _cbr(3, 32)
        self.body = nn.Sequential(_cbr(32, 32), nn.Conv2d(32, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32))
        self.left = _cbr(32, 16, 2)
        self.right = nn.Sequential(nn.AvgPool2d(2), _cbr(32, 24))
        self.scale = nn.Parameter(torch.ones(1, 40, 1, 1))
        self.head = nn.Linear(40, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.body(x))
        x = torch.cat([self.left(x), self.right(x)], 1) * self.scale
        return self.head(x.mean((2, 3)))


class SlicedNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = _cbr(3, 16)
        self.conv2 = _cbr(8, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)[:, :8]
        return self.head(self.conv2(x).mean((2, 3)))


class HardcodedViewNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = _cbr(3, 16)
        self.conv2 = _cbr(16, 32)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x)).mean((2, 3))
        return self.head(x.view(-1, 32))


def two_path_net(num_classes: int = 10) -> nn.Module:
    return TwoPathNet(num_classes)


def sliced_net(num_classes: int = 10) -> nn.Module:
    return SlicedNet(num_classes)


def hardcoded_view_net(num_classes: int = 10) -> nn.Module:
    return HardcodedViewNet(num_classes)


class MixedBlockNet(nn.Module):
    """A residual block with a depthwise conv and squeeze-excite, then a two-branch concat."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = _cbr(3, 32)
        self.expand = _cbr(32, 64)
        self.dw = nn.Sequential(nn.Conv2d(64, 64, 3, 1, 1, groups=64, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.se_reduce, self.se_expand = nn.Conv2d(64, 16, 1), nn.Conv2d(16, 64, 1)
        self.project = nn.Sequential(nn.Conv2d(64, 32, 1, bias=False), nn.BatchNorm2d(32))
        self.left = _cbr(32, 32, 2)
        self.right = nn.Sequential(nn.MaxPool2d(2), _cbr(32, 48))
        self.head = nn.Linear(80, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.dw(self.expand(x))
        y = y * torch.sigmoid(self.se_expand(torch.relu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        x = torch.relu(x + self.project(y))
        x = torch.cat([self.left(x), self.right(x)], 1)
        return self.head(x.mean((2, 3)))


def mixed_block_net(num_classes: int = 10) -> nn.Module:
    return MixedBlockNet(num_classes)


class GroupedInceptionNet(nn.Module):
    """Inception-style block: a 1x1 branch beside grouped 3x3 branches (groups=4), concatenated.

    (A grouped conv *consuming* the concatenation is beyond Torch-Pruning 1.6.1: it indexes
    out of bounds, so the concat is mixed by a plain 1x1 conv here.)"""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = _cbr(3, 32)
        self.b1 = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.b5 = nn.Sequential(nn.Conv2d(32, 16, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(64, 64, 1, 2, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.mix(torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1))
        return self.head(x.mean((2, 3)))


def grouped_inception_net(num_classes: int = 10) -> nn.Module:
    return GroupedInceptionNet(num_classes)
