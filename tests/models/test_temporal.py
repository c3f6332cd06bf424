"""The Temporal Encoder and its windows: boundaries, masks, overlap averaging, edge cases."""

import numpy as np
import pytest
import torch

from fervid.config import TemporalConfig
from fervid.data.table import FrameTable
from fervid.errors import ConfigError
from fervid.evaluate import prediction_table
from fervid.models.temporal import (
    POSITIONAL_ENCODINGS,
    TemporalEncoder,
    WindowAverager,
    gather_windows,
    make_windows,
    predict_windows,
)

TINY = dict(window=16, width=16, heads=2, ffn_width=32, layers=2, dropout=0.0, input_dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def tiny_model(seed=0, **overrides) -> TemporalEncoder:
    torch.manual_seed(seed)
    return TemporalEncoder(6, TemporalConfig(**{**TINY, **overrides})).eval()


def slices(lengths):
    edges = np.concatenate([[0], np.cumsum(lengths)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def test_windows_start_at_each_video_and_pad_at_its_end_without_crossing_videos():
    windows = make_windows(slices([5, 32, 40]), size=16, stride=8)
    # video 0 (rows 0-4): shorter than T, one padded window
    # video 1 (rows 5-36): 5, 13, 21, the last one ending exactly at the video's end
    # video 2 (rows 37-76): 37, 45, 53, 61
    assert windows.starts.tolist() == [0, 5, 13, 21, 37, 45, 53, 61]
    assert windows.lengths.tolist() == [5, 16, 16, 16, 16, 16, 16, 16]
    uneven = make_windows(slices([20]), size=16, stride=8)
    assert uneven.starts.tolist() == [0, 8]
    assert uneven.lengths.tolist() == [16, 12]  # the last window is padded past the end
    for video in slices([5, 32, 40]):
        inside = (windows.starts >= video.start) & (windows.starts < video.stop)
        assert (windows.starts[inside] + windows.lengths[inside] <= video.stop).all()
        covered = np.zeros(video.stop, bool)
        for s, n in zip(windows.starts[inside], windows.lengths[inside]):
            covered[s : s + n] = True
        assert covered[video].all()


def test_gathered_windows_mask_padding_and_frames_without_a_face():
    lengths = [5, 20]
    rows = sum(lengths)
    features = np.arange(rows, dtype=np.float16)[:, None].repeat(3, axis=1) + 1
    has_image = np.ones(rows, bool)
    has_image[[2, 9]] = False
    features[~has_image] = 0
    labels = np.arange(rows) % 8
    labels[3] = -1
    windows = make_windows(slices(lengths), size=8, stride=4)
    batch = gather_windows(features, has_image, labels, windows, np.arange(len(windows)), 8)
    first = 0  # video 0: 5 real frames then padding
    assert batch.real[first].tolist() == [True] * 5 + [False] * 3
    assert batch.mask[first].tolist() == [False, False, True, False, False, True, True, True]
    assert batch.labels[first].tolist() == [0, 1, 2, -1, 4, -1, -1, -1]
    assert (batch.features[first, 5:] == 0).all()
    assert batch.rows[batch.real].max() < rows
    # no window of video 1 reads a row of video 0
    assert (batch.rows[1:][batch.real[1:]] >= 5).all()
    # row 9 has no face: masked wherever it appears
    assert batch.mask.numpy()[batch.rows == 9].all()


def test_masked_frames_cannot_influence_other_frames():
    model = tiny_model()
    features = torch.randn(2, 16, 6)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, [3, 4, 10]] = True
    with torch.no_grad():
        before = model(features, mask)
        changed = features.clone()
        changed[:, [3, 4, 10]] = 100.0  # whatever is there is not read
        model.missing_token.add_(5.0)  # nor is the token attended to by others
        after = model(changed, mask)
        # without the key padding mask the token would leak into the other frames
        unmasked_keys = model.encoder(
            model.position(
                torch.where(mask[..., None], model.missing_token, model.project(changed))
            ),
            src_key_padding_mask=torch.zeros_like(mask),
        )
    visible = ~mask
    torch.testing.assert_close(before[visible], after[visible])
    assert not torch.allclose(after[visible], model.head(unmasked_keys)[visible])


def test_masked_frames_are_predicted_from_their_context_in_eval_mode():
    model = tiny_model()
    features = torch.randn(1, 16, 6)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 5] = True
    with torch.no_grad():
        logits = model(features, mask)
        other_context = model(features + torch.randn(1, 16, 6), mask)
        model.train()  # no dropout here: the training path must agree with the eval fast path
        trained_path = model(features, mask)
    assert logits[0, 5].abs().sum() > 0
    assert not torch.allclose(logits[0, 5], other_context[0, 5])
    torch.testing.assert_close(logits, trained_path, rtol=1e-4, atol=1e-5)


def test_a_window_with_no_face_gives_finite_logits_and_gradients():
    model = tiny_model().train()
    features = torch.randn(2, 16, 6)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, :4] = False
    logits = model(features, mask)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", POSITIONAL_ENCODINGS.names())
