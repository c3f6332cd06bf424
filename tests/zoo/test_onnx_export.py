"""``fervid export --onnx``: fervid's own models as ONNX graphs give the torch path's per-frame
probabilities (1e-4) on real media, and ``fervid predict`` with them never imports torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fervid import schema
from fervid.cli import main
from fervid.predict import PredictOptions, Predictor
from fervid.video.detect import numpy_nms, vision_ops
from fervid.zoo.preprocess import resize
from tests.helpers import FIXTURES, SHARED_DATA

LEGACY_MODEL = FIXTURES / "legacy-4c18e36" / "video.safetensors"
"""A trained video model (frame encoder + Temporal Encoder, tests/fixtures/legacy-4c18e36)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(torch model file, its ONNX export); FERVID_DEMO_MODEL: use that model instead (e.g.
    fervid-demo/model.safetensors, as docs/benchmarks.md does)."""
    torch_model = Path(os.environ.get("FERVID_DEMO_MODEL", LEGACY_MODEL))
    out = tmp_path_factory.mktemp("onnx") / "model.safetensors"
    assert main(["-q", "export", "--onnx", "--frame", str(torch_model), "--out", str(out)]) == 0
    return torch_model, out


@pytest.mark.slow
def test_the_export_is_an_onnx_model_with_both_graphs(models):
    meta = json.loads(models[1].with_suffix(".json").read_text())
    assert meta["kind"] == "onnx" and meta["temporal"]["sha256"] and meta["frame"]["sha256"]
    assert meta["frame"]["crop"]["type"] == "aligned"


@pytest.mark.parametrize(
    "name", ["WolfgangLanger_Pexels.mp4", "single_face.jpg", "multi_face.jpg", "no_face.mp4"]
)
@pytest.mark.slow
def test_onnx_probabilities_equal_the_torch_paths_on_real_media(shared_data, models, name):
    tables = [Predictor(m, PredictOptions()).predict(shared_data / name) for m in models]
    assert len(tables[0]) == len(tables[1])
    if name != "no_face.mp4":
        assert len(tables[0]) > 0
    for column in (schema.FRAME, "track", "detected"):
        assert tables[0][column].tolist() == tables[1][column].tolist()
    torch_probs, onnx_probs = (t[schema.PROB_COLUMNS].to_numpy(np.float64) for t in tables)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)


BLOCK_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError("importing " + name + " is blocked in this test")
sys.meta_path.insert(0, Block())
from fervid.cli import main
codes = [main(["-q", "predict", *sys.argv[3:], "--model", sys.argv[1], "--out", sys.argv[2]])]
heavy = [m for m in ("torch", "torchvision", "timm") if m in sys.modules]
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


@pytest.mark.slow
def test_predict_with_an_onnx_model_runs_where_torch_cannot_be_imported(models, tmp_path):
    from PIL import Image

    from tests.predict.test_time_axis import write_clip

    inputs = [str(write_clip(tmp_path / "clip.mp4"))]
    photo = SHARED_DATA / "single_face.jpg"
    if photo.is_file():
        inputs.append(str(photo))
    else:
        Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "photo.jpg")
        inputs.append(str(tmp_path / "photo.jpg"))
    out = tmp_path / "p"
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, str(models[1]), str(out), *inputs, "--flip"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"codes": [0], "heavy": []}
    for name in inputs:
        assert (out / f"{Path(name).stem}.json").is_file()
    if photo.is_file():
        summary = json.loads((out / "single_face.json").read_text())
        assert summary["faces"] == 1 and summary["model"]["kind"] == "onnx"


@pytest.mark.slow
def test_evaluate_and_submit_with_the_onnx_export_give_the_torch_models_probabilities(
    models, tmp_path, monkeypatch
):
    """The ABAW path with an exported ONNX model: the same per-frame probabilities as the
    torch model (1e-4, float32 kernels of two runtimes) in ``fervid evaluate`` and ``fervid
    submit``, frames without a crop included (the Temporal Encoder predicts them)."""
    import pandas as pd

    from tests.conftest import write_colour_coded_affwild2

    monkeypatch.setenv("FERVID_CACHE_DIR", str(tmp_path / "cache"))
    root = write_colour_coded_affwild2(tmp_path / "data", 2, 40)
    common = [f"data.root={root}", "data.workers=0", "train.device=cpu"]
    names = tmp_path / "videos.txt"
    names.write_text("validation_01\nvalidation_00\n")
    results = {}
    for kind, model in zip(("torch", "onnx"), models, strict=True):
        out = tmp_path / kind
        assert main(["-q", "evaluate", "--model", str(model), "--out", str(out), *common]) == 0
        submission = out / "submission.csv"
        argv = ["--model", str(model), "--videos", str(names), "--out", str(submission)]
        assert main(["-q", "submit", *argv, *common]) == 0
        results[kind] = [
            pd.read_parquet(out / "predictions.parquet"),
            pd.read_parquet(submission.with_suffix(".parquet")),
        ]
        assert (~results[kind][0][schema.HAS_IMAGE]).sum() == 10
    for torch_table, onnx_table in zip(results["torch"], results["onnx"], strict=True):
        assert torch_table[[schema.VIDEO, schema.FRAME]].equals(
            onnx_table[[schema.VIDEO, schema.FRAME]]
        )
        np.testing.assert_allclose(
            onnx_table[schema.PROB_COLUMNS], torch_table[schema.PROB_COLUMNS], atol=1e-4
        )
        assert not onnx_table[schema.FILLED].any()


def test_numpy_nms_keeps_what_torchvisions_kernel_keeps():
    rng = np.random.default_rng(0)
    for trial in range(20):
        corners = rng.uniform(0, 100, (40, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (40, 2))], axis=1)
        scores = rng.permutation(40) / 40.0  # distinct: no ties to order differently
        expected = vision_ops().nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), 0.3 + 0.02 * trial
        )
        np.testing.assert_array_equal(
            numpy_nms(boxes, scores, 0.3 + 0.02 * trial), expected.numpy()
        )


@pytest.mark.parametrize("size_in,size_out", [(112, 32), (112, 64), (112, 224), (96, 260)])
def test_resizing_matches_torch_with_antialiasing_and_cv2_without(size_in, size_out):
    import cv2

    images = np.random.default_rng(1).uniform(0, 255, (2, 3, size_in, size_in)).astype(np.float32)
    smooth = F.interpolate(
        torch.from_numpy(images),
        size=(size_out, size_out),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    np.testing.assert_allclose(resize(images, size_out, antialias=True), smooth.numpy(), atol=2e-3)
    plain = cv2.resize(images[0].transpose(1, 2, 0), (size_out, size_out))
    np.testing.assert_allclose(
        resize(images[:1], size_out, antialias=False)[0].transpose(1, 2, 0), plain, atol=2e-3
    )


def test_a_command_that_needs_torch_says_so_where_it_is_missing(monkeypatch, capsys):
    from fervid import cli

    def without_torch(args, progress):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setitem(cli.COMMANDS, "train", without_torch)
    assert cli.main(["train", "--run-dir", "run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `fervid train` needs PyTorch") and err.count("\n") == 1
