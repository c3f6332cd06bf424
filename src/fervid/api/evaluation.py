"""Evaluation in the Python API: scores on an annotated split, a Temporal Encoder beside its
baselines, the ABAW test-set submission (``fervid evaluate | submit``)."""

from __future__ import annotations

from pathlib import Path

from fervid.api.data import check_output_folder
from fervid.config import Config
from fervid.errors import DataError


def evaluate(
    model: str | Path | list[str | Path],
    config: Config,
    split: str = "validation",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate trained models on an annotated split of ``config.data``; writes metrics,
    per-class F1, confusion matrix and per-frame predictions under ``out``.

    One frame model (a stage-1 run or its file) is run over the annotated frames. An exported
    video model (with its Temporal Encoder), or several models (an ensemble: their
    probabilities averaged), run over every frame of the split's videos, through feature
    stores in ``out/features`` (see :mod:`fervid.stage2.submission`)."""
    from fervid.data.sources import labelled_split
    from fervid.evaluate import prediction_table, write_evaluation
    from fervid.models.frame import load_frame_model
    from fervid.models.inference import frame_probabilities
    from fervid.runtime.training import pick_device
    from fervid.stage2.extract import split_frames
    from fervid.stage2.submission import ensemble_predictions, resolve_split_model
    from fervid.zoo.store import read_sidecar

    models = [resolve_split_model(m) for m in ([model] if isinstance(model, str | Path) else model)]
    out = Path(out) if out else models[0].parent / "eval" / split
    if len(models) > 1 or read_sidecar(models[0]).get("kind") != "frame":
        table = split_frames(config.data, split)
        options = dict(split_options(config), progress=progress)
        return write_evaluation(
            out, ensemble_predictions(models, table, out / "features", **options)
        )
    frame_model = load_frame_model(models[0])
    device = pick_device(config.train.device)
    frame_model.to(device)
    table = labelled_split(config.data, split)
    probs, known = frame_probabilities(
        frame_model,
        table,
        device,
        config.eval.batch_size,
        config.data.workers,
        progress=progress,
        flip=config.eval.flip,
    )
    return write_evaluation(out, prediction_table(table, probs, known))


def split_options(config: Config) -> dict:
    """How models run over a split: batch size, loader workers, device, flip TTA."""
    return {
        "batch_size": config.eval.batch_size,
        "workers": config.data.workers,
        "device": config.train.device,
        "flip": config.eval.flip,
    }


def evaluate_temporal(
    model: str | Path,
    store: str | Path,
    config: Config,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """A Temporal Encoder on an annotated feature store, beside the frame model alone and the
    moving-average baseline."""
    from fervid.stage2.compare import evaluate_temporal as evaluate_store

    path = model_file(model)
    out = Path(out) if out else path.parent / "eval" / Path(store).name
    return evaluate_store(
        path,
        store,
        out,
        windows=config.temporal.smoothing_windows,
        batch_size=config.eval.batch_size,
        progress=progress,
    )


def model_file(run_or_model: str | Path) -> Path:
    path = Path(run_or_model)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.with_suffix(".safetensors").is_file():
        raise DataError(path, "no model file here (expected a run folder or a .safetensors file)")
    return path


def submit(
    models: list[str | Path],
    config: Config,
    out: str | Path,
    videos: str | Path | list[str] | None = None,
    work: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """The ABAW EXPR submission file for the test videos of ``config.data.root``.

    ``videos``: the organisers' list (one name per line, their sample submission or frame list,
    which fix the exact frames), or names; None = every folder of ``cropped_aligned`` that has no
    annotation file in the training or validation set. The frame list the file must cover
    (:func:`fervid.data.frame_lists.read_test_frames`: the listed frames, else each video's
    annotation length, else its last face crop, with a warning) is read apart from the frames
    the models run over (each video's frame axis); every listed frame gets the models' mean
    probabilities, frames no model predicted filled from their neighbours, and frames after a
    video's last face crop are named in a warning and in ``after_last_face``. The file is
    checked against the list (each frame once, nothing else) before it is written atomically,
    rows in the list's video order, frames ascending, with the per-frame probabilities beside
    it (``.parquet``). Features go to ``work`` (default ``<out>-features/``): rerun the same
    command to finish a killed run."""
    from fervid import schema
    from fervid.data.affwild2 import unannotated_videos
    from fervid.data.frame_lists import read_test_frames
    from fervid.evaluate import write_submission
    from fervid.runtime.io import atomic_path
    from fervid.stage2.submission import predict_frames

    out = Path(out)
    check_output_folder(out.parent)
    work = Path(work) if work else out.with_name(out.stem + "-features")
    if videos is None:
        videos = unannotated_videos(config.data.root, config.data.annotations)
    wanted = read_test_frames(config.data.root, videos, config.data.annotations)
    predictions, after_last_face = predict_frames(
        models, wanted, config.data.root, work, **split_options(config), progress=progress
    )
    write_submission(
        out,
        predictions[schema.VIDEO].astype(str),
        predictions[schema.FRAME],
        predictions[schema.PRED],
        expected=wanted,
    )
    probabilities = out.with_suffix(".parquet")
    with atomic_path(probabilities) as temporary:
        predictions.drop(columns=[schema.LABEL]).to_parquet(temporary, index=False)
    return {
        "submission": str(out),
        "probabilities": str(probabilities),
        "videos": len(wanted.videos),
        "frames": len(predictions),
        "frames_filled": int(predictions[schema.FILLED].sum()),
        "after_last_face": after_last_face,
    }