def test_every_positional_encoding_makes_position_matter(name):
    model = tiny_model(positional=name)
    with torch.no_grad():
        same = torch.randn(1, 1, 6).repeat(1, 16, 1)  # identical frames: only position differs
        logits = model(same, torch.zeros(1, 16, dtype=torch.bool))
    assert not torch.allclose(logits[0, 0], logits[0, 9])


def test_unknown_positional_encoding_and_bad_widths_are_config_errors():
    with pytest.raises(ConfigError, match="learned"):
        tiny_model(positional="rotary")
    with pytest.raises(ConfigError, match="temporal.width: must be a multiple of temporal.heads"):
        tiny_model(width=15)


class WindowStub(torch.nn.Module):
    """Logits that depend on which window (its first row, read from the features) and on the
    position within it, so every window gives a frame a different probability."""

    def __init__(self, missing="context"):
        super().__init__()
        self.config = TemporalConfig(window=8, eval_stride=4, missing=missing)
        self.head = torch.nn.Linear(1, 8)

    def forward(self, features, mask):
        start = features[:, :1, :1]  # (B,1,1) the window's first row (+1)
        position = torch.arange(features.shape[1]).view(1, -1, 1)
        logits = torch.zeros(*features.shape[:2], 8)
        logits[..., :1] = start / 10 + position / 7
        return logits


def stub_probability(start_row: int, position: int) -> np.ndarray:
    logits = np.zeros(8)
    logits[0] = (start_row + 1) / 10 + position / 7
    return np.exp(logits) / np.exp(logits).sum()


def test_a_frame_covered_by_k_windows_gets_the_mean_of_their_k_predictions():
    lengths = [13, 3]
    rows = sum(lengths)
    features = (np.arange(rows, dtype=np.float32) + 1)[:, None]
    has_image = np.ones(rows, bool)
    has_image[0] = True  # the stub reads the window's first row: keep it a face
    probs, known = predict_windows(WindowStub(), features, has_image, slices(lengths))
    # video 0, T=8, stride 4: windows at rows 0, 4, 8 (the last padded); video 1: one at 13
    starts = {0: [0, 4, 8], 1: [13]}
    for row in range(rows):
        video = 0 if row < 13 else 1
        covering = [s for s in starts[video] if s <= row < s + 8]
        expected = np.mean([stub_probability(s, row - s) for s in covering], axis=0)
        np.testing.assert_allclose(probs[row], expected, rtol=1e-5, err_msg=f"row {row}")
    assert known.all()
    assert len([s for s in starts[0] if s <= 5 < s + 8]) == 2  # rows 4-11 are covered twice


def test_frames_without_a_face_are_predicted_from_context_or_left_to_the_neighbours():
    features = (np.arange(12, dtype=np.float32) + 1)[:, None]
    has_image = np.ones(12, bool)
    has_image[[5, 6]] = False
    _, known = predict_windows(WindowStub("context"), features, has_image, slices([12]))
    assert known.all()
    _, known = predict_windows(WindowStub("neighbours"), features, has_image, slices([12]))
    assert known.tolist() == [True] * 5 + [False, False] + [True] * 5


def test_a_video_with_no_face_at_all_is_unknown_and_ends_up_uniform():
    model = tiny_model()
    has_image = np.ones(40, bool)
    has_image[10:30] = False  # video 1 (rows 10-29) has no face at all
    features = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float16)
    features[~has_image] = 0
    probs, known = predict_windows(model, features, has_image, slices([10, 20, 10]))
    assert np.isfinite(probs).all()
    assert not known[10:30].any() and known[:10].all() and known[30:].all()
    table = FrameTable(
        ["a", "b", "c"],
        ["{}"] * 3,
        np.repeat([0, 1, 2], [10, 20, 10]),
        np.r_[1:11, 1:21, 1:11],
        np.zeros(40),
        has_image,
    )
    filled = prediction_table(table, probs, known)
    np.testing.assert_allclose(filled.iloc[10:30, -8:].to_numpy(), 1 / 8)


