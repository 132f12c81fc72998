from __future__ import annotations

import random

import numpy as np
import pytest

from catalyst_nb.data import ArrayImageSource, ImageDataset, base_new_split, few_shot, split_base_new


def pool(per_class: list[int], *, name: str = "pool") -> ImageDataset:
    labels = [c for c, n in enumerate(per_class) for _ in range(n)]
    ids = [f"img/{c}/{k:04d}" for c, n in enumerate(per_class) for k in range(n)]
    images = np.arange(len(ids) * 4, dtype=np.int64).reshape(len(ids), 2, 2).astype(np.uint8)
    return ImageDataset(
        name=name,
        classnames=tuple(f"c{c}" for c in range(len(per_class))),
        labels=tuple(labels),
        ids=tuple(ids),
        source=ArrayImageSource(images, ids),
    )


def test_k_images_of_every_class_from_the_dataset():
    dataset = pool([20, 30, 25])
    draw = few_shot(dataset, shots=4, seed=1)
    assert draw.class_counts() == (4, 4, 4)
    assert draw.name == "pool/4shot-seed1"
    lookup = dict(zip(dataset.ids, dataset.labels))
    assert all(lookup[i] == label for i, label in zip(draw.ids, draw.labels))
    assert list(draw.labels) == sorted(draw.labels)  # grouped by class
    assert draw.source is dataset.source


def test_draw_is_independent_of_item_order():
    dataset = pool([40, 40, 40, 40])
    order = list(range(len(dataset)))
    expected = few_shot(dataset, shots=8, seed=3)
    for shuffle_seed in range(3):
        random.Random(shuffle_seed).shuffle(order)
        shuffled = dataset.subset(order)
        assert shuffled.ids != dataset.ids
        draw = few_shot(shuffled, shots=8, seed=3)
        assert draw.ids == expected.ids and draw.labels == expected.labels
        assert draw.fingerprint() == expected.fingerprint()


def test_draw_of_a_class_ignores_the_other_classes():
    small = pool([30, 30])
    large = pool([30, 30, 50])
    a = few_shot(small, shots=5, seed=2)
    b = few_shot(large, shots=5, seed=2)
    assert a.ids == b.ids[:10]


def test_seeds_give_different_draws_and_the_same_seed_the_same():
    dataset = pool([64] * 3)
    draws = [few_shot(dataset, shots=16, seed=seed) for seed in (1, 2, 3)]
    assert len({d.ids for d in draws}) == 3
    assert few_shot(dataset, shots=16, seed=2).ids == draws[1].ids
    first_k = {i for c in range(3) for i in [f"img/{c}/{k:04d}" for k in range(16)]}
    assert set(draws[0].ids) != first_k  # a ranking, not the first files
    overlap = len(set(draws[0].ids) & set(draws[1].ids)) / len(draws[0].ids)
    assert overlap < 0.6  # about 1/4 expected for 16 of 64


def test_smaller_draws_nest_in_larger_ones_for_the_same_seed():
    # Ranking by hash makes the 4-shot draw a subset of the 8-shot draw for the same seed, which keeps
    # shot-count sweeps comparable.
    dataset = pool([32, 32])
    assert set(few_shot(dataset, shots=4, seed=5).ids) <= set(few_shot(dataset, shots=8, seed=5).ids)


def test_too_few_images_names_the_class_and_counts():
    dataset = pool([20, 3, 20, 0])
    with pytest.raises(ValueError, match=r"4 shots per class.*'c1' \(3\).*'c3' \(0\)"):
        few_shot(dataset, shots=4, seed=1)


@pytest.mark.parametrize("shots, seed", [(0, 1), (-2, 1), (2.5, 1), (True, 1), (2, "1"), (2, 1.0)])
def test_bad_arguments(shots, seed):
    with pytest.raises(ValueError):
        few_shot(pool([5, 5]), shots=shots, seed=seed)


@pytest.mark.parametrize(
    "n, base, new",
    [(2, (0,), (1,)), (10, (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)), (5, (0, 1, 2), (3, 4)), (101, tuple(range(51)), tuple(range(51, 101)))],
)
def test_base_new_split_follows_coop(n, base, new):
    assert base_new_split([f"c{i}" for i in range(n)]) == (base, new)


def test_base_new_split_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        base_new_split(["only"])


def test_split_base_new_relabels_each_half_from_zero():
    dataset = pool([3, 4, 5, 6, 7])
    base, new = split_base_new(dataset)
    assert base.classnames == ("c0", "c1", "c2") and new.classnames == ("c3", "c4")
    assert base.class_counts() == (3, 4, 5) and new.class_counts() == (6, 7)
    assert base.name == "pool/base" and new.name == "pool/new"
    assert set(base.ids).isdisjoint(new.ids) and len(base) + len(new) == len(dataset)
