"""CIFAR-style ResNets (resnet20, resnet56).

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016,
Section 4.2: a 3x3 stem, three stages of ``n`` basic blocks with 16/32/64 channels
(depth = 6n + 2), global average pooling and a linear classifier, on 32x32 inputs.

The paper's CIFAR networks use option A (zero-padded identity) shortcuts; we use option B
(1x1 conv + BN projection where the shape changes) because zero padding hard-codes channel
counts in ``forward`` and cannot follow a pruned channel dimension. Option B adds ~0.003M
parameters (resnet20: 0.272M instead of 0.270M).
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.zoo import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a (projected where needed) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            # Option B: a learned projection keeps every channel count a module attribute.
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet of depth ``6n + 2`` for 32x32 images; layers named ``conv1, bn1, layer1..3, fc``."""

    def __init__(self, depth: int, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[0], n, stride=1)
        self.layer2 = self._make_layer(widths[1], n, stride=2)
        self.layer3 = self._make_layer(widths[2], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)
        _init_weights(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.in_planes, planes, stride)]
        self.in_planes = planes
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        # flatten(x, 1), not view(-1, 64): the channel count changes after pruning.
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _init_weights(model: nn.Module) -> None:
    # Kaiming for convs as in the paper; BN starts as identity.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=5**0.5)
            nn.init.zeros_(m.bias)


def _create_resnet_cifar(depth: int, num_classes: int) -> CifarResNet:
    return CifarResNet(depth, num_classes=num_classes)


@register_model(
    "resnet20",
    input_size=32,
    description="CIFAR ResNet-20 (He et al. 2016), 0.27M params",
    family="resnet_cifar",
)
def resnet20(num_classes: int = 10) -> nn.Module:
    """CIFAR ResNet-20. Example: ``resnet20(num_classes=10)(torch.randn(1, 3, 32, 32))``."""
    return _create_resnet_cifar(20, num_classes)


@register_model(
    "resnet56",
    input_size=32,
    description="CIFAR ResNet-56 (He et al. 2016), 0.86M params",
    family="resnet_cifar",
)
def resnet56(num_classes: int = 10) -> nn.Module:
    """CIFAR ResNet-56. Example: ``resnet56(num_classes=100)``."""
    return _create_resnet_cifar(56, num_classes)
