"""``fervid_cnn``: a plain five-block CNN for training from scratch on CPUs, registered in timm.

Mobile backbones built for ImageNet (LCNet, MobileNetV3) and even ResNet-10 learn slowly from
scratch on a few tens of thousands of 64x64 faces and overfit the people they see; on the
synthetic demo data this small plain network (conv-BN-ReLU blocks, max pooling, 0.4M
parameters) generalises to new people better at the same CPU budget (CHANGELOG.md, 2026-11). It is
registered with timm, so ``model.backbone: fervid_cnn`` works like any timm name; it has no
pretrained weights. fervid builds it without importing timm (:func:`create`), which keeps
``fervid predict`` quick to start; :func:`register_with_timm` adds it to timm's registry
whenever fervid hands a name to timm.
"""

from __future__ import annotations

from torch import nn

WIDTHS = (24, 48, 96, 128, 192)


class SmallCNN(nn.Module):
    """Blocks of 3x3 conv + BatchNorm + ReLU, each but the last followed by 2x2 max pooling,
    then global average pooling. ``forward`` returns logits, or the pooled features when
    ``num_classes`` is 0 (timm's convention)."""

    def __init__(
        self,
        widths: tuple[int, ...] = WIDTHS,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for index, width in enumerate(widths):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if index < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = channels
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(channels, num_classes) if num_classes else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, images):
        return self.features(images)

    def forward(self, images):
        return self.head(self.drop(self.pool(self.forward_features(images))))


NAMES = ("fervid_cnn",)


def create(name: str, pretrained: bool = False, **kwargs) -> SmallCNN:
    """``fervid_cnn`` with timm's arguments (``num_classes``, ``in_chans``, ``drop_rate``)."""
    if name not in NAMES:
        raise ValueError(f"unknown fervid backbone {name!r}")
    if pretrained:
        raise ValueError("fervid_cnn has no pretrained weights; set model.pretrained=false")
    options = {k: kwargs[k] for k in ("num_classes", "in_chans", "drop_rate") if k in kwargs}
    return SmallCNN(**options)


def register_with_timm() -> None:
    """``timm.create_model("fervid_cnn")`` works from now on (idempotent)."""
    from timm.models import is_model, register_model

    if not is_model("fervid_cnn"):

        def fervid_cnn(pretrained: bool = False, **kwargs) -> SmallCNN:
            return create("fervid_cnn", pretrained, **kwargs)

        register_model(fervid_cnn)
