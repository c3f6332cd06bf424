"""The options of ``fervid import onnx``: what the ONNX file's input and outputs are when no
preset says it (fervid/zoo/onnx_import.py). Each value is checked here, before anything runs."""

from __future__ import annotations

import argparse

ONNX_OPTIONS = (
    "preset",
    "classes",
    "size",
    "mean",
    "std",
    "colour",
    "crop",
    "margin",
    "contempt",
    "logits_output",
    "features_output",
    "sha256",
)
"""Options that only ``fervid import onnx`` takes (dest names)."""


def class_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"must be two or more class names, got {text!r}")
    return names


def three_floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"must be three numbers R,G,B, got {text!r}")
    return values


def input_size(text: str) -> int:
    if not text.isdigit() or not 16 <= int(text) <= 2048:
        raise argparse.ArgumentTypeError(f"must be an integer from 16 to 2048, got {text!r}")
    return int(text)


def margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 to 1, got {text!r}")
    return value


def sha256_hex(text: str) -> str:
    value = text.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise argparse.ArgumentTypeError(f"must be 64 hexadecimal digits, got {text!r}")
    return value


def add_onnx_import_arguments(importer: argparse.ArgumentParser) -> None:
    group = importer.add_argument_group(
        "onnx", "the ONNX file's layout (a preset fills what it knows; options override it)"
    )
    group.add_argument(
        "--preset",
        help="enet_b0_8_best_vgaf, enet_b0_8_best_afew, enet_b0_8_va_mtl, enet_b0_7, enet_b2_8, "
        "enet_b2_7 (EmotiEffLib / HSEmotion; default: the file's name when it is one)",
    )
    group.add_argument(
        "--classes", type=class_list, help="the outputs' class order, e.g. Anger,Contempt,..."
    )
    group.add_argument("--size", type=input_size, help="input side in pixels")
    group.add_argument("--mean", type=three_floats, help="R,G,B mean after x/255")
    group.add_argument("--std", type=three_floats, help="R,G,B std after x/255")
    group.add_argument("--colour", choices=["rgb", "bgr"], help="channel order (default: rgb)")
    group.add_argument(
        "--crop",
        choices=["box", "aligned"],
        help="box: the detector's box (+ --margin), as EmotiEffLib crops (preset default); "
        "aligned: fervid's 5-point alignment",
    )
    group.add_argument(
        "--margin", type=margin, help="box crops: widen the box by this fraction on each side"
    )
    group.add_argument(
        "--contempt",
        choices=["other", "drop"],
        help="Contempt has no ABAW class: add it to Other (default) or drop it and renormalise",
    )
    group.add_argument("--logits-output", help="graph output holding the logits")
    group.add_argument(
        "--features-output", help="graph output holding penultimate features (for stage 2)"
    )
    group.add_argument("--sha256", type=sha256_hex, help="refuse the file unless it has this hash")
