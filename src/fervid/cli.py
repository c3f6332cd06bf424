"""The ``fervid`` command: parses arguments, calls :mod:`fervid.api`, prints results."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import yaml

from fervid import __version__, api
from fervid.config import load_config, to_dict
from fervid.errors import FervidError
from fervid.labels import CLASS_NAMES

log = logging.getLogger("fervid")

OVERRIDES_HELP = "config overrides as key.sub=value, e.g. train.epochs=3 model.backbone=resnet18"


def add_config_arguments(parser: argparse.ArgumentParser, default_recipe: str | None) -> None:
    parser.add_argument(
        "--recipe",
        default=default_recipe,
        help=f"recipe name (a file in fervid/configs) or path to a YAML file (default: {default_recipe})",
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
        "demo", help="synthetic data -> train -> evaluate, in a few minutes on a CPU"
    )
    demo.add_argument(
        "--out",
        default="fervid-demo",
        help="folder for the dataset and the run (default: fervid-demo)",
    )
    demo.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)

    data = commands.add_parser("data", help="dataset tools: synth, check")
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

    train = commands.add_parser("train", help="stage 1: train the frame model")
    train.add_argument(
        "--run", required=True, help="run folder (config, logs, checkpoints, outputs)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --run from its last checkpoint"
    )
    add_config_arguments(train, "default")

    evaluate = commands.add_parser(
        "evaluate", help="macro F1, per-class F1, confusion matrix, predictions"
    )
    evaluate.add_argument("--model", required=True, help="run folder or model .safetensors file")
    evaluate.add_argument("--split", default="validation", choices=["train", "validation"])
    evaluate.add_argument("--out", help="output folder (default: <model folder>/eval/<split>)")
    add_config_arguments(evaluate, "default")

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


def run_command(args: argparse.Namespace) -> int:
    progress = not args.quiet
    if args.command == "demo":
        result = api.demo(args.out, args.overrides, progress=progress)
        print_metrics(result["metrics"])
        seconds = result["seconds"]
        print(
            f"time: synth {seconds['synth']:.0f}s, train+eval {seconds['train']:.0f}s, total {seconds['total']:.0f}s"
        )
        print(
            f"dataset: {result['data']}\nrun:     {result['run']} (config.yaml, metrics.jsonl, model.safetensors, eval/)"
        )
        return 0
    if args.command == "data" and args.data_command == "synth":
        config = load_config(args.recipe, args.overrides)
        summary = api.synth(args.out, config, progress=progress)
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "data" and args.data_command == "check":
        print(api.check(args.root, args.annotations))
        return 0
    if args.command == "train":
        config = load_config(args.recipe, args.overrides)
        print_metrics(api.train(config, args.run, resume=args.resume, progress=progress))
        print(f"run: {args.run}")
        return 0
    if args.command == "evaluate":
        config = load_config(args.recipe, args.overrides)
        print_metrics(api.evaluate(args.model, config, args.split, args.out, progress=progress))
        return 0
    if args.command == "config":
        print(
            yaml.safe_dump(to_dict(load_config(args.recipe, args.overrides)), sort_keys=False),
            end="",
        )
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(message)s" if args.quiet else "%(message)s",
    )
    try:
        return run_command(args)
    except FervidError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