def test_a_window_longer_than_the_video_is_one_padded_window():
    model = tiny_model(window=64)
    features = np.random.default_rng(1).normal(size=(10, 6)).astype(np.float16)
    probs, known = predict_windows(model, features, np.ones(10, bool), [slice(0, 10)])
    assert known.all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    windows = make_windows([slice(0, 10)], size=64, stride=32)
    assert windows.starts.tolist() == [0] and windows.lengths.tolist() == [10]


def test_window_averager_counts_duplicates_within_one_batch():
    averager = WindowAverager(3, classes=2)
    probs = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.2, 0.8]]])
    rows = np.array([[0, 1], [1, 2]])
    averager.add(probs, rows, np.ones((2, 2), bool))
    result, known = averager.result()
    np.testing.assert_allclose(result, [[1.0, 0.0], [0.25, 0.75], [0.2, 0.8]])
    assert known.all()


def test_logits_input_reads_the_frozen_frame_head_of_the_features():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 8)
    reads_logits = TemporalEncoder(6, TemporalConfig(**TINY, input="logits")).eval()
    reads_logits.set_frame_head(head)
    reads_logits.set_feature_stats(np.full(8, 0.5), np.full(8, 2.0))
    # the same network fed the logits themselves
    reference = TemporalEncoder(8, TemporalConfig(**TINY)).eval()
    state = {k: v for k, v in reads_logits.state_dict().items() if "frame_head" not in k}
    reference.load_state_dict(state)
    features = torch.randn(2, 16, 6)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, 3] = True
    with torch.no_grad():
        torch.testing.assert_close(
            reads_logits(features, mask), reference(head(features), mask), rtol=1e-5, atol=1e-5
        )
    # the head travels with the weights and is not trained
    assert torch.equal(reads_logits.state_dict()["frame_head_weight"], head.weight)
    assert "frame_head_weight" not in dict(reads_logits.named_parameters())


def test_logits_input_with_a_finetuned_encoder_is_refused():
    with pytest.raises(ConfigError, match="temporal.input"):
        TemporalConfig(input="logits", finetune_encoder=True)


def test_video_standardised_rows_have_zero_mean_unit_std_per_video_and_no_face_stays_zero():
    from fervid.models.temporal import VideoStandardised

    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 6)).astype(np.float16)
    features[[3, 20]] = 0
    has_image = np.ones(30, bool)
    has_image[[3, 20]] = False
    normalised = VideoStandardised(features, has_image, slices([12, 18]))
    values = normalised[np.arange(30)]
    for rows in slices([12, 18]):
        faces = values[rows][has_image[rows]]
        np.testing.assert_allclose(faces.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(faces.std(axis=0), 1, atol=1e-3)
    assert (values[[3, 20]] == 0).all()
    np.testing.assert_array_equal(normalised[np.array([[5, 25]])], values[[[5, 25]]])


def test_per_video_normalisation_takes_out_what_stays_constant_within_a_video():
    # two videos with the same expressions, one with every feature shifted and scaled (another
    # person, another light): with normalize=video the Temporal Encoder cannot tell them apart
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(40, 6)).astype(np.float32)
    offset, scale = rng.normal(size=6).astype(np.float32) * 3, np.float32(2.5)
    features = np.concatenate([frames, frames * scale + offset])
    has_image = np.ones(80, bool)
    for normalize, same in (("video", True), ("global", False)):
        model = tiny_model(normalize=normalize)
        probs, known = predict_windows(model, features, has_image, slices([40, 40]))
        assert known.all()
        assert np.allclose(probs[:40], probs[40:], atol=1e-5) == same, normalize


def test_per_video_normalisation_is_refused_where_there_are_no_stored_features_to_normalise():
    with pytest.raises(ConfigError, match="temporal.normalize"):
        TemporalConfig(normalize="video", input="logits")
    with pytest.raises(ConfigError, match="temporal.normalize"):
        TemporalConfig(normalize="video", finetune_encoder=True)
