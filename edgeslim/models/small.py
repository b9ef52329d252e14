"""Tiny models, one per coupled structure a structured pruner has to get right.

Each is a few hundred thousand parameters at most and takes 32x32 inputs, so a test can
prune and export all of them in seconds. The structures, and the papers they come from:

- ``densenet_tiny``: channel concatenation that grows through a block, transitions
  (Huang et al. "Densely Connected Convolutional Networks", CVPR 2017; DenseNet-BC).
- ``inception_tiny``: parallel branches concatenated, including a pooling branch
  (Szegedy et al. "Going Deeper with Convolutions", CVPR 2015).
- ``resnext_tiny``: grouped 3x3 convolutions (groups=4) inside residual bottlenecks
  (Xie et al. "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017).
- ``se_resnet_tiny``: squeeze-and-excitation channel gating multiplied into residual blocks
  (Hu et al. "Squeeze-and-Excitation Networks", CVPR 2018).
- ``plain_cnn``: convs with bias and no BatchNorm, and a flatten over a 2x2 spatial map into
  a two-layer Linear head (LeCun et al. "Gradient-Based Learning Applied to Document
  Recognition", Proc. IEEE 1998, in spirit).

Rule for every model here: no channel count appears in ``forward`` (no ``view(-1, 64)``,
no slicing by a constant), so a pruned model still runs.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeslim.models.zoo import register_model


def _conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    # Option-B shortcut: a 1x1 conv + BN wherever the residual's shape changes.
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


# --- DenseNet -------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (4k) -> BN-ReLU-Conv3x3 (k), output concatenated onto the input."""

    def __init__(self, in_ch: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, 4 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.norm1(x)))
        out = self.conv2(self.relu(self.norm2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Module):
    """BN-ReLU-Conv1x1 (compression 0.5) then 2x2 average pool."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNetTiny(nn.Module):
    """DenseNet-BC for 32x32: 3 dense blocks of ``layers_per_block`` layers, growth ``growth``."""

    def __init__(self, num_classes: int = 10, growth: int = 12, layers_per_block: int = 4):
        super().__init__()
        ch = 2 * growth
        blocks: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1, bias=False)]
        for i in range(3):
            for _ in range(layers_per_block):
                blocks.append(DenseLayer(ch, growth))
                ch += growth
            if i < 2:
                blocks.append(Transition(ch, ch // 2))
                ch //= 2
        blocks += [nn.BatchNorm2d(ch), nn.ReLU()]
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# --- Inception ------------------------------------------------------------------------


class InceptionBlock(nn.Module):
    """Four branches (1x1; 1x1->3x3; 1x1->3x3->3x3; maxpool->1x1) concatenated on channels."""

    def __init__(self, in_ch: int, b1: int, b3_red: int, b3: int, b5_red: int, b5: int, pool_proj: int):
        super().__init__()
        self.branch1 = _conv_bn_relu(in_ch, b1, 1)
        self.branch3 = nn.Sequential(_conv_bn_relu(in_ch, b3_red, 1), _conv_bn_relu(b3_red, b3, 3))
        # Two stacked 3x3 convs stand in for the 5x5 (as in Inception-v2/v3).
        self.branch5 = nn.Sequential(
            _conv_bn_relu(in_ch, b5_red, 1), _conv_bn_relu(b5_red, b5, 3), _conv_bn_relu(b5, b5, 3)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv_bn_relu(in_ch, pool_proj, 1)
        )
        self.out_channels = b1 + b3 + b5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class InceptionTiny(nn.Module):
    """Stem, two Inception blocks, a max pool, two more blocks, global pool, ``fc``."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = _conv_bn_relu(3, 32, 3)
        a = InceptionBlock(32, 16, 16, 24, 8, 12, 12)  # -> 64
        b = InceptionBlock(a.out_channels, 24, 24, 32, 12, 16, 16)  # -> 88
        c = InceptionBlock(b.out_channels, 32, 32, 48, 16, 24, 24)  # -> 128
        d = InceptionBlock(c.out_channels, 40, 40, 56, 16, 32, 32)  # -> 160
        self.blocks = nn.Sequential(a, b, nn.MaxPool2d(3, stride=2, padding=1), c, d)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(d.out_channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.blocks(self.stem(x))), 1))


# --- ResNeXt --------------------------------------------------------------------------


