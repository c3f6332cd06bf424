"""Fast unit tests of the windows of stage 2 (``fervid.models.windows``) with values worked out by
hand: which windows cover a video, the per-video standardisation, the arrays of a batch of
windows, the per-row mean over the windows covering a row, and the stitching of a whole video."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.config import TemporalConfig
from fervid.errors import ConfigError
from fervid.models.windows import (
    VideoStandardised,
    WindowAverager,
    Windows,
    make_windows,
    normalised_for,
    predict_windows_with,
    window_arrays,
)


def test_windows_are_size_rows_every_stride_rows_and_the_last_one_reaches_the_end():
    # size 3, stride 2. Video 0 (rows 0-4, 5 rows): 1 + ceil((5 - 3) / 2) = 2 windows, at 0 and 2.
    # Video 1 (rows 5-10, 6 rows): 1 + ceil(3 / 2) = 3 windows, at 5, 7 and 9, the last one
    # holding rows 9-10 and padding. Video 2 (rows 11-12) is shorter than a window: one, padded.
    # Video 3 has no rows and no window.
    windows = make_windows([slice(0, 5), slice(5, 11), slice(11, 13), slice(13, 13)], 3, 2)
    assert windows.starts.tolist() == [0, 2, 5, 7, 9, 11]
    assert windows.lengths.tolist() == [3, 3, 3, 3, 2, 2]
    assert windows.starts.dtype == windows.lengths.dtype == np.int64
    assert len(windows) == 6
    # a stride of the window's size: windows side by side, 1 + ceil(4 / 3) = 3 of them
    side_by_side = make_windows([slice(0, 7)], 3, 3)
    assert side_by_side.starts.tolist() == [0, 3, 6]
    assert side_by_side.lengths.tolist() == [3, 3, 1]
    one = make_windows([slice(2, 5)], 1, 1)
    assert one.starts.tolist() == [2, 3, 4] and one.lengths.tolist() == [1, 1, 1]
    # a video of one row is one window; a video with no rows between two others is skipped
    single = make_windows([slice(0, 1), slice(1, 1), slice(1, 3)], 3, 2)
    assert single.starts.tolist() == [0, 1] and single.lengths.tolist() == [1, 2]


def test_no_rows_give_no_windows():
    for video_slices in ([], [slice(4, 4)]):
        windows = make_windows(video_slices, 3, 2)
        assert len(windows) == 0
        assert windows.starts.tolist() == windows.lengths.tolist() == []
        assert windows.starts.dtype == windows.lengths.dtype == np.int64


def test_a_window_size_or_stride_below_one_or_a_stride_past_the_window_is_refused():
    for size, stride in ((0, 1), (3, 0)):
        with pytest.raises(ConfigError) as error:
            make_windows([slice(0, 5)], size, stride)
        assert str(error.value) == (
            f"window size and stride must be positive (got {size}, {stride})"
        )
    with pytest.raises(ConfigError) as error:
        make_windows([slice(0, 5)], 3, 4)
    assert str(error.value) == (
        "window stride 4 is larger than the window (3): the frames between two windows would be "
        "skipped"
    )


def standardised_example():
    """Video 0 (rows 0-3): column 0 = 1, 3, (no face: 100), 5: mean 3, std sqrt(8/3); column 1
    = 0 at every face: std 0, floored to 1e-3. Video 1 (rows 4-5): column 0 = 300 and 302 (mean
    301, std 1; their squares overflow float16), column 1 = 0 and 2^-13 (mean and std 2^-14,
    below the floor of 1e-3). Video 2 (rows 6-7) has no face."""
    features = np.array(
        [[1, 0], [3, 0], [100, 7], [5, 0], [300, 0], [302, 2**-13], [7, 7], [8, 8]],
        dtype=np.float16,
    )
    has_image = np.array([True, True, False, True, True, True, False, False])
    return features, has_image, [slice(0, 4), slice(4, 6), slice(6, 8)]


def test_rows_are_standardised_by_the_mean_and_std_of_their_videos_faces():
    features, has_image, video_slices = standardised_example()
    normalised = VideoStandardised(features, has_image, video_slices)
    std0 = np.sqrt(((1 - 3) ** 2 + 0 + (5 - 3) ** 2) / 3)
    tiny = 2**-13 / 2  # video 1, column 1: mean and std 2^-14, floored to 1e-3
    expected = np.array(
        [
            [(1 - 3) / std0, 0],  # video 0, column 1: all 0, std floored, stays 0
            [(3 - 3) / std0, 0],
            [0, 0],  # no face
            [(5 - 3) / std0, 0],
            [(300 - 301) / 1, (0 - tiny) / 1e-3],
            [(302 - 301) / 1, (2**-13 - tiny) / 1e-3],
            [0, 0],  # video 2: no face at all
            [0, 0],
        ]
    )
    values = normalised[np.arange(8)]
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(normalised.mean, [[3, 0], [301, tiny], [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(normalised.std, [[std0, 1e-3], [1, 1e-3], [1, 1]], rtol=1e-6)
    assert normalised.mean.dtype == normalised.std.dtype == np.float32
    # indexed like the array it wraps: a (1, 2) array of rows gives (1, 2, width)
    np.testing.assert_array_equal(normalised[np.array([[5, 0]])], values[[[5, 0]]])
    assert len(normalised) == 8 and normalised.shape == (8, 2)


def test_float64_features_are_standardised_to_float32():
    features, has_image, video_slices = standardised_example()
    normalised = VideoStandardised(features.astype(np.float64), has_image, video_slices)
    assert normalised[np.arange(3)].dtype == np.float32


def test_a_long_video_is_standardised_over_all_its_rows_read_in_chunks_of_8192():
    # rows 8192 and 8193 straddle the first chunk boundary of a 8195-row video (after a 3-row
    # one); a row read twice or skipped would change the mean and the std
    n = 8195
    features = np.zeros((3 + n, 1), np.float32)
    features[3 + 8192] = 1.0
    features[:3] = 5.0
    has_image = np.ones(3 + n, bool)
    normalised = VideoStandardised(features, has_image, [slice(0, 3), slice(3, 3 + n)])
    mean = 1 / n  # one 1 among n rows
    std = np.sqrt(1 / n - mean**2)
    np.testing.assert_allclose(normalised.mean[1], [mean], rtol=1e-6)
    np.testing.assert_allclose(normalised.std[1], [std], rtol=1e-6)


def test_the_standardisation_is_used_with_normalize_video_only():
    features, has_image, video_slices = standardised_example()
    video = normalised_for(TemporalConfig(normalize="video"), features, has_image, video_slices)
    assert isinstance(video, VideoStandardised) and video.features is features
    assert normalised_for(TemporalConfig(), features, has_image, video_slices) is features


def test_a_row_gets_the_mean_of_the_window_positions_that_cover_it_and_are_used():
    averager = WindowAverager(4, classes=2)
    # window 0 covers rows 0, 1; window 1 covers rows 1, 2 but its position on row 2 is not used
    probs = np.array([[[0.2, 0.8], [0.6, 0.4]], [[0.4, 0.6], [1.0, 0.0]]])
    averager.add(probs, np.array([[0, 1], [1, 2]]), np.array([[True, True], [True, False]]))
    result, known = averager.result()
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [[0.2, 0.8], [0.5, 0.5], [0, 0], [0, 0]], rtol=1e-6)
    assert known.tolist() == [True, True, False, False]
    empty, known = WindowAverager(2).result()  # the 8 classes by default
    assert empty.shape == (2, 8) and not empty.any() and not known.any()


def test_window_arrays_read_each_windows_rows_and_mask_padding_and_frames_without_a_face():
    features = np.array([[r + 1, -(r + 1)] for r in range(7)], dtype=np.float16)
    has_image = np.array([True, True, False, True, True, True, True])
    windows = Windows(np.array([0, 2, 4]), np.array([4, 2, 3]))
    values, mask, real, rows = window_arrays(features, has_image, windows, np.array([2, 1]), 4)
    # window 2: rows 4, 5, 6 and one padding position (which repeats row 4)
    # window 1: rows 2 (no face), 3 and two padding positions (repeating row 2)
    assert rows.tolist() == [[4, 5, 6, 4], [2, 3, 2, 2]]
    assert real.tolist() == [[True, True, True, False], [True, True, False, False]]
    assert mask.tolist() == [[False, False, False, True], [True, False, True, True]]
    assert values.dtype == np.float32 and values.shape == (2, 4, 2)
    np.testing.assert_array_equal(
        values, [[[5, -5], [6, -6], [7, -7], [0, 0]], [[3, -3], [4, -4], [0, 0], [0, 0]]]
    )


class Recorder:
    """A Temporal Encoder stand-in: class 0's probability is a position's index in its window
    / 10 (class 1 the rest), so a row's probability is the mean of its positions over the
    windows covering it. Records what it is given."""

    def __init__(self):
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.starts: list[int] = []

    def __call__(self, values, mask):
        self.calls.append((values.copy(), mask.copy()))
        probs = np.zeros((*mask.shape, 2))
        probs[..., 0] = np.arange(mask.shape[1]) / 10
        probs[..., 1] = 1 - probs[..., 0]
        return probs

    def batches(self, starts):
        self.starts += list(starts)
        return starts


def predict(config, has_image, video_slices, **options):
    run = Recorder()
    features = (np.arange(len(has_image), dtype=np.float32) + 1)[:, None]
    probs, known = predict_windows_with(
        run, config, features, has_image, video_slices, batches=run.batches, **options
    )
    return run, probs, known


def test_a_rows_probability_is_the_mean_over_the_windows_covering_it():
    # T = 3 and no eval_stride: stride max(3 // 2, 1) = 1, windows at rows 0, 1 and 2. Row 2 is
    # position 2, 1 and 0 of the three: (0.2 + 0.1 + 0) / 3 = 0.1.
    run, probs, known = predict(TemporalConfig(window=3), np.ones(5, bool), [slice(0, 5)],
                                batch_size=2)  # fmt: skip
    np.testing.assert_allclose(probs[:, 0], [0, 0.05, 0.1, 0.15, 0.2], rtol=1e-6)
    np.testing.assert_allclose(probs[:, 1], [1, 0.95, 0.9, 0.85, 0.8], rtol=1e-6)
    assert probs.dtype == np.float32 and known.all()
    assert [values.shape for values, _ in run.calls] == [(2, 3, 1), (1, 3, 1)]
    assert run.starts == [0, 2]  # batches of 2 windows
    np.testing.assert_array_equal(run.calls[1][0][0, :, 0], [3, 4, 5])  # the third window


def test_the_stride_is_the_given_one_else_eval_stride_else_half_the_window():
    # 5 rows, T = 3: eval_stride 2 gives windows at 0 and 2 (row 2 gets (0.2 + 0) / 2); a given
    # stride of 3 gives windows at 0 and 3 (the second padded)
    _, probs, _ = predict(TemporalConfig(window=3, eval_stride=2), np.ones(5, bool), [slice(0, 5)])
    np.testing.assert_allclose(probs[:, 0], [0, 0.1, 0.1, 0.1, 0.2], rtol=1e-6)
    config = TemporalConfig(window=3, eval_stride=2)
    _, probs, _ = predict(config, np.ones(5, bool), [slice(0, 5)], stride=3)
    np.testing.assert_allclose(probs[:, 0], [0, 0.1, 0.2, 0, 0.1], rtol=1e-6)
    # half the window, at least 1: T = 2 -> 1 (8 windows over 9 rows), T = 4 -> 2 (4 windows)
    for window, count in ((2, 8), (4, 4)):
        run, _, _ = predict(TemporalConfig(window=window), np.ones(9, bool), [slice(0, 9)])
        assert sum(len(values) for values, _ in run.calls) == count, window


def test_rows_without_a_face_are_predicted_from_context_or_left_unknown():
    # video 0: rows 0-3, row 1 without a face; video 1: rows 4-5, no face at all
    has_image = np.array([True, False, True, True, False, False])
    video_slices = [slice(0, 4), slice(4, 6)]
    for missing, expected in (
        ("context", [True, True, True, True, False, False]),
        ("neighbours", [True, False, True, True, False, False]),
    ):
        config = TemporalConfig(window=4, eval_stride=2, missing=missing)
        run, probs, known = predict(config, has_image, video_slices)
        assert known.tolist() == expected, missing
        assert not probs[~known].any()
        assert run.calls[0][1].tolist() == [[False, True, False, False], [True, True, True, True]]


def test_the_windows_read_the_features_standardised_per_video_with_normalize_video():
    # rows 1, 2, 3: mean 2, std sqrt(2/3)
    config = TemporalConfig(window=3, normalize="video")
    run, _, _ = predict(config, np.ones(3, bool), [slice(0, 3)])
    std = np.sqrt(2 / 3)
    np.testing.assert_allclose(run.calls[0][0][0, :, 0], [-1 / std, 0, 1 / std], rtol=1e-6)


def test_no_video_gives_unknown_rows_of_the_eight_classes():
    run, probs, known = predict(TemporalConfig(window=3), np.ones(3, bool), [])
    assert run.calls == []
    assert probs.shape == (3, 8) and not probs.any() and not known.any()
