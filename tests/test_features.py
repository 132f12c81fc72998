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


def _no_debris(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_file_in_place_of_the_cache_folder_keeps_the_features(tmp_path, tiny_native):
    from catalyst_nb.features import CacheWriteWarning

    blocker = tmp_path / "cache"
    blocker.write_text("I am a file")
    ref = extract_features(tiny_native, _dataset(), cache_dir=False, progress=False)
    with pytest.warns(CacheWriteWarning, match="could not be written"):
        feats = extract_features(tiny_native, _dataset(), cache_dir=blocker, progress=False)
    assert torch.equal(feats.features, ref.features)
    assert feats.cache_status.startswith("miss; not saved (")
    assert blocker.read_text() == "I am a file"


def test_full_disk_keeps_the_features_and_leaves_no_temporary_file(tmp_path, tiny_native):
    """A real write failure: the file-size limit makes the kernel refuse the write (EFBIG), as a full disk does."""
    import resource
    import signal

    from catalyst_nb.features import CacheWriteWarning

    ds = _dataset(name="fulldisk")
    ref = extract_features(tiny_native, ds, cache_dir=False, progress=False)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, old_limit[1]))
    try:
        with pytest.warns(CacheWriteWarning, match="File too large"):
            feats = extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert torch.equal(feats.features, ref.features)
    assert list(tmp_path.iterdir()) == []  # neither a half entry nor a temporary file
    assert extract_features(tiny_native, ds, cache_dir=tmp_path, progress=False).cache_status == "miss"


def test_read_only_cache_folder_keeps_the_features(tmp_path, tiny_native, monkeypatch):
    import os

    import catalyst_nb.state_io as state_io
    from catalyst_nb.features import CacheWriteWarning

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # permissions do not stop root: refuse the file creation as the kernel would
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(state_io.tempfile, "mkstemp", refuse)
    try:
        with pytest.warns(CacheWriteWarning, match="PermissionError"):
            feats = extract_features(tiny_native, _dataset(name="ro"), cache_dir=folder, progress=False)
        assert feats.features.shape == (12, 64) and "not saved" in feats.cache_status
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
