"""Stage-1 semi-supervised training on the colour-coded fake dataset (machinery, not accuracy)."""

import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from fervid.api import train
from fervid.config import load_config
from fervid.data.unlabelled import read_unlabelled_sources
from fervid.errors import ConfigError, DataError
from fervid.runtime.checkpoint import load_state, load_weights
from fervid.stage1.data import Stage1Data
from tests.helpers import kill_after_first_checkpoint, max_weight_difference

SSL = [
    "model.backbone=test_resnet",
    "model.input_size=32",
    "train.epochs=2",
    "train.steps_per_epoch=6",
    "train.batch_size=8",
    "data.workers=0",
    "ssl.enabled=true",
    "ssl.mu=2",
    "ssl.threshold=flex",
    "ssl.tau=0.6",
    "ssl.debias_lambda=0.5",
    "ssl.debias_momentum=0.9",
    "ssl.log_every=3",
]


def ssl_options(root, *extra):
    return [f"data.root={root}", *SSL, *extra]


@pytest.mark.slow
def test_ssl_run_logs_pseudo_label_statistics(colour_coded_dataset, tmp_path):
    train(load_config(None, ssl_options(colour_coded_dataset)), tmp_path / "run", progress=False)
    steps = [
        json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    ]
    assert [s["step"] for s in steps] == [3, 6, 9, 12]
    for record in steps:
        assert 0.0 <= record["mask_rate"] <= 1.0
        assert (
            len(record["pseudo_histogram"])
            == len(record["thresholds"])
            == len(record["p_hat"])
            == 8
        )
        assert record["pseudo_accuracy_all"] is not None  # the pool ships its truth
        assert sum(record["p_hat"]) == pytest.approx(1.0, abs=1e-4)
    assert steps[-1]["p_hat"] != [0.125] * 8  # p_hat moved away from uniform


@pytest.mark.slow
def test_ssl_resume_restores_teacher_thresholds_and_p_hat(colour_coded_dataset, tmp_path):
    options = ssl_options(colour_coded_dataset, "train.epochs=3")
    train(load_config(None, options), tmp_path / "full", progress=False)
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(killed, ["train", "--run-dir", str(killed), *options])
    state = load_state(killed / "checkpoints" / "last.pt")
    assert state["objective"]["debias"]["p_hat"].shape == (8,)
    assert state["objective"]["threshold"]["selected_label"].shape == (80,)  # one per pool face
    assert state["ema"]
    train(load_config(None, options), killed, resume=True, progress=False)
    full, _ = load_weights(tmp_path / "full" / "model.safetensors")
    resumed, _ = load_weights(killed / "model.safetensors")
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0, msg=key)
    final_full = load_state(tmp_path / "full" / "checkpoints" / "last.pt")["objective"]
    final_resumed = load_state(killed / "checkpoints" / "last.pt")["objective"]
    torch.testing.assert_close(final_full["debias"]["p_hat"], final_resumed["debias"]["p_hat"])
    assert torch.equal(
        final_full["threshold"]["selected_label"], final_resumed["threshold"]["selected_label"]
    )


@pytest.mark.parametrize("cache_images", ["true", "false"])
@pytest.mark.slow
def test_ssl_resume_with_data_workers_is_bit_identical(
    colour_coded_dataset, tmp_path, cache_images
):
    """Issue 17: with DataLoader workers (persistent across epochs), a run SIGKILLed after
    its first epoch and resumed ends with the same weights as an uninterrupted one. With the
    default cache the labelled frames are in memory and the unlabelled faces go through
    workers; without it both go through workers."""
    options = ssl_options(
        colour_coded_dataset,
        "train.epochs=3",
        "data.workers=2",
        f"data.cache_images={cache_images}",
    )
    data = Stage1Data(load_config(None, options), progress=False)
    assert data.unlabelled.num_workers == 2 and data.unlabelled.persistent_workers
    assert (data.labelled.loader is not None) == (cache_images == "false")
    del data
    train(load_config(None, options), tmp_path / "full", progress=False)
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(killed, ["train", "--run-dir", str(killed), *options])
    train(load_config(None, options), killed, resume=True, progress=False)
    difference = max_weight_difference(
        tmp_path / "full" / "model.safetensors", killed / "model.safetensors"
    )
    assert difference == 0.0, f"resumed weights differ by up to {difference:.3g}"


