import numpy as np

from fervid.data.samplers import ClassBalancedSampler


def imbalanced_labels():
    # Aff-Wild2-like imbalance: class 0 has 2000 samples, class 3 has 10, class 5 none.
    counts = [2000, 60, 30, 10, 700, 500, 0, 1500]
    return np.concatenate([np.full(c, k) for k, c in enumerate(counts)])


def test_classes_are_drawn_equally_often():
    labels = imbalanced_labels()
    sampler = ClassBalancedSampler(labels, num_samples=70_000, seed=1)
    drawn = np.bincount(labels[list(sampler)], minlength=8)
    present = drawn[[0, 1, 2, 3, 4, 5, 7]]
    assert drawn[6] == 0
    np.testing.assert_allclose(present / present.sum(), 1 / 7, atol=0.01)


def test_draws_cover_members_of_a_rare_class_uniformly():
    labels = imbalanced_labels()
    sampler = ClassBalancedSampler(labels, num_samples=70_000, seed=2)
    rare = np.flatnonzero(labels == 3)
    hits = np.bincount(np.array(list(sampler)), minlength=len(labels))[rare]
    assert hits.min() > 0.6 * hits.mean()


def test_deterministic_per_seed_and_epoch():
    labels = imbalanced_labels()
    a = ClassBalancedSampler(labels, 500, seed=3)
    b = ClassBalancedSampler(labels, 500, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_shards_do_not_overlap_and_make_up_the_single_process_sequence():
    labels = imbalanced_labels()
    single = ClassBalancedSampler(labels, 1000, seed=4)
    shards = [
        list(ClassBalancedSampler(labels, 500, seed=4, rank=r, world_size=2)) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 500
    merged = np.empty(1000, dtype=np.int64)
    merged[0::2], merged[1::2] = shards
    np.testing.assert_array_equal(merged, single.global_indices())


def test_unbalanced_option_follows_data_frequencies():
    labels = imbalanced_labels()
    sampler = ClassBalancedSampler(labels, 50_000, seed=5, balanced=False)
    drawn = np.bincount(labels[list(sampler)], minlength=8) / 50_000
    np.testing.assert_allclose(drawn, np.bincount(labels, minlength=8) / len(labels), atol=0.01)
