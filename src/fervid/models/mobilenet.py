"""timm's ``mobilenetv2_100`` rebuilt without importing timm, for loading trained models.

The demo recipe trains MobileNetV2 through timm. Importing timm imports torchvision's Python
package and ``torch._dynamo`` with it, which costs ``fervid predict`` about a second of start-up
on the development machine (docs/benchmarks.md). A model file already holds every tensor, so
inference needs only the network's shape: this module has timm's module names and order
(``conv_stem``, ``bn1``, ``blocks.S.B.conv_pw`` ...), a state dict trained with timm loads into it
strictly, and tests/models/test_frame_model.py pins that both give the same features. Training keeps
timm (its initialisation, its hub weights).
"""

from __future__ import annotations

import torch
from torch import nn

NAMES = ("mobilenetv2_100",)

# (expansion, output channels, blocks, stride of the first block) per stage, as in timm's
# ``_gen_mobilenet_v2`` at width 1.0; stage 0 is a depthwise-separable block
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
STEM, HEAD = 32, 1280


class BatchNormAct(nn.BatchNorm2d):
    """BatchNorm followed by ReLU6 (or nothing): timm's ``BatchNormAct2d``, same tensors."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__(channels)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


def conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw, self.bn1 = conv(cin, cin, 3, stride, cin), BatchNormAct(cin)
        self.conv_pw, self.bn2 = conv(cin, cout), BatchNormAct(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return out + x if self.skip else out


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.conv_pw, self.bn1 = conv(cin, mid), BatchNormAct(mid)
        self.conv_dw, self.bn2 = conv(mid, mid, 3, stride, mid), BatchNormAct(mid)
        self.conv_pwl, self.bn3 = conv(mid, cout), BatchNormAct(cout, act=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return out + x if self.skip else out


class MobileNetV2(nn.Module):
    """Stem, the seven stages, a 1x1 conv to 1280 channels, global average pooling: the pooled
    vector (timm's ``num_classes=0``)."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.conv_stem, self.bn1 = conv(in_chans, STEM, 3, 2), BatchNormAct(STEM)
        stages, cin = [], STEM
        for expansion, cout, count, stride in STAGES:
            blocks = []
            for index in range(count):
                step = stride if index == 0 else 1
                blocks.append(
                    DepthwiseSeparable(cin, cout, step)
                    if expansion == 1
                    else InvertedResidual(cin, cout, step, expansion)
                )
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head, self.bn2 = conv(cin, HEAD), BatchNormAct(HEAD)
        self.num_features = HEAD

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(images))
        x = self.bn2(self.conv_head(self.blocks(x)))
        return x.mean((2, 3))


def create(name: str, in_chans: int = 3) -> MobileNetV2:
    if name not in NAMES:
        raise ValueError(f"no timm-free build of {name!r}")
    return MobileNetV2(in_chans)
