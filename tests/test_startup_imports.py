"""``fervid predict`` imports only what its model needs: a fervid_cnn or MobileNetV2 (the demo's)
model on a photo never imports timm, torchvision's Python package or torch._dynamo (together
about 6 s of start-up on the development machine; benchmarks/startup.py measures the whole
process)."""

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
import numpy as np
import torch
from PIL import Image
from fervid.cli import main
from fervid.config import Config, ModelConfig, to_dict
from fervid.models.frame import FrameModel
from fervid.runtime.checkpoint import save_weights
from fervid.video.detect import non_max_suppression

out, backbone = sys.argv[1], sys.argv[2]
config = Config(model=ModelConfig(backbone=backbone))
# for_loading: the timm-free build, whose state dict is timm's (tests/models/test_frame_model.py)
model = save_weights(out + "/frame", FrameModel(config.model, for_loading=True).state_dict(),
                     {"kind": "frame", "config": to_dict(config)})
Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(out + "/photo.jpg")
code = main(["-q", "predict", out + "/photo.jpg", "--model", str(model), "--out", out + "/p"])
boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
kept = non_max_suppression(boxes, np.array([0.5, 0.9, 0.7]), 0.4).tolist()
heavy = [m for m in ("timm", "torchvision", "torch._dynamo") if m in sys.modules]
print(json.dumps({"code": code, "kept": kept, "heavy": heavy}))
"""


@pytest.mark.parametrize("backbone", ["fervid_cnn", "mobilenetv2_100"])
@pytest.mark.slow
def test_predicting_a_photo_imports_no_heavy_module(tmp_path, backbone):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), backbone],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert report["kept"] == [1, 2]  # torchvision's NMS kernel, loaded without its package
    assert report["heavy"] == []
    assert (tmp_path / "p" / "photo.json").is_file()
