"""Horizontal-flip test-time augmentation (eval.flip): stored features and frame predictions are
the mean over each face and its mirror image, and a store keeps the setting it was made with."""

import numpy as np
import pytest
import torch

import tests.stage2.test_features as base
from fervid.data.frames import load_crop
from fervid.errors import DataError
from fervid.models.inference import frame_probabilities
from fervid.stage2.extract import extract_features

BATCH, frame_model = base.BATCH, base.frame_model
train_table = base.train_table  # fixture

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def test_flipped_features_are_the_mean_of_both_views_and_the_store_says_so(train_table, tmp_path):
    model = frame_model()
    store = extract_features(
        model, train_table, tmp_path / "flip", BATCH, 0, progress=False, flip=True
    )
    assert store.encoder["flip_tta"] is True
    row = int(np.flatnonzero(train_table.has_image)[3])
    crop = torch.from_numpy(load_crop(train_table.image_path(row), model.input_size))[None]
    with torch.no_grad():
        images = model.normalize(crop)
        both = (model.features(images) + model.features(images.flip(-1))) / 2
        one = model.features(images)
        logits = model.head(both)
    np.testing.assert_allclose(store.features[row], both[0].numpy(), rtol=1e-2, atol=1e-3)
    assert not np.allclose(store.features[row], one[0].numpy(), rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(store.logits[row], logits[0].numpy(), rtol=1e-4, atol=1e-5)

    with pytest.raises(DataError, match="made with flip test-time augmentation"):
        extract_features(model, train_table, tmp_path / "flip", BATCH, 0, progress=False)


def test_flipped_frame_probabilities_average_the_two_views_logits(train_table):
    model = frame_model()
    table = train_table.select(np.flatnonzero(train_table.has_image)[:6])
    device = torch.device("cpu")
    plain, _ = frame_probabilities(model, table, device, 4, workers=0, progress=False)
    flipped, known = frame_probabilities(
        model, table, device, 4, workers=0, progress=False, flip=True
    )
    crops = torch.stack([torch.from_numpy(load_crop(table.image_path(r), 32)) for r in range(6)])
    with torch.no_grad():
        images = model.normalize(crops)
        logits = (model(images) + model(images.flip(-1))) / 2
    np.testing.assert_allclose(flipped, logits.softmax(dim=1).numpy(), rtol=1e-4, atol=1e-6)
    assert known.all() and not np.allclose(flipped, plain, atol=1e-4)
