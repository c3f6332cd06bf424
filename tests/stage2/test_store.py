"""Fast unit tests of the feature store (``fervid.stage2.store``) with values worked out by hand:
what a store records about its encoder, the arrays and metadata of a new store, the checks on
reopening one, the frame axis, progress files, finishing, writing and reading."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fervid import __version__
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.models.frame import FrameModel
from fervid.stage2.store import (
    FeatureStore,
    check_frame_axis,
    describe_encoder,
    encoder_identity,
    finish_store,
    frame_gap,
    frame_model_path,
    gather_progress,
    meta_done,
    open_or_create,
    same_frames,
    save_progress,
    video_names,
    write_store,
)

ENCODER = {"sha256": "7" * 64, "backbone": "synthetic", "input_size": 0, "source": "test"}
OTHER = {"sha256": "9" * 64, "backbone": "synthetic", "input_size": 0, "source": "other"}


def make_table(videos, frames, labels=None, has_image=None, names=("a", "b", "c")) -> FrameTable:
    """Rows of the videos ``videos`` (indices into ``names``) at ``frames``."""
    n = len(frames)
    return FrameTable(
        list(names),
        ["{}"] * len(names),
        np.asarray(videos),
        np.asarray(frames),
        np.zeros(n) if labels is None else np.asarray(labels),
        np.ones(n, bool) if has_image is None else np.asarray(has_image),
    )


def two_videos(has_image=None) -> FrameTable:
    """Video a: frames 1-3, video b: frames 1-2 (c has no rows)."""
    return make_table([0, 0, 0, 1, 1], [1, 2, 3, 1, 2], [0, 1, 2, 3, 4], has_image)


def read_meta(out: Path) -> dict:
    return json.loads((out / "store.json").read_text())


def assert_written(path: Path, meta: dict) -> None:
    """``path`` holds ``meta`` as readable JSON: one key a line, indented by one space."""
    assert path.read_text() == json.dumps(meta, indent=1)


def write_meta(out: Path, **changes) -> None:
    (out / "store.json").write_text(json.dumps({**read_meta(out), **changes}))


# ----------------------------------------------------------------------------------------------
# What a store records about its encoder


def test_a_frame_model_path_is_the_file_or_the_run_folders_model_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert frame_model_path(run) == run / "model.safetensors"
    assert frame_model_path(str(tmp_path / "m.json")) == tmp_path / "m.safetensors"
    assert frame_model_path(tmp_path / "m") == tmp_path / "m.safetensors"


def in_memory_model(backbone: nn.Module, input_size: int = 7) -> FrameModel:
    """A FrameModel holding only ``backbone`` (what encoder_identity reads of one)."""
    model = FrameModel.__new__(FrameModel)
    nn.Module.__init__(model)
    model.backbone = backbone
    model.input_size = input_size
    return model


def test_an_in_memory_model_is_identified_by_the_sha256_of_its_sorted_state_dict():
    backbone = nn.Linear(2, 1)
    with torch.no_grad():
        backbone.weight.copy_(torch.tensor([[0.5, 0.25]]))
        backbone.bias.fill_(-1.0)
    # the names in sorted order (bias before weight), each followed by its float32 bytes
    weight = np.array([0.5, 0.25], np.float32).tobytes()
    expected = hashlib.sha256(
        b"backbone.bias" + np.float32(-1.0).tobytes() + b"backbone.weight" + weight
    ).hexdigest()
    model = in_memory_model(backbone)
    assert encoder_identity(model) == {
        "sha256": expected,
        "backbone": "Linear",  # no timm configuration: the backbone's class
        "input_size": 7,
        "source": "in-memory model",
    }
    backbone.pretrained_cfg = {"architecture": "tiny_net"}
    assert encoder_identity(model)["backbone"] == "tiny_net"
    backbone.pretrained_cfg = {"mean": (0.5, 0.5, 0.5)}  # a configuration without a name
    assert encoder_identity(model)["backbone"] == "Linear"


def test_a_model_file_is_identified_by_its_sidecar(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    meta = {"sha256": "ab" * 32, "config": {"model": {"backbone": "resnet18", "input_size": 112}}}
    (run / "model.json").write_text(json.dumps(meta))
    expected = {
        "sha256": "ab" * 32,
        "backbone": "resnet18",
        "input_size": 112,
        "source": str(run / "model.safetensors"),
    }
    assert encoder_identity(run) == expected
    assert encoder_identity(str(run / "model.safetensors")) == expected
    with pytest.raises(DataError) as error:
        encoder_identity(tmp_path / "none.safetensors")
    assert str(error.value) == (
        f"{tmp_path / 'none.json'}: model file not found (expected a stage-1 run folder or "
        "model file)"
    )


def test_an_encoder_is_described_by_its_backbone_short_hash_and_source():
    encoder = {"backbone": "resnet18", "sha256": "0123456789abcdef", "source": "run/model"}
    assert describe_encoder(encoder) == "resnet18 0123456789ab (run/model)"


# ----------------------------------------------------------------------------------------------
# Writing


def test_a_new_store_holds_zeroed_arrays_its_table_and_its_metadata(tmp_path):
    table = two_videos()
    out = tmp_path / "not" / "yet" / "store"  # missing parents are created
    meta = open_or_create(out, table, ENCODER, 3)
    expected = {
        "format_version": 2,
        "fervid_version": __version__,
        "encoder": ENCODER,
        "feature_dim": 3,
        "feature_dtype": "float16",
        "frames": 5,
        "videos": 2,  # a and b; c has no rows
        "complete": False,
        "done": [],
    }
    assert meta == expected
    assert_written(out / "store.json", expected)
    for name, dtype, shape in (
        ("features.npy", np.float16, (5, 3)),
        ("logits.npy", np.float32, (5, 8)),
        ("present.npy", np.bool_, (5,)),
    ):
        array = np.load(out / name)
        assert (array.dtype, array.shape) == (dtype, shape), name
        assert not array.any(), name
    assert same_frames(FrameTable.load(out / "index.npz"), table)


def test_a_new_store_may_go_into_an_empty_folder_or_one_with_hidden_or_store_files(tmp_path):
    for leftover in (None, ".hidden", "features.npy"):
        out = tmp_path / f"store-{leftover}"
        out.mkdir()
        if leftover:
            (out / leftover).write_text("")
        assert open_or_create(out, two_videos(), ENCODER, 3)["frames"] == 5
    out = tmp_path / "other"
    out.mkdir()
    (out / "notes.txt").write_text("")
    with pytest.raises(DataError) as error:
        open_or_create(out, two_videos(), ENCODER, 3)
    assert (
        str(error.value) == f"{out}: folder exists and is not a feature store; pick another --out"
    )
    assert not (out / "store.json").exists()


def test_reopening_a_store_gathers_its_progress_and_returns_its_metadata(tmp_path):
    out = tmp_path / "store"
    first = open_or_create(out, two_videos(), ENCODER, 3)
    (out / "progress-0.json").write_text(json.dumps({"done": ["b"]}))
    again = open_or_create(out, two_videos(), {**ENCODER, "flip_tta": False}, 3)
    assert again == {**first, "done": ["b"]}
    assert not (out / "progress-0.json").exists()


def test_reopening_a_store_refuses_another_encoder_flip_setting_or_table(tmp_path):
    out = tmp_path / "store"
    open_or_create(out, two_videos(), ENCODER, 3)
    with pytest.raises(DataError) as error:
        open_or_create(out, two_videos(), OTHER, 3)
    assert str(error.value) == (
        f"{out / 'store.json'}: this store holds features of frame model synthetic 777777777777 "
        f"(test), not of synthetic 999999999999 (other); write to another --out or delete {out}"
    )
    with pytest.raises(DataError) as error:
        open_or_create(out, two_videos(), {**ENCODER, "flip_tta": True}, 3)
    assert str(error.value) == (
        f"{out / 'store.json'}: this store holds features made without flip test-time "
        f"augmentation (eval.flip); use the same setting, another --out, or delete {out}"
    )
    other_labels = make_table([0, 0, 0, 1, 1], [1, 2, 3, 1, 2], [0, 1, 2, 3, 5])
    with pytest.raises(DataError) as error:
        open_or_create(out, other_labels, ENCODER, 3)
    assert str(error.value) == (
        f"{out / 'index.npz'}: this store was started for other videos or frames; write to "
        f"another --out or delete {out}"
    )
    flipped = tmp_path / "flipped"
    open_or_create(flipped, two_videos(), {**ENCODER, "flip_tta": True}, 3)
    with pytest.raises(DataError, match="holds features made with flip test-time augmentation"):
        open_or_create(flipped, two_videos(), ENCODER, 3)


def test_reopening_an_old_store_whose_rows_skip_frames_is_refused(tmp_path):
    out = tmp_path / "store"
    gapped = make_table([0, 0, 0], [1, 2, 5])
    out.mkdir()
    gapped.save(out / "index.npz")
    (out / "store.json").write_text(json.dumps({"format_version": 1, "encoder": ENCODER}))
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(out))}: this store was written by an older fervid"
    ):
        open_or_create(out, gapped, ENCODER, 3)


def test_a_new_store_refuses_rows_that_skip_frames(tmp_path):
    with pytest.raises(DataError) as error:
        open_or_create(tmp_path / "store", make_table([0, 0, 1, 1], [1, 2, 1, 3]), ENCODER, 3)
    assert str(error.value) == (
        f"{tmp_path / 'store'}: the rows of video b jump from frame 1 to frame 3: a store holds "
        "every frame of a video, frames without a face crop as rows without one (build the "
        "table with split_frames, or frame_axis for a frame list)"
    )


def test_the_frame_gap_is_the_first_jump_within_a_video_not_one_between_videos():
    # a: 1 2 3, then b: 1 2 5 6 9. From a's 3 to b's 1 is a new video, not a gap.
    table = make_table([0, 0, 0, 1, 1, 1, 1, 1], [1, 2, 3, 1, 2, 5, 6, 9])
    assert frame_gap(table) == ("b", 2, 5)
    assert frame_gap(make_table([0, 0, 0, 1, 1], [1, 2, 3, 1, 2])) is None
    assert frame_gap(make_table([0, 0, 1, 1], [4, 5, 6, 7])) is None  # a starts at 4: no jump


def test_video_names_are_the_videos_that_have_rows():
    assert video_names(make_table([0, 0, 2], [1, 2, 1])) == {"a", "c"}


def test_two_tables_have_the_same_frames_when_videos_rows_frames_and_labels_agree():
    base = make_table([0, 0, 1], [1, 2, 1], [0, 1, 2], [True, True, True])
    assert same_frames(base, make_table([0, 0, 1], [1, 2, 1], [0, 1, 2], [True, False, True]))
    assert same_frames(base, FrameTable(base.videos, ["x"] * 3, base.video, base.frame,
                                        base.label, base.has_image))  # fmt: skip
    for other in (
        make_table([0, 0, 1], [1, 2, 1], [0, 1, 2], names=("a", "x", "c")),
        make_table([0, 1, 1], [1, 2, 1], [0, 1, 2]),
        make_table([0, 0, 1], [1, 2, 2], [0, 1, 2]),
        make_table([0, 0, 1], [1, 2, 1], [0, 1, 3]),
    ):
        assert not same_frames(base, other)


def test_the_frame_axis_check_refuses_only_old_stores_whose_rows_skip_frames(tmp_path):
    gapped = make_table([0, 0, 1, 1, 1], [1, 2, 1, 2, 5])
    with pytest.raises(DataError) as error:
        check_frame_axis(tmp_path, {"format_version": 1}, gapped)
    assert str(error.value) == (
        f"{tmp_path}: this store was written by an older fervid (store format 1) that skipped "
        "frames with neither a label nor a face crop (video b jumps from frame 2 to 5), so its "
        f"rows are not frames apart; rebuild it: delete {tmp_path} and rerun `fervid features` "
        "with the same --model, --split and --out"
    )
    with pytest.raises(DataError, match=r"older fervid \(store format 0\)"):
        check_frame_axis(tmp_path, {}, gapped)
    check_frame_axis(tmp_path, {"format_version": 2}, gapped)  # written on the frame axis
    check_frame_axis(tmp_path, {"format_version": 1}, two_videos())  # no frame skipped


def test_progress_is_flushed_before_it_is_recorded(tmp_path):
    path = tmp_path / "progress-3.json"
    flushed = []

    class Rows:
        def flush(self):
            flushed.append(path.exists())

    save_progress(path, {"done": ["a"]}, Rows(), Rows())
    assert flushed == [False, False]  # both flushed, before the file was written
    assert_written(path, {"done": ["a"]})


def test_progress_files_are_gathered_into_store_json_and_deleted(tmp_path):
    out = tmp_path / "store"
    open_or_create(out, two_videos(), ENCODER, 3)
    write_meta(out, done=["c"])
    (out / "progress-1.json").write_text(json.dumps({"done": ["a", "c"]}))
    (out / "progress-0.json").write_text(json.dumps({"done": ["b"]}))
    (out / "progress.json").write_text(json.dumps({"done": ["x"]}))  # not a process's file
    assert meta_done(out) == ["c", "b", "a", "c"]  # store.json's, then progress-0, progress-1
    meta = gather_progress(out)
    assert meta == {**read_meta(out), "done": ["a", "b", "c"]}
    assert read_meta(out)["done"] == ["a", "b", "c"]
    assert_written(out / "store.json", meta)
    assert sorted(p.name for p in out.glob("progress*")) == ["progress.json"]
    assert gather_progress(out) == meta  # nothing more to gather


def test_a_store_is_finished_once_every_video_is_done(tmp_path):
    out = tmp_path / "store"
    table = two_videos(has_image=[True, True, False, True, True])  # frame a/3 has no crop
    open_or_create(out, table, ENCODER, 3)
    np.save(out / "present.npy", np.array([True, False, False, True, True]))  # a/2 unreadable
    for done in (["a"], ["a", "a"]):  # one of two videos
        write_meta(out, done=done)
        finish_store(out, table)
        assert not read_meta(out)["complete"]
        assert FrameTable.load(out / "index.npz").has_image.tolist() == table.has_image.tolist()
    write_meta(out, done=["a"])
    (out / "progress-0.json").write_text(json.dumps({"done": ["b"]}))
    finish_store(out, table)
    meta = read_meta(out)
    assert_written(out / "store.json", meta)
    assert meta["complete"] and meta["done"] == ["a", "b"]
    assert meta["frames_with_image"] == 3
    assert meta["unreadable_images"] == 1
    finished = FrameTable.load(out / "index.npz")
    assert finished.has_image.tolist() == [True, False, False, True, True]
    assert same_frames(finished, table)
    assert table.has_image.tolist() == [True, True, False, True, True]  # the caller's is kept

    np.save(out / "present.npy", np.ones(5, bool))
    finish_store(out, table)  # complete already: nothing changes
    assert FrameTable.load(out / "index.npz").has_image.tolist() == finished.has_image.tolist()
    assert read_meta(out) == meta


def test_write_store_copies_the_rows_chunk_by_chunk_with_zeros_where_there_is_no_face(tmp_path):
    has_image = [True, False, True, True, False]
    table = two_videos(has_image)
    features = np.arange(15, dtype=np.float32).reshape(5, 3) + 1
    logits = np.arange(40, dtype=np.float32).reshape(5, 8) / 4
    expected = features.copy()
    expected[[1, 4]] = 0  # rows 1 and 4 have no face
    read = []

    class Rows:
        """Any sliceable array: records the rows asked for."""

        def __init__(self, array):
            self.array, self.shape = array, array.shape

        def __getitem__(self, rows):
            read.append((rows.start, rows.stop))
            return self.array[rows]

    write_store(tmp_path / "chunked", table, ENCODER, Rows(features), Rows(logits), 2)
    assert read == [(0, 2), (0, 2), (2, 4), (2, 4), (4, 5), (4, 5)]  # features, then logits
    for chunk in (2, 3, 65_536):
        store = write_store(tmp_path / f"store{chunk}", table, ENCODER, features, logits, chunk)
        assert store.features.dtype == np.float16
        np.testing.assert_array_equal(store.features, expected)
        np.testing.assert_array_equal(store.logits, logits)
        assert np.load(store.path / "present.npy").tolist() == has_image
        assert store.table.has_image.tolist() == has_image
        assert store.meta["done"] == ["a", "b"] and store.meta["complete"]
        assert store.meta["frames_with_image"] == 3 and store.meta["unreadable_images"] == 0
    default = write_store(tmp_path / "default", table, ENCODER, features, logits)
    np.testing.assert_array_equal(default.features, expected)


# ----------------------------------------------------------------------------------------------
# Reading


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    """Videos a (rows 0-2) and b (rows 3-4); row 2 has no face. Logits: row 0 all 0, row 1 ln 3
    on class 0, row 3 50 on classes 2 and 5 (exp(100) would overflow float32), row 4 -1 on
    class 7."""
    logits = np.zeros((5, 8), np.float32)
    logits[1, 0] = np.log(3)
    logits[2, 4] = 9.0
    logits[3, [2, 5]] = 50.0
    logits[4, 7] = -1.0
    features = np.arange(15, dtype=np.float32).reshape(5, 3)
    table = two_videos([True, True, False, True, True])
    return write_store(tmp_path / "store", table, ENCODER, features, logits)


def test_a_complete_store_opens_memory_mapped_and_read_only(store):
    opened = FeatureStore.open(str(store.path))
    assert opened.path == store.path and opened.meta == read_meta(store.path)
    assert same_frames(opened.table, store.table)
    for array in (opened.features, opened.logits):
        assert isinstance(array, np.memmap) and not array.flags.writeable
    assert opened.features.shape == (5, 3) and opened.logits.shape == (5, 8)
    assert opened.encoder == ENCODER
    assert opened.feature_dim == 3


def test_a_store_without_a_version_opens_as_format_0(store):
    meta = read_meta(store.path)
    del meta["format_version"]
    (store.path / "store.json").write_text(json.dumps(meta))
    assert FeatureStore.open(store.path).meta == meta


def test_a_store_is_refused_when_missing_newer_incomplete_or_inconsistent(store, tmp_path):
    path = store.path
    with pytest.raises(DataError) as error:
        FeatureStore.open(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: not a feature store (no store.json); write one with `fervid features`"
    )
    write_meta(path, format_version=3)
    with pytest.raises(DataError) as error:
        FeatureStore.open(path)
    assert (
        str(error.value) == f"{path / 'store.json'}: store format 3 is newer than this fervid reads"
    )
    write_meta(path, format_version=2, complete=False, done=["a"])
    with pytest.raises(DataError) as error:
        FeatureStore.open(path)
    assert str(error.value) == (
        f"{path}: incomplete feature store (1 of 2 videos done); rerun `fervid features` with "
        "the same --out to finish it"
    )
    write_meta(path, complete=True, done=["a", "b"])
    assert FeatureStore.open(path).feature_dim == 3
    mismatch = f"{path}: features.npy / logits.npy do not match index.npz; re-extract"
    for name, shape in (
        ("features.npy", (5, 4)),
        ("features.npy", (4, 3)),
        ("logits.npy", (4, 8)),
    ):
        good = np.load(path / name)
        np.save(path / name, np.zeros(shape, good.dtype))
        with pytest.raises(DataError) as error:
            FeatureStore.open(path)
        assert str(error.value) == mismatch, name
        np.save(path / name, good)


def test_an_old_store_whose_rows_skip_frames_does_not_open(store):
    table = make_table([0, 0, 0, 1, 1], [1, 2, 4, 1, 2])
    table.save(store.path / "index.npz")
    write_meta(store.path, format_version=1)
    where = re.escape(str(store.path))
    with pytest.raises(DataError, match=rf"^{where}: .*\(video a jumps from frame 2 to 4\)"):
        FeatureStore.open(store.path)


def test_the_rows_and_features_of_one_video(store):
    assert store.video_rows("a") == slice(0, 3)
    assert store.video_rows("b") == slice(3, 5)
    np.testing.assert_array_equal(store.video_features("b"), [[9, 10, 11], [12, 13, 14]])
    with pytest.raises(
        KeyError, match=rf"video 'c' is not in the store {re.escape(str(store.path))}"
    ):
        store.video_rows("c")


def test_frame_probabilities_are_the_softmax_of_each_rows_logits_and_zero_without_a_face(store):
    probs, known = store.frame_probabilities()
    expected = np.zeros((5, 8))
    expected[0] = 1 / 8  # all logits equal
    expected[1] = [3 / 10] + [1 / 10] * 7  # e^ln3 = 3 against seven e^0 = 1
    expected[3, [2, 5]] = 1 / 2  # the two largest, 50 each, against e^-50 ~ 0
    e = np.exp(-1.0)
    expected[4] = [1 / (7 + e)] * 7 + [e / (7 + e)]
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-12)  # row 2: no face
    assert known.tolist() == [True, True, False, True, True]
    known[0] = False  # a copy: the store's table is left alone
    assert store.table.has_image[0]


def test_a_store_is_checked_against_the_encoder_a_model_expects(store):
    store.check_encoder(dict(ENCODER), "the model")
    with pytest.raises(DataError) as error:
        store.check_encoder(OTHER, "temporal.frame_model")
    assert str(error.value) == (
        f"{store.path}: features were made by frame model synthetic 777777777777 (test), but "
        "temporal.frame_model is synthetic 999999999999 (other); re-extract with that model "
        "(`fervid features --model ...`) or point the config at the model that made it"
    )


def test_the_videos_a_split_needs_and_the_store_lacks_are_named(store):
    store.check_videos(["b", "a", "b"], "validation")
    with pytest.raises(DataError) as error:
        store.check_videos(["a", "d", "c", "d"], "train")
    assert str(error.value) == (
        f"{store.path}: 2 of the 3 videos of the train split are not in this store (c, d); "
        "re-extract it from the current train split"
    )
    five = ["a", "m1", "m2", "m3", "m4", "m5"]
    with pytest.raises(DataError, match=r"5 of the 6 videos .* \(m1, m2, m3, m4, m5\); re-"):
        store.check_videos(five, "validation")
    with pytest.raises(DataError, match=r"6 of the 7 videos .* \(m1, m2, m3, m4, m5 \.\.\.\)"):
        store.check_videos([*five, "m6"], "validation")
