"""MobileNetV2 (mobilenet_v2) with a width multiplier.

Sandler, Howard, Zhu, Zhmoginov, Chen. "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018, Table 2: a 3x3/2 stem, 17 inverted residual blocks (1x1 expand,
3x3 depthwise, linear 1x1 project; residual when stride 1 and shapes match), a 1x1 conv to
1280 channels, global average pooling and Dropout + Linear.

Module names follow torchvision (``features.N.conv...``, ``classifier.1``), so a torchvision
``state_dict`` loads as is. ``width_mult`` scales every layer, rounded to multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.zoo import register_model

# (expansion t, output channels c, repeats n, first stride s) from Table 2 of the paper.
_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never dropping below 90% of ``v``.

    Example: ``_make_divisible(32 * 0.35)`` is 16 (11.2 rounds to 8, which is < 90%, so up).
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    """Conv + BN + ReLU6 as one Sequential (indices 0/1/2 match torchvision's state_dict)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1, linear), with a residual if shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_ch, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),  # depthwise
            nn.Conv2d(hidden, out_ch, 1, bias=False),  # linear bottleneck: no activation
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: ``features`` (stem, inverted residuals, 1x1 head conv) and ``classifier``."""

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2, round_nearest: int = 8
    ):
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult!r}")
        in_ch = _make_divisible(32 * width_mult, round_nearest)
        # The paper keeps the 1280-channel head at width < 1 (it matters for accuracy).
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU(3, in_ch, stride=2)]
        for t, c, n, s in _SETTINGS:
            out_ch = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, expand_ratio=t))
                in_ch = out_ch
        features.append(ConvBNReLU(in_ch, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # PyTorch's fan_out ignores groups, so for a depthwise conv it is 9 * channels
                # and activations would shrink ~100x per block; fan_in (9) keeps them O(1).
                depthwise = m.groups > 1 and m.groups == m.in_channels
                nn.init.kaiming_normal_(m.weight, mode="fan_in" if depthwise else "fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _create_mobilenet_v2(num_classes: int, width_mult: float) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=float(width_mult))


@register_model(
    "mobilenet_v2",
    input_size=224,
    description="MobileNetV2 (Sandler et al. 2018), 3.5M params at width 1.0 and 1000 classes",
    family="mobilenet",
)
def mobilenet_v2(num_classes: int = 10, width_mult: float = 1.0) -> nn.Module:
    """MobileNetV2. Example: ``mobilenet_v2(num_classes=1000, width_mult=0.5)``."""
    return _create_mobilenet_v2(num_classes, width_mult)
