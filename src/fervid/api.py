"""The Python API; the ``fervid`` command is a thin layer over these functions."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fervid.config import Config, load_config
from fervid.errors import DataError

log = logging.getLogger("fervid")


def synth(out: str | Path, config: Config | None = None, progress: bool = True) -> dict:
    """Write the synthetic Aff-Wild2-layout dataset to ``out`` (skipped if already there)."""
    from fervid.data.synth import generate

    config = config or Config()
    return generate(out, config.synth, progress=progress)


def check(root: str | Path, annotations: str | Path | None = None):
    """A report on an Aff-Wild2-layout dataset (``.format()`` for text, ``.ok``): counts per
    class and split, frames without images, problems."""
    from fervid.data.check import check_dataset

    return check_dataset(root, annotations)


def train(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True, stage: int = 1
) -> dict:
    """Stage 1 (the frame model) or stage 2 (the Temporal Encoder over a feature store);
    returns the validation metrics (stage 2: with the frame / smoothed / temporal comparison)."""
    from fervid.runtime.dist import init_from_environment, is_main

    init_from_environment()  # joins the process group when started by torchrun
    progress = progress and is_main()
    if stage == 2:
        from fervid.stage2.train import train_stage2

        return train_stage2(config, run_dir, resume=resume, progress=progress)
    from fervid.stage1.train import train_stage1

    return train_stage1(config, run_dir, resume=resume, progress=progress)


def features(model: str | Path, config: Config, split: str, out: str | Path, progress: bool = True):
    """Frame-encoder features of every frame of a split into a memory-mapped store (resumable:
    rerun to finish a killed extraction). Under torchrun, each process extracts a disjoint share
    of the videos into the same store (``out`` must be on a filesystem every process sees)."""
    from fervid.runtime.dist import init_from_environment, is_main
    from fervid.stage2.extract import extract_features, split_frames

    init_from_environment()
    progress = progress and is_main()
    table = split_frames(config.data, split)
    return extract_features(
        model,
        table,
        out,
        config.eval.batch_size,
        config.data.workers,
        config.train.device,
        progress,
        flip=config.eval.flip,
    )


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


def demo(
    out: str | Path = "fervid-demo", overrides: list[str] | None = None, progress: bool = True
) -> dict:
    """The whole method on the synthetic dataset: generate it if absent, stage 1 (the demo recipe:
    semi-supervised), features, stage 2, evaluation of frame model / moving average / Temporal
    Encoder, and a packaged model for ``fervid predict``. Each step resumes if interrupted."""
    out = Path(out)
    run = out / "run"
    config = load_config(
        "demo", [f"data.root={out / 'data'}", *two_stage_overrides(run), *(overrides or [])]
    )
    started = time.perf_counter()
    summary = synth(config.data.root, config, progress=progress)
    seconds = {"synth": time.perf_counter() - started}
    result = train_two_stages(config, run, progress)
    seconds.update(result["seconds"])
    frame = None if config.temporal.finetune_encoder else run / "stage1"
    model = export(frame, run / "fervid_demo_model.safetensors", run / "stage2")
    seconds["total"] = sum(seconds.values())
    return {
        "data": str(config.data.root),
        "run": str(run),
        "model": str(model),
        "synth_summary": summary,
        "frame_metrics": result["frame_metrics"],
        "metrics": result["metrics"],
        "seconds": seconds,
    }


def two_stage_overrides(run: str | Path) -> list[str]:
    """The overrides that point stage 2 at the stage-1 run and stores of :func:`train_two_stages`
    in ``run``."""
    run = Path(run)
    return [
        f"temporal.train_store={run / 'features' / 'train'}",
        f"temporal.val_store={run / 'features' / 'validation'}",
        f"temporal.frame_model={run / 'stage1'}",
    ]


def train_two_stages(config: Config, run: str | Path, progress: bool = True) -> dict:
    """Stage 1 in ``run/stage1``, features of the train and evaluation splits in
    ``run/features``, stage 2 in ``run/stage2`` (``config`` carries :func:`two_stage_overrides`);
    each step resumes if interrupted. Returns both stages' validation metrics and seconds."""
    stage1, stage2 = Path(run) / "stage1", Path(run) / "stage2"
    clock = [time.perf_counter()]
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        seconds[name], clock[0] = time.perf_counter() - clock[0], time.perf_counter()

    resume = (stage1 / "checkpoints" / "last.pt").exists()
    frame_metrics = train(config, stage1, resume=resume, progress=progress)
    lap("stage1")
    store = features(stage1, config, "train", config.temporal.train_store, progress=progress)
    features(stage1, config, config.eval.split, config.temporal.val_store, progress=progress)
    lap("features")
    if config.temporal.cross_fit:
        from fervid.stage2.crossfit import with_out_of_fold_logits

        config = with_out_of_fold_logits(config, store, run, progress)
        lap("cross_fit")
    resume = (stage2 / "checkpoints" / "last.pt").exists()
    metrics = train(config, stage2, resume=resume, progress=progress, stage=2)
    lap("stage2")
    return {"frame_metrics": frame_metrics, "metrics": metrics, "seconds": seconds}


