"""CIFAR-style VGG with batch norm (vgg11_bn, vgg16_bn), the Network Slimming family.

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (the layer configurations A and D); CIFAR variant as in Liu et al. "Learning
Efficient Convolutional Networks through Network Slimming", ICCV 2017: every conv is
followed by BN (whose scales slimming penalises) and ReLU, the last max pool is dropped,
and a global average pool feeds a single ``Linear(512, num_classes)``.

The adaptive average pool makes any input of at least 16x16 work; the model is designed
for 32x32.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.zoo import register_model

# Numbers are conv output channels, "M" a 2x2 max pool (Network Slimming's ``defaultcfg``).
_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}


class VGG(nn.Module):
    """``features`` (conv-BN-ReLU and max pools), ``avgpool``, ``classifier`` (one Linear)."""

    def __init__(self, cfg: list[int | str], num_classes: int = 10):
        super().__init__()
        self.features = self._make_features(cfg)
        last = [c for c in cfg if c != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(int(last), num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                # Network Slimming initialises BN scales to 0.5; 1.0 is the usual default
                # and keeps the untrained model's activations well scaled for tests.
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_features(cfg: list[int | str]) -> nn.Sequential:
        layers: list[nn.Module] = []
        in_ch = 3
        for c in cfg:
            if c == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # No conv bias: the following BN's shift makes it redundant.
                layers += [
                    nn.Conv2d(in_ch, int(c), 3, padding=1, bias=False),
                    nn.BatchNorm2d(int(c)),
                    nn.ReLU(inplace=True),
                ]
                in_ch = int(c)
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _create_vgg(arch: str, num_classes: int) -> VGG:
    return VGG(_CFGS[arch], num_classes=num_classes)


@register_model(
    "vgg11_bn",
    input_size=32,
    description="CIFAR VGG-11 with BN (Network Slimming), 9.2M params",
    family="vgg",
)
def vgg11_bn(num_classes: int = 10) -> nn.Module:
    """CIFAR VGG-11-BN. Example: ``vgg11_bn(num_classes=10)(torch.randn(1, 3, 32, 32))``."""
    return _create_vgg("vgg11", num_classes)


@register_model(
    "vgg16_bn",
    input_size=32,
    description="CIFAR VGG-16 with BN (Network Slimming), 14.7M params",
    family="vgg",
)
def vgg16_bn(num_classes: int = 10) -> nn.Module:
    """CIFAR VGG-16-BN. Example: ``vgg16_bn(num_classes=100)``."""
    return _create_vgg("vgg16", num_classes)
