"""``fervid import onnx FILE.onnx``: an ONNX expression model (a user's download, e.g.
EmotiEffLib / HSEmotion's AffectNet models) as a fervid model file of kind ``onnx``
(:mod:`fervid.zoo.onnx_model`).

A preset says what the source's own code does to a face before the network sees it. For the
EmotiEffLib / HSEmotion files (``hsemotion_onnx.facial_emotions`` and its demos, Apache-2.0):
the detector's face box cut from the RGB frame with no margin, resized to 224x224 (``enet_b0``)
or 260x260 (``enet_b2``) with ``cv2.resize`` (bilinear, 8-bit), ``x / 255``, ImageNet mean/std,
NCHW; outputs are logits in the order Anger, Contempt, Disgust, Fear, Happiness, Neutral,
Sadness, Surprise (the 7-class files: without Contempt); the ``_va_mtl`` file adds valence and
arousal after them. Anything else is described with options; what an import cannot know is
refused with a message that names it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.runtime.model_file import save_arrays
from fervid.zoo.onnx_model import FRAME_KEY, KIND, session, softmax

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HSE_8 = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
HSE_7 = ("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
CONTEMPT_CHOICES = ("other", "drop")
"""Contempt has no ABAW class: its probability goes to Other, or is dropped (the other classes
renormalised)."""

SYNONYMS = {
    "neutral": "Neutral",
    "anger": "Anger",
    "angry": "Anger",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "fear": "Fear",
    "afraid": "Fear",
    "fearful": "Fear",
    "happiness": "Happiness",
    "happy": "Happiness",
    "sadness": "Sadness",
    "sad": "Sadness",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "other": "Other",
}
HSE_SOURCE = {
    "project": "EmotiEffLib (formerly HSEmotion), Andrey Savchenko",
    "url": "https://github.com/sb-ai-lab/EmotiEffLib",
    "training_data": "AffectNet (Mollahosseini et al. 2017), 8 or 7 expression classes",
}
HSE_LICENCE = {
    "spdx": "Apache-2.0",
    "note": "code and model files Apache-2.0; trained on AffectNet, whose images are licensed "
    "for non-commercial research",
}


@dataclass(frozen=True)
class Preset:
    size: int
    classes: tuple[str, ...]
    logit_columns: int | None = None
    """Outputs wider than the classes: the logits are the first columns (valence, arousal after)."""
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    colour: str = "RGB"
    crop: str = "box"
    margin: float = 0.0


PRESETS = {
    "enet_b0_8_best_vgaf": Preset(224, HSE_8),
    "enet_b0_8_best_afew": Preset(224, HSE_8),
    "enet_b0_8_va_mtl": Preset(224, HSE_8, logit_columns=8),
    "enet_b0_7": Preset(224, HSE_7),
    "enet_b2_8": Preset(260, HSE_8),
    "enet_b2_7": Preset(260, HSE_7),
}


def abaw_index(classes: list[str], contempt: str) -> list[int]:
    """The ABAW class of each source class (-1: dropped); unknown names are refused."""
    index = []
    for name in classes:
        key = name.strip().lower()
        if key == "contempt":
            index.append(CLASS_NAMES.index("Other") if contempt == "other" else -1)
        elif key in SYNONYMS:
            index.append(CLASS_NAMES.index(SYNONYMS[key]))
        else:
            raise DataError(
                "--classes",
                f"class {name!r} has no ABAW counterpart (known: {', '.join(sorted(SYNONYMS))}, "
                "contempt)",
            )
    targets = [i for i in index if i >= 0]
    if len(set(targets)) != len(targets) and contempt != "other":
        raise DataError("--classes", "two source classes map onto the same ABAW class")
    return index


def import_onnx(
    source: str | Path,
    out: str | Path | None = None,
    preset: str | None = None,
    classes: list[str] | None = None,
    size: int | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    colour: str | None = None,
    crop: str | None = None,
    margin: float | None = None,
    contempt: str = "other",
    logits_output: str | None = None,
    features_output: str | None = None,
    sha256: str | None = None,
) -> Path:
    """Write ``out`` (default: the user model folder, named after the file) from an ONNX file.
    ``preset``: one of :data:`PRESETS` (default: the file's stem when it is one); the other
    arguments override or, without a preset, supply the layout. ``sha256``: the file must have
    it. Returns the ``.safetensors`` path."""
    from fervid.zoo.store import model_dir

    source = Path(source)
    if not source.is_file():
        raise DataError(source, "ONNX file not found")
    graph = source.read_bytes()
    digest = hashlib.sha256(graph).hexdigest()
    if sha256 and digest != sha256.strip().lower():
        raise DataError(source, f"sha256 {digest[:12]}... is not the expected {sha256[:12]}...")
    if preset is None and source.stem in PRESETS:
        preset = source.stem
    if preset is not None and preset not in PRESETS:
        raise DataError("--preset", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    chosen = PRESETS.get(preset) if preset else None
    try:
        frame = session(graph, threads=1)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises several types
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error)
        raise DataError(source, f"onnxruntime cannot load it as an ONNX model ({first})") from None
    inputs, outputs = frame.get_inputs(), frame.get_outputs()
    if len(inputs) != 1:
        raise DataError(source, f"the graph has {len(inputs)} inputs; fervid feeds one image batch")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise DataError(
            source,
            f"input {inputs[0].name!r} has shape {shape} (rank {len(shape)}); fervid feeds "
            "(batch, 3, height, width) images",
        )
    static = [d for d in shape[2:] if isinstance(d, int)]
    if len(static) == 2 and static[0] != static[1]:
        raise DataError(source, f"input {inputs[0].name!r} is not square ({shape})")
    size = size or (chosen.size if chosen else None) or (static[0] if static else None)
    if static and size != static[0]:
        raise DataError(source, f"input {inputs[0].name!r} is {static[0]} pixels, not {size}")
    names = [o.name for o in outputs]
    logits_output = logits_output or (names[0] if len(names) == 1 else None)
    missing = []
    if size is None:
        missing.append("the input size (--size; the graph's is dynamic)")
    if classes is None and chosen is None:
        missing.append("the class order (--classes or --preset)")
    if (mean is None or std is None) and chosen is None:
        missing.append("the normalisation (--mean and --std, or --preset)")
    if logits_output is None:
        missing.append(
            f"which output holds the logits (--logits-output; outputs: {', '.join(names)})"
        )
    if missing:
        raise DataError(source, f"unknown model layout: missing {'; '.join(missing)}")
    for wanted in (logits_output, features_output):
        if wanted and wanted not in names:
            raise DataError(
                source, f"the graph has no output {wanted!r} (outputs: {', '.join(names)})"
            )
    classes = list(classes or chosen.classes)
    index = abaw_index(classes, contempt)
    mean = list(mean or chosen.mean)
    std = list(std or chosen.std)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise DataError("--mean/--std", "give three values each, std > 0")
    logit_columns = chosen.logit_columns if chosen and chosen.logit_columns else len(classes)
    feature_dim = check_outputs(
        frame, source, inputs[0].name, size, logits_output, features_output, logit_columns
    )
    crop = crop or (chosen.crop if chosen else "box")
    margin = float(margin if margin is not None else (chosen.margin if chosen else 0.0))
    meta = {
        "kind": KIND,
        "preset": preset,
        "trained_on_synthetic": False,
        "source": {**(HSE_SOURCE if chosen else {}), "file": source.name, "sha256": digest},
        "licence": HSE_LICENCE if chosen else None,
        "frame": {
            "sha256": digest,
            "input": {
                "name": inputs[0].name,
                "size": int(size),
                "layout": "NCHW",
                "colour": (colour or (chosen.colour if chosen else "RGB")).upper(),
                "scale": "x / 255",
                "mean": mean,
                "std": std,
                "resize": {"filter": "bilinear", "antialias": False, "round": True},
            },
            "crop": {"type": crop, "margin": margin}
            if crop == "box"
            else {"type": "aligned", "size": 112},
            "outputs": {
                "logits": logits_output,
                "features": features_output,
                "logit_columns": logit_columns,
            },
            "feature_dim": feature_dim,
            "classes": {
                "source": classes,
                "abaw_index": index,
                "to_abaw": {
                    name: (CLASS_NAMES[i] if i >= 0 else None) for name, i in zip(classes, index)
                },
                "contempt": contempt if any(c.lower() == "contempt" for c in classes) else None,
            },
        },
        "temporal": None,
    }
    out = Path(out) if out else model_dir() / f"{preset or source.stem}.safetensors"
    return save_arrays(out, {FRAME_KEY: np.frombuffer(graph, np.uint8)}, meta)


def check_outputs(frame, source, input_name, size, logits_output, features_output, columns) -> int:
    """Run the graph once on two blank images: the logits output must be (batch, >= columns)
    and finite, the features output (batch, F). Returns the width of predict's features."""
    blank = np.zeros((2, 3, size, size), np.float32)
    wanted = [logits_output] + ([features_output] if features_output else [])
    try:
        results = frame.run(wanted, {input_name: blank})
    except Exception as error:  # noqa: BLE001
        first = str(error).strip().splitlines()[0][:200]
        raise DataError(
            source, f"the graph does not run on (2, 3, {size}, {size}) ({first})"
        ) from None
    logits = np.asarray(results[0])
    if logits.ndim != 2 or logits.shape[0] != 2 or logits.shape[1] < columns:
        raise DataError(
            source,
            f"output {logits_output!r} gives shape {list(logits.shape)}; expected (batch, "
            f"{columns}) logits for the {columns} classes",
        )
    if not np.isfinite(softmax(logits[:, :columns])).all():
        raise DataError(source, f"output {logits_output!r} is not finite on a blank image")
    if features_output:
        features = np.asarray(results[1])
        if features.ndim != 2 or features.shape[0] != 2:
            raise DataError(
                source,
                f"output {features_output!r} gives shape {list(features.shape)}; "
                "expected (batch, features)",
            )
        return int(features.shape[1])
    return int(columns)