@pytest.mark.slow
def test_labelled_batches_stay_class_uniform_under_ssl(colour_coded_dataset):
    config = load_config(
        None, ssl_options(colour_coded_dataset, "train.steps_per_epoch=200", "train.batch_size=32")
    )
    data = Stage1Data(config)
    drawn = torch.cat([batch.labels for batch in data.labelled])
    shares = torch.bincount(drawn, minlength=8).float() / len(drawn)
    torch.testing.assert_close(shares, torch.full((8,), 1 / 8), atol=0.015, rtol=0)
    unlabelled = next(iter(data.unlabelled))
    assert len(unlabelled.indices) == 2 * 32  # mu x batch
    assert unlabelled.strong.shape == unlabelled.images.shape
    assert not torch.equal(unlabelled.strong, unlabelled.images)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ssl.mu=0", "ssl.mu"),
        ("ssl.tau=1.5", "ssl.tau"),
        ("ssl.tau=0", "ssl.tau"),
        ("ssl.teacher=oracle", "ssl.teacher"),
    ],
)
def test_bad_ssl_config_is_rejected(colour_coded_dataset, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(
            load_config(None, ssl_options(colour_coded_dataset, override)),
            tmp_path / "run",
            progress=False,
        )


def test_ssl_without_any_unlabelled_source_says_so(colour_coded_dataset, tmp_path):
    config = load_config(None, ssl_options(colour_coded_dataset, "ssl.dataset_pool=false"))
    with pytest.raises(ConfigError, match="no unlabelled source"):
        train(config, tmp_path / "run", progress=False)


def test_unlabelled_sources_mix_folders_of_odd_images_and_videos(tmp_path):
    folder = tmp_path / "faces" / "nested"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((50, 40), 128, np.uint8), mode="L").save(folder / "grey.png")
    Image.fromarray(np.zeros((30, 30, 4), np.uint8), mode="RGBA").save(folder / "alpha.png")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(folder / "deep.png")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), i * 10, np.uint8), format="rgb24"
            )
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    table = read_unlabelled_sources(
        [str(tmp_path / "faces"), str(video)], cache_dir=tmp_path / "cache"
    )
    assert len(table) == 3 + 4  # three images, every 5th of 20 video frames
    assert (table.label == -1).all()
    from fervid.data.frames import load_crop

    for row in range(len(table)):
        assert load_crop(table.image_path(row), 32).shape == (3, 32, 32)


def test_unlabelled_source_errors_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: unlabelled source has no images"):
        read_unlabelled_sources([str(tmp_path / "empty")])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="broken.mp4"):
        read_unlabelled_sources([str(broken)], cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="not found"):
        read_unlabelled_sources([str(tmp_path / "missing")])


@pytest.mark.slow
def test_external_model_file_as_the_pseudo_labelling_teacher(colour_coded_dataset, tmp_path):
    """Wiring test: an external teacher that always answers Fear makes every kept
    pseudo-label Fear; blended half with the EMA teacher it still dominates."""
    from fervid.config import to_dict
    from fervid.models.frame import FrameModel
    from fervid.runtime.checkpoint import save_weights

    config = load_config(None, ["model.backbone=test_resnet", "model.input_size=32"])
    fearful = FrameModel(config.model)
    with torch.no_grad():
        fearful.head.weight.zero_()
        fearful.head.bias.zero_()
        fearful.head.bias[3] = 20.0
    teacher = save_weights(
        tmp_path / "fearful", fearful.state_dict(), {"kind": "frame", "config": to_dict(config)}
    )
    options = ssl_options(
        colour_coded_dataset,
        f"ssl.teacher_model={teacher}",
        "ssl.threshold=fixed",
        "ssl.tau=0.5",
        "ssl.debias_lambda=0",
    )
    train(load_config(None, options), tmp_path / "run", progress=False)
    steps = [
        json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    ]
    assert all(s["mask_rate"] == 1.0 and s["pseudo_histogram"][3] == 1.0 for s in steps)
    train(
        load_config(None, [*options, "ssl.teacher_blend=0.6"]), tmp_path / "blend", progress=False
    )
    steps = [
        json.loads(line) for line in (tmp_path / "blend" / "steps.jsonl").read_text().splitlines()
    ]
    assert all(s["pseudo_histogram"][3] == 1.0 for s in steps)  # 0.6 x 1 + 0.4 x p >= 0.6 > tau
