"""Batched image augmentation on tensors (runs wherever the batch is: CPU or GPU)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image


def weak_augment(
    images: torch.Tensor, generator: torch.Generator, max_shift: float = 0.125
) -> torch.Tensor:
    """Random horizontal flip and a random translation of up to ``max_shift`` of the side
    (reflect padding, then a random crop back to size), per sample, on a uint8 batch (B,3,H,W).
    """
    batch, _, height, width = images.shape
    flip = torch.rand(batch, generator=generator) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
    pad = round(max_shift * height)
    if pad == 0:
        return images
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator).to(images.device)
    rows = (dy.view(-1, 1) + torch.arange(height, device=images.device)).view(batch, 1, height, 1)
    cols = (dx.view(-1, 1) + torch.arange(width, device=images.device)).view(batch, 1, 1, width)
    channels = torch.arange(3, device=images.device).view(1, 3, 1, 1)
    batch_index = torch.arange(batch, device=images.device).view(-1, 1, 1, 1)
    shifted = padded[batch_index, channels, rows, cols]
    return shifted.to(images.dtype)


def _rand(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _signed(generator: torch.Generator) -> float:
    return 1.0 if _rand(generator) < 0.5 else -1.0


# RandAugment-style operations (FixMatch's list); each takes a PIL image, a magnitude in [0, 1]
# and a generator. torchvision's functional ops dispatch to PIL's kernels, which are several
# times faster than tensor kernels on one CPU thread for small images.
STRONG_OPS = {
    "identity": lambda img, m, g: img,
    "autocontrast": lambda img, m, g: TF.autocontrast(img),
    "equalize": lambda img, m, g: TF.equalize(img),
    "brightness": lambda img, m, g: TF.adjust_brightness(img, 1 + 0.9 * m * _signed(g)),
    "color": lambda img, m, g: TF.adjust_saturation(img, 1 + 0.9 * m * _signed(g)),
    "contrast": lambda img, m, g: TF.adjust_contrast(img, 1 + 0.9 * m * _signed(g)),
    "sharpness": lambda img, m, g: TF.adjust_sharpness(img, 1 + 0.9 * m * _signed(g)),
    "posterize": lambda img, m, g: TF.posterize(img, 8 - round(4 * m)),
    "solarize": lambda img, m, g: TF.solarize(img, 255 - round(255 * m)),
    "rotate": lambda img, m, g: TF.rotate(img, 30 * m * _signed(g)),
    "shear_x": lambda img, m, g: TF.affine(
        img, angle=0, translate=[0, 0], scale=1, shear=[17 * m * _signed(g), 0]
    ),
    "shear_y": lambda img, m, g: TF.affine(
        img, angle=0, translate=[0, 0], scale=1, shear=[0, 17 * m * _signed(g)]
    ),
    "translate_x": lambda img, m, g: TF.affine(
        img, angle=0, translate=[round(0.3 * m * img.width * _signed(g)), 0], scale=1, shear=[0, 0]
    ),
    "translate_y": lambda img, m, g: TF.affine(
        img, angle=0, translate=[0, round(0.3 * m * img.height * _signed(g))], scale=1, shear=[0, 0]
    ),
}


class StrongAugment:
    """Strong view (FixMatch): ``num_ops`` RandAugment operations, each with a random magnitude
    drawn per sample, then Cutout (a grey square of up to ``cutout`` of the side) and a flip.
    Works on one uint8 image (3,H,W); runs in DataLoader workers."""

    def __init__(self, num_ops: int = 2, cutout: float = 0.5):
        self.num_ops = num_ops
        self.cutout = cutout
        self.names = list(STRONG_OPS)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if _rand(generator) < 0.5:
            image = image.flip(-1)
        picture = Image.fromarray(image.permute(1, 2, 0).numpy())
        for _ in range(self.num_ops):
            name = self.names[int(torch.randint(len(self.names), (), generator=generator))]
            picture = STRONG_OPS[name](picture, _rand(generator), generator)
        image = torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)
        return cutout(image, self.cutout * _rand(generator), generator)


def cutout(image: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Grey out a square of side ``fraction`` * width at a random centre."""
    height, width = image.shape[-2:]
    side = round(fraction * width)
    if side == 0:
        return image
    cy = int(torch.randint(height, (), generator=generator))
    cx = int(torch.randint(width, (), generator=generator))
    image = image.clone()
    image[
        :, max(cy - side // 2, 0) : cy + side // 2 + 1, max(cx - side // 2, 0) : cx + side // 2 + 1
    ] = 127
    return image
