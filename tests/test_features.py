"""Cached image features: hits without decoding, misses on any changed input, rebuilt when corrupt."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from catalyst_nb.data import ArrayImageSource, ImageDataset
from catalyst_nb.features import Augmentation, extract_features


class CountingSource(ArrayImageSource):
    """Counts decodes, to prove that a cache hit reads no image."""

    loads = 0

    def load(self, image_id):
        type(self).loads += 1
        return super().load(image_id)


def _dataset(n=12, seed=0, name="toy"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8)
    ids = tuple(f"img/{i:03d}" for i in range(n))
    return ImageDataset(name=name, classnames=("a", "b", "c"), labels=tuple(i % 3 for i in range(n)),
                        ids=ids, source=CountingSource(images, ids))


def test_second_call_hits_without_decoding(tmp_path, tiny_native):
    ds = _dataset()
    first = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False)
    assert first.cache_status == "miss" and first.features.shape == (12, 64)
    CountingSource.loads = 0
    second = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False)
    assert second.cache_status == "hit" and CountingSource.loads == 0
    assert torch.equal(first.features, second.features)
    assert torch.allclose(second.features.norm(dim=-1), torch.ones(12), atol=1e-5)


@pytest.mark.parametrize(
    "change",
    ["dataset", "views", "seed", "augmentation", "weights"],
)
def test_any_changed_input_misses(tmp_path, tiny_native, change):
    from catalyst_nb.backbone import load_clip

    ds = _dataset()
    base = dict(views=2, seed=0, augmentation=Augmentation())
    ref = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False, **base)
    clip = tiny_native
    kwargs = dict(base)
    if change == "dataset":
        ds = ds.subset(range(11))
    elif change == "views":
        kwargs["views"] = 3
    elif change == "seed":
        kwargs["seed"] = 1
    elif change == "augmentation":
        kwargs["augmentation"] = Augmentation(scale=(0.8, 1.0))
    else:
        clip = load_clip("tiny-native", None, device="cpu")
    other = extract_features(clip, ds, cache_dir=tmp_path, progress=False, **kwargs)
    assert other.cache_status == "miss"
    assert other.key != ref.key


def test_views_are_augmented_and_reproducible(tmp_path, tiny_native):
    ds = _dataset()
    a = extract_features(tiny_native, ds, views=3, seed=5, cache_dir=False, progress=False)
    b = extract_features(tiny_native, ds, views=3, seed=5, cache_dir=False, progress=False)
    assert a.views.shape == (3, 12, 64)
    assert torch.equal(a.views, b.views)
    assert not torch.allclose(a.views[0], a.views[1])
    assert not torch.allclose(a.views[0], a.features)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "stale_key", "tampered"])
def test_corrupt_or_stale_cache_is_rebuilt(tmp_path, tiny_native, damage):
    ds = _dataset()
    ref = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False)
    path = tmp_path / f"{ref.key}.pt"
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        payload = torch.load(path, weights_only=True)
        if damage == "stale_key":
            payload["key"] = "0" * 32
        else:
            payload["features"] = payload["features"] + 1.0
        torch.save(payload, path)
    again = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False)
    assert again.cache_status.startswith("rebuilt")
    assert torch.allclose(again.features, ref.features)
    assert extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False).cache_status == "hit"


def test_bad_arguments(tiny_native):
    ds = _dataset()
    with pytest.raises(ValueError, match="views"):
        extract_features(tiny_native, ds, views=-1, cache_dir=False)
    with pytest.raises(ValueError):
        Augmentation(scale=(0.0, 1.0))
