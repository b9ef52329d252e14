"""ImageNet-style ResNets (resnet18, resnet50).

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1:
a 7x7/2 stem and 3x3/2 max pool, four stages (64/128/256/512 base channels) of basic
(ResNet-18) or bottleneck (ResNet-50) blocks, global average pooling and ``fc``.

Module names and shapes follow torchvision (``conv1, bn1, layer1..4, fc, downsample``), so a
torchvision ``state_dict`` loads as is. Like torchvision ("ResNet v1.5") the bottleneck
strides in its 3x3 conv rather than the first 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.zoo import register_model


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs; used by ResNet-18/34."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4; used by ResNet-50/101/152."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ImageNet ResNet built from ``block`` and per-stage block counts ``layers``."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # flatten(x, 1) keeps working once pruning shrinks layer4's channels.
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _create_resnet(block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int) -> ResNet:
    return ResNet(block, layers, num_classes=num_classes)


@register_model(
    "resnet18",
    input_size=224,
    description="ImageNet ResNet-18 (He et al. 2016), 11.7M params at 1000 classes",
    family="resnet",
)
def resnet18(num_classes: int = 10) -> nn.Module:
    """ImageNet ResNet-18. Example: ``resnet18(num_classes=1000)(torch.randn(1, 3, 224, 224))``."""
    return _create_resnet(BasicBlock, [2, 2, 2, 2], num_classes)


@register_model(
    "resnet50",
    input_size=224,
    description="ImageNet ResNet-50 (He et al. 2016), 25.6M params at 1000 classes",
    family="resnet",
)
def resnet50(num_classes: int = 10) -> nn.Module:
    """ImageNet ResNet-50. Example: ``resnet50(num_classes=1000)``."""
    return _create_resnet(Bottleneck, [3, 4, 6, 3], num_classes)
