"""Feature extraction into the memory-mapped store: contents, flags, resume, bad input."""

import json

import numpy as np
import pytest
import torch

from fervid.config import Config, ModelConfig, load_config, to_dict
from fervid.data.frames import load_crop
from fervid.errors import DataError
from fervid.models.frame import FrameModel
from fervid.runtime.checkpoint import save_weights
from fervid.stage2.extract import extract_features, split_frames
from fervid.stage2.store import FeatureStore
from fervid.stage2.train import open_stores

BACKBONE = ModelConfig(backbone="test_vit", input_size=32)
BATCH = 16


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def frame_model(seed=0) -> FrameModel:
    torch.manual_seed(seed)
    return FrameModel(BACKBONE).eval()


def model_file(path, seed=0):
    config = Config(model=BACKBONE)
    return save_weights(
        path, frame_model(seed).state_dict(), {"kind": "frame", "config": to_dict(config)}
    )


@pytest.fixture(scope="module")
def train_table(colour_coded_dataset):
    table = split_frames(load_config(None, [f"data.root={colour_coded_dataset}"]).data, "train")
    return table


def extract(model, table, out, workers=0):
    return extract_features(model, table, out, batch_size=BATCH, workers=workers, progress=False)


def test_split_frames_adds_the_unannotated_frames_that_have_a_face(train_table):
    table = train_table
    first = table.video == 0
    assert table.frame[first].tolist() == list(range(1, 41))  # every frame of the video
    assert (table.label[first][:3] == -1).all()  # frames 1-3 are not annotated...
    assert table.has_image[first][:3].all()  # ...but have a face: they give context
    assert not table.has_image[first][6] and table.label[first][6] >= 0  # frame 7: no image
    for _, rows in table.video_slices():
        assert (np.diff(table.frame[rows]) > 0).all()


def test_store_holds_features_logits_and_a_flag_for_frames_without_a_face(train_table, tmp_path):
    model = frame_model()
    table = train_table.select(np.arange(len(train_table)))
    table.has_image[table.video == 1] = False  # a video with no face at all
    store = extract(model, table, tmp_path / "store")
    assert isinstance(store.features, np.memmap) and store.features.dtype == np.float16
    assert store.features.shape == (len(table), model.num_features)
    assert not store.table.has_image[store.table.frame % 7 == 0].any()
    assert not store.features[~store.table.has_image].any()  # zeros, flagged, not a fake feature
    assert not store.table.has_image[store.table.video == 1].any()
    row = int(np.flatnonzero(table.has_image)[5])
    image = torch.from_numpy(load_crop(table.image_path(row), 32))[None]
    with torch.no_grad():
        vector = model.features(model.normalize(image))
    np.testing.assert_allclose(store.features[row], vector[0].numpy(), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(
        store.logits[row], model.head(vector)[0].detach().numpy(), rtol=1e-4, atol=1e-4
    )
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    assert meta["complete"] and meta["encoder"]["backbone"] == "test_vit"
    assert len(meta["encoder"]["sha256"]) == 64
    name = table.videos[2]
    assert store.video_features(name).shape == ((table.video == 2).sum(), model.num_features)


class KilledAfter(Exception):
    pass


def counting_encoder(model, kill_at_call=None):
    """Wrap ``model.features`` to count the frames it encodes and, optionally, to die."""
    original = model.features
    seen = {"frames": 0, "calls": 0}

    def features(images):
        seen["calls"] += 1
        if kill_at_call is not None and seen["calls"] == kill_at_call:
            raise KilledAfter
        seen["frames"] += len(images)
        return original(images)

    model.features = features
    return seen


@pytest.mark.slow
def test_killed_extraction_resumes_without_recomputing_done_videos(train_table, tmp_path):
    reference = extract(frame_model(), train_table, tmp_path / "uninterrupted", workers=2)

    model = frame_model()
    counting_encoder(model, kill_at_call=5)  # ~35 faces per video, batches of 16: in video 2
    with pytest.raises(KilledAfter):
        extract(model, train_table, tmp_path / "killed")
    done = json.loads((tmp_path / "killed" / "store.json").read_text())["done"]
    assert done == [train_table.videos[0]]
    with pytest.raises(DataError, match="incomplete"):
        FeatureStore.open(tmp_path / "killed")

    model = frame_model()
    seen = counting_encoder(model)
    resumed = extract(model, train_table, tmp_path / "killed")
    first_video = train_table.has_image & (train_table.video == 0)
    assert seen["frames"] == train_table.has_image.sum() - first_video.sum()
    np.testing.assert_array_equal(resumed.features, reference.features)
    np.testing.assert_array_equal(resumed.logits, reference.logits)
    np.testing.assert_array_equal(resumed.table.has_image, reference.table.has_image)

    seen = counting_encoder(model)
    extract(model, train_table, tmp_path / "killed")  # complete: nothing to do
    assert seen["frames"] == 0


@pytest.mark.slow
def test_a_store_of_another_encoder_is_refused(colour_coded_dataset, train_table, tmp_path):
    first, second = model_file(tmp_path / "a" / "model", 0), model_file(tmp_path / "b" / "model", 1)
    extract(first, train_table, tmp_path / "train")
    with pytest.raises(DataError, match="write to another --out"):
        extract(second, train_table, tmp_path / "train")  # resuming with another encoder

    val_table = split_frames(
        load_config(None, [f"data.root={colour_coded_dataset}"]).data, "validation"
    )
    extract(first, val_table, tmp_path / "val")
    options = [
        f"data.root={colour_coded_dataset}",
        f"temporal.train_store={tmp_path / 'train'}",
        f"temporal.val_store={tmp_path / 'val'}",
    ]
    open_stores(load_config(None, [*options, f"temporal.frame_model={tmp_path / 'a'}"]))
    with pytest.raises(DataError) as error:
        open_stores(load_config(None, [*options, f"temporal.frame_model={tmp_path / 'b'}"]))
    message = str(error.value)
    assert str(tmp_path / "train") in message  # names the store...
    assert str(first) in message and str(second) in message  # ...and both encoders


def test_a_store_missing_videos_of_the_split_is_refused(
    colour_coded_dataset, train_table, tmp_path
):
    model = frame_model()
    extract(model, train_table.select(train_table.video != 1), tmp_path / "train")
    val_table = split_frames(
        load_config(None, [f"data.root={colour_coded_dataset}"]).data, "validation"
    )
    extract(model, val_table, tmp_path / "val")
    config = load_config(
        None,
        [
            f"data.root={colour_coded_dataset}",
            f"temporal.train_store={tmp_path / 'train'}",
            f"temporal.val_store={tmp_path / 'val'}",
        ],
    )
    with pytest.raises(
        DataError, match=f"1 of the 3 videos of the train split.*{train_table.videos[1]}"
    ):
        open_stores(config)


def test_extraction_refuses_a_folder_that_is_not_a_store(train_table, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a feature store"):
        extract(frame_model(), train_table, tmp_path)
