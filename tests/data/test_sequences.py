"""The per-frame sequence helpers that evaluation, the stage-2 baselines and predict share."""

import numpy as np
import pytest

from fervid.data.sequences import fill_from_neighbours, moving_average


def test_missing_frames_are_interpolated_between_neighbours():
    frames = np.array([1, 2, 3, 4, 6])
    probs = np.array([[1, 0], [0, 0], [0, 0], [0, 1], [0, 0]], dtype=np.float32)
    known = np.array([True, False, False, True, False])
    filled = fill_from_neighbours(frames, probs, known)
    np.testing.assert_allclose(filled[1], [2 / 3, 1 / 3])
    np.testing.assert_allclose(filled[2], [1 / 3, 2 / 3])
    np.testing.assert_allclose(filled[4], [0, 1])  # after the last known frame: nearest
    none_known = fill_from_neighbours(frames, probs, np.zeros(5, bool))
    np.testing.assert_allclose(none_known, 0.5)


def test_moving_average_of_one_sequence_is_centred_and_cut_at_the_ends():
    probs = np.zeros((5, 2), np.float32)
    probs[:, 0] = [1, 2, 3, 4, 10]
    averaged, has_value = moving_average(probs, 3)
    np.testing.assert_allclose(averaged[:, 0], [1.5, 2, 3, 17 / 3, 7])
    assert has_value.all() and averaged.dtype == np.float32
    even, _ = moving_average(probs, 2)  # an even window reaches one row further ahead
    np.testing.assert_allclose(even[:, 0], [1.5, 2.5, 3.5, 7, 10])
    np.testing.assert_array_equal(moving_average(probs, 1)[0], probs)


def test_moving_average_leaves_out_unknown_rows_and_says_where_none_was_known():
    probs = np.array([[4.0], [100.0], [8.0], [100.0], [100.0], [100.0]], np.float32)
    known = np.array([True, False, True, False, False, False])
    averaged, has_value = moving_average(probs, 3, known)
    np.testing.assert_allclose(averaged[:4, 0], [4, 6, 8, 8])
    assert has_value.tolist() == [True, True, True, True, False, False]
    assert averaged[5, 0] == 0


def test_moving_average_refuses_a_window_below_one():
    with pytest.raises(ValueError, match="window"):
        moving_average(np.zeros((3, 8)), 0)