def export(
    frame_run: str | Path | None,
    out: str | Path,
    temporal_run: str | Path | None = None,
    install_as: str | None = None,
    onnx: bool = False,
) -> Path:
    """Package a stage-1 run (and optionally a stage-2 run) as one model file for predict;
    ``frame_run`` None takes the encoder a stage-2 run fine-tuned. ``onnx``: as ONNX graphs
    (kind ``onnx``, :mod:`fervid.zoo.onnx_export`); ``frame_run`` may then also be an exported
    model file, converted as it is."""
    import tempfile

    from fervid.zoo import install
    from fervid.zoo.store import read_sidecar, resolve_model
    from fervid.zoo.video_model import export_model

    if not onnx:
        path = export_model(frame_run, out, temporal_run)
        return install(path, install_as) if install_as else path
    from fervid.zoo.onnx_export import attach_temporal, export_onnx

    kind = read_sidecar(resolve_model(frame_run)).get("kind") if frame_run is not None else None
    if kind == "video" and temporal_run is None:
        path = export_onnx(resolve_model(frame_run), out)
        return install(path, install_as) if install_as else path
    if kind == "onnx":  # an imported ONNX model + the Temporal Encoder trained on its features
        if temporal_run is None:
            raise DataError(frame_run, "already an ONNX model (add --temporal STAGE2_RUN)")
        path = attach_temporal(frame_run, temporal_run, out)
        return install(path, install_as) if install_as else path
    with tempfile.TemporaryDirectory(prefix="fervid-export-") as scratch:
        packaged = export_model(frame_run, Path(scratch) / "model", temporal_run)
        path = export_onnx(packaged, out, {"frame": str(frame_run), "temporal": str(temporal_run)})
    return install(path, install_as) if install_as else path


def check_output_folder(out: str | Path) -> Path:
    """Create ``out`` if needed and make sure files can be written there."""
    import tempfile

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".fervid-write-test-"):
            pass
    except OSError as error:
        raise DataError(out, f"output folder is not writable ({error.strerror or error})") from None
    return out


def predict(
    inputs: list[str | Path],
    model: str | Path | list[str | Path] | None,
    out: str | Path,
    annotate: bool = False,
    options=None,
    redo: bool = False,
    progress: bool = True,
    report: bool = False,
    on_row=None,
    device: str = "auto",
) -> tuple[list, list[str]]:
    """Predict every input (videos, images, folders of them) into ``out`` with ``model`` (a list:
    an ensemble). Resumable: an input whose outputs in ``out`` are complete for this model and
    options is skipped (``redo`` predicts it again). An input that fails is reported and
    skipped; the others complete. ``report``: an HTML page per input (:mod:`fervid.predict.report`). ``on_row``: each face's row as
    it is encoded (live input, ``options.live``); Ctrl-C stops the job with the outputs so far.
    ``device``: where faces are encoded, in batches (``auto``: the GPU when there is one).
    ``out/fervid-job-summary.csv`` lists every input. Returns
    (predictions made now, error messages).

    Under torchrun each process predicts every world_size()-th input and writes that input's
    outputs; the error messages of all processes are returned on every process."""
    from fervid.errors import FervidError
    from fervid.predict import Predictor
    from fervid.predict.batch import predict_inputs, write_summary
    from fervid.runtime.dist import (
        barrier,
        gather_lists,
        init_from_environment,
        is_main,
        rank,
        world_size,
    )
    from fervid.video.decode import expand_inputs

    init_from_environment()
    out = check_output_folder(out)
    predictor = Predictor(model, options, device)
    errors, paths, seen = [], [], {}
    for item in inputs:
        try:
            paths.extend(expand_inputs([item]))
        except FervidError as error:
            errors.append(str(error))
    unique = []
    for path in paths:
        if path.stem in seen:
            errors.append(
                f"{path}: same name as {seen[path.stem]}; their outputs would collide, skipped"
            )
            continue
        seen[path.stem] = path
        unique.append(path)
    if not is_main():
        errors = []  # every process found the same problems with the inputs; report them once
    share = unique[rank() :: world_size()]
    try:
        results, failed, skipped = predict_inputs(
            predictor, share, out, annotate, redo, progress and is_main(), report, on_row
        )
    except KeyboardInterrupt:
        if world_size() == 1:  # the inputs done so far, and the interrupted one, are listed
            write_summary(out, unique, {}, predictor.run_key)
        raise
    if skipped:
        log.info("%d inputs already done in %s (same model and options): skipped", skipped, out)
    failed = dict(gather_lists(list(failed.items())))
    barrier()  # every process's outputs are written
    if is_main():
        write_summary(out, unique, failed, predictor.run_key)
    return results, gather_lists(errors) + list(failed.values())


def crop(
    videos: list[str | Path],
    out: str | Path,
    every: int = 1,
    detector: str = "retinaface",
    max_side: int | None = 320,
) -> list:
    """Detected, tracked and aligned 112x112 face crops of each video in the Aff-Wild2 layout
    (``out/cropped_aligned/<video>[_<track>]/NNNNN.jpg``)."""
    from fervid.video.crops import write_crops
    from fervid.video.decode import expand_inputs
    from fervid.video.detect import build_detector

    paths = expand_inputs(videos)
    stems = [p.stem for p in paths]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise DataError(
            out, f"several inputs are named {clash[0]!r}; their crop folders would collide"
        )
    check_output_folder(out)
    built = build_detector(detector, max_side=max_side)
    return [write_crops(path, out, built, every=every) for path in paths]