class ResNeXtBlock(nn.Module):
    """1x1 reduce -> grouped 3x3 (``groups`` paths) -> 1x1 expand, plus shortcut."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 4, bottleneck_ratio: float = 0.5
    ):
        super().__init__()
        width = int(out_ch * bottleneck_ratio)
        self.conv1 = _conv_bn_relu(in_ch, width, 1)
        self.conv2 = _conv_bn_relu(width, width, 3, stride=stride, groups=groups)
        self.conv3 = nn.Sequential(nn.Conv2d(width, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = _projection(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNeXtTiny(nn.Module):
    """Three stages (64/128/256 channels) of ``blocks_per_stage`` ResNeXt blocks, groups=4."""

    def __init__(self, num_classes: int = 10, groups: int = 4, blocks_per_stage: int = 1):
        super().__init__()
        self.stem = _conv_bn_relu(3, 32, 3)
        layers: list[nn.Module] = []
        in_ch = 32
        for i, out_ch in enumerate((64, 128, 256)):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(ResNeXtBlock(in_ch, out_ch, stride=stride, groups=groups))
                in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layers(self.stem(x))), 1))


# --- SE-ResNet ------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid, multiplied into the input.

    1x1 convs on the pooled map instead of Linear layers avoid a reshape between the
    gate and the input, so nothing in ``forward`` depends on the channel count.
    """

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SEBasicBlock(nn.Module):
    """CIFAR basic block with SE applied to the residual branch before the addition."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv_bn_relu(in_ch, out_ch, 3, stride=stride)
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch)
        )
        self.se = SqueezeExcite(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = _projection(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se(self.conv2(self.conv1(x))) + identity)


class SEResNetTiny(nn.Module):
    """Three stages (16/32/64 channels) of ``blocks_per_stage`` SE basic blocks."""

    def __init__(self, num_classes: int = 10, blocks_per_stage: int = 2):
        super().__init__()
        self.stem = _conv_bn_relu(3, 16, 3)
        layers: list[nn.Module] = []
        in_ch = 16
        for i, out_ch in enumerate((16, 32, 64)):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(SEBasicBlock(in_ch, out_ch, stride=stride))
                in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.layers(self.stem(x))), 1))


# --- Plain CNN ------------------------------------------------------------------------


class PlainCNN(nn.Module):
    """Conv(bias)-ReLU-MaxPool x3, 2x2 average pool, flatten, Linear-ReLU-Linear; no BatchNorm."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        # A 2x2 map (not 1x1) makes flatten interleave channels and positions, which a
        # pruner must map onto the first Linear's input features (4 per channel).
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(128 * 2 * 2, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes)
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _init_weights(model: nn.Module) -> None:
    # He init keeps activations O(1) through the untrained nets (BN layers start at identity).
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=5**0.5)
            nn.init.zeros_(m.bias)


# --- Builders and entry points ----------------------------------------------------------

_CLASSES: dict[str, type[nn.Module]] = {
    "densenet_tiny": DenseNetTiny,
    "inception_tiny": InceptionTiny,
    "resnext_tiny": ResNeXtTiny,
    "se_resnet_tiny": SEResNetTiny,
    "plain_cnn": PlainCNN,
}


def _create_small(arch: str, num_classes: int) -> nn.Module:
    return _CLASSES[arch](num_classes=num_classes)


@register_model(
    "densenet_tiny",
    input_size=32,
    description="DenseNet-BC, growth 12, 3x4 layers (concat)",
    family="small",
)
def densenet_tiny(num_classes: int = 10) -> nn.Module:
    """Tiny DenseNet-BC. Example: ``densenet_tiny(num_classes=10)(torch.randn(1, 3, 32, 32))``."""
    return _create_small("densenet_tiny", num_classes)


@register_model(
    "inception_tiny",
    input_size=32,
    description="Four Inception blocks (branch concat)",
    family="small",
)
def inception_tiny(num_classes: int = 10) -> nn.Module:
    """Tiny Inception network. Example: ``inception_tiny(num_classes=10)``."""
    return _create_small("inception_tiny", num_classes)


@register_model(
    "resnext_tiny",
    input_size=32,
    description="ResNeXt bottlenecks, groups=4 (grouped conv)",
    family="small",
)
def resnext_tiny(num_classes: int = 10) -> nn.Module:
    """Tiny ResNeXt. Example: ``resnext_tiny(num_classes=10)``."""
    return _create_small("resnext_tiny", num_classes)


@register_model(
    "se_resnet_tiny",
    input_size=32,
    description="CIFAR ResNet-14 with squeeze-and-excitation (gating)",
    family="small",
)
def se_resnet_tiny(num_classes: int = 10) -> nn.Module:
    """Tiny SE-ResNet. Example: ``se_resnet_tiny(num_classes=10)``."""
    return _create_small("se_resnet_tiny", num_classes)


@register_model(
    "plain_cnn",
    input_size=32,
    description="3 conv layers with bias, no BN, 2-layer MLP head",
    family="small",
)
def plain_cnn(num_classes: int = 10) -> nn.Module:
    """Plain CNN without BatchNorm. Example: ``plain_cnn(num_classes=10)``."""
    return _create_small("plain_cnn", num_classes)
