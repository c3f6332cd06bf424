import re

import numpy as np
import pytest

from fervid.data.samplers import ClassBalancedSampler, UnlabelledSampler


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


# --- issue 17: tests that pin the method's claims (docs/testing.md) ----------------------------


def test_defaults_are_seed_0_one_process_and_class_balanced():
    labels = imbalanced_labels()
    default = ClassBalancedSampler(labels, 300)
    explicit = ClassBalancedSampler(labels, 300, seed=0, rank=0, world_size=1, balanced=True)
    assert len(default) == 300 and len(list(default)) == 300
    assert list(default) == list(explicit)


def test_classes_are_the_classes_with_samples():
    sampler = ClassBalancedSampler(imbalanced_labels(), 10)
    assert sampler.classes.tolist() == [0, 1, 2, 3, 4, 5, 7]  # class 6 has no sample


def test_no_labelled_sample_is_an_error_and_one_is_enough():
    with pytest.raises(
        ValueError, match="^ClassBalancedSampler needs at least one labelled sample$"
    ):
        ClassBalancedSampler(np.array([], dtype=np.int64), 10)
    assert list(ClassBalancedSampler(np.array([3]), 5)) == [0] * 5


def test_every_member_of_every_class_is_drawn_and_nothing_else():
    labels = np.array([2, 0, 2, 1, 0, 2])
    drawn = np.array(list(ClassBalancedSampler(labels, 3000, seed=6)))
    assert set(drawn.tolist()) == set(range(6))  # the first member of each class included
    # each class a third of the draws, each member an equal share of its class
    shares = np.bincount(labels[drawn], minlength=3) / 3000
    np.testing.assert_allclose(shares, 1 / 3, atol=0.03)
    within = np.bincount(drawn, minlength=6) / 3000
    np.testing.assert_allclose(within[[1, 4]], 1 / 6, atol=0.03)  # class 0: two members
    np.testing.assert_allclose(within[[0, 2, 5]], 1 / 9, atol=0.03)  # class 2: three


def reference_draws(labels, num_samples, seed, epoch):
    """The documented draw: per draw a uniform class (classes in increasing order), then a
    uniform member of it, members in dataset order; classes drawn first, members class by
    class (one numpy Generator seeded with [seed, epoch])."""
    rng = np.random.default_rng([seed, epoch])
    classes = sorted(set(labels.tolist()))
    members = [np.flatnonzero(labels == c) for c in classes]
    chosen = rng.integers(0, len(classes), size=num_samples)
    draws = np.empty(num_samples, dtype=np.int64)
    for k, group in enumerate(members):
        where = np.flatnonzero(chosen == k)
        draws[where] = group[rng.integers(0, len(group), size=len(where))]
    return draws


def test_draws_are_reproducible_from_labels_seed_and_epoch_with_members_in_dataset_order():
    """Equal labels keep their dataset order (a stable sort), so the draws do not depend on
    numpy's sort algorithm."""
    labels = np.random.default_rng(0).integers(0, 3, 500)
    sampler = ClassBalancedSampler(labels, 400, seed=9)
    sampler.set_epoch(2)
    np.testing.assert_array_equal(sampler.global_indices(), reference_draws(labels, 400, 9, 2))


def test_unbalanced_draws_cover_every_item_including_the_first():
    drawn = set(ClassBalancedSampler(np.array([0, 0, 0, 1, 1]), 500, balanced=False))
    assert drawn == {0, 1, 2, 3, 4}


def test_three_shards_interleave_into_the_global_sequence():
    labels = imbalanced_labels()
    shards = [ClassBalancedSampler(labels, 100, seed=8, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [100, 100, 100]
    merged = np.empty(300, dtype=np.int64)
    for r, shard in enumerate(shards):
        merged[r::3] = list(shard)
    np.testing.assert_array_equal(
        merged, ClassBalancedSampler(labels, 300, seed=8).global_indices()
    )


def test_unlabelled_draws_are_shuffled_passes_over_the_pool():
    sampler = UnlabelledSampler(5, 12, seed=1)
    items = list(sampler)
    assert len(sampler) == 12 and len(items) == 12
    indices = [index for index, _ in items]
    assert sorted(indices[:5]) == sorted(indices[5:10]) == [0, 1, 2, 3, 4]
    assert len(set(indices[10:])) == 2  # the third pass, cut short
    assert indices[:5] != [0, 1, 2, 3, 4] or indices[5:10] != [0, 1, 2, 3, 4]  # shuffled


def test_unlabelled_draws_smaller_than_the_pool_are_distinct_and_one_item_is_enough():
    indices = [index for index, _ in UnlabelledSampler(10, 7, seed=2)]
    assert len(indices) == 7 and len(set(indices)) == 7 and set(indices) <= set(range(10))
    assert [index for index, _ in UnlabelledSampler(1, 3)] == [0, 0, 0]
    with pytest.raises(
        ValueError, match=f"^{re.escape('UnlabelledSampler needs at least one item')}$"
    ):
        UnlabelledSampler(0, 3)


def test_unlabelled_augmentation_seeds_are_distinct_python_ints():
    seeds = [seed for _, seed in UnlabelledSampler(50, 400, seed=3)]
    assert all(type(seed) is int and seed >= 0 for seed in seeds)
    assert len(set(seeds)) == 400


def test_unlabelled_draws_are_deterministic_per_seed_and_epoch():
    a, b = UnlabelledSampler(20, 30, seed=4), UnlabelledSampler(20, 30, seed=4)
    assert list(a) == list(b)
    assert list(UnlabelledSampler(20, 30)) == list(UnlabelledSampler(20, 30, seed=0))
    assert list(UnlabelledSampler(20, 30, seed=5)) != list(a)
    b.set_epoch(1)
    assert list(b) != list(a)
    a.set_epoch(1)
    assert list(a) == list(b)


def test_unlabelled_shards_do_not_overlap_and_make_up_the_single_process_draws():
    single = list(UnlabelledSampler(6, 6, seed=7))
    default = list(UnlabelledSampler(6, 6, seed=7, rank=0, world_size=1))
    assert single == default
    shards = [list(UnlabelledSampler(6, 2, seed=7, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]
    merged = [shards[position % 3][position // 3] for position in range(6)]
    assert merged == single
    # one pass over the pool across the three processes: every item exactly once
    assert sorted(index for shard in shards for index, _ in shard) == [0, 1, 2, 3, 4, 5]
