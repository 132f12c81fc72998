"""Build catalyst_nb/data/fashion_mnist_embedded.{npz,json} from the Fashion-MNIST IDX files.

Usage (from the repository root)::

    python scripts/build_embedded_data.py                      # Debian's /usr/share/datasets/fashion-mnist
    python scripts/build_embedded_data.py --source ~/data/FashionMNIST/raw --seed 2024

The draw depends only on the seed and the image indices, so rerunning it gives the same arrays (their
sha256s are in the JSON); ``--check`` rebuilds in memory and compares with the committed files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from catalyst_nb.data.embedded import (  # noqa: E402
    EMBEDDED_METADATA,
    build_embedded_arrays,
    write_embedded,
)
from catalyst_nb.data.fashion_mnist import (  # noqa: E402
    DEBIAN_FASHION_MNIST_DIR,
    DEBIAN_FASHION_MNIST_PACKAGE,
    fashion_mnist_files,
    read_fashion_mnist_arrays,
)

logger = logging.getLogger("build_embedded_data")

DEFAULT_SEED = 2024


def _debian_version() -> str | None:
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", DEBIAN_FASHION_MNIST_PACKAGE],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None, help=f"IDX folder (default {DEBIAN_FASHION_MNIST_DIR})")
    parser.add_argument("--out-dir", type=Path, default=REPO / "catalyst_nb" / "data")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--train-per-class", type=int, default=64)
    parser.add_argument("--val-per-class", type=int, default=32)
    parser.add_argument("--test-per-class", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="rebuild in memory and compare with --out-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    source_files: dict[str, str] = {}
    for split in ("train", "test"):
        for path in fashion_mnist_files(split, root=args.source):
            source_files[path.name] = _file_sha256(path)
    train_images, train_labels = read_fashion_mnist_arrays("train", root=args.source)
    test_images, test_labels = read_fashion_mnist_arrays("test", root=args.source)
    arrays = build_embedded_arrays(
        train_images,
        train_labels,
        test_images,
        test_labels,
        seed=args.seed,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        test_per_class=args.test_per_class,
    )
    source: dict[str, object] = {"files_sha256": source_files}
    if args.source is None:
        source["debian_package"] = DEBIAN_FASHION_MNIST_PACKAGE
        source["debian_version"] = _debian_version()
    provenance = {
        "description": (
            "Fashion-MNIST subset shipped with catalyst_nb: 'train' and 'val' are disjoint per-class draws "
            "from Fashion-MNIST's train split (few-shot pool and candidate-scoring split), 'test' is drawn "
            "from Fashion-MNIST's own test split. Ids/indices are positions in the original IDX files."
        ),
        "dataset": "Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, Zalando Research)",
        "license": "MIT, Copyright (c) 2017 Zalando SE",
        "selection": (
            "per class, images ranked by sha256(f'{seed}:{split}/{index:05d}'); train = first "
            f"{args.train_per_class} of the train split, val = next {args.val_per_class}, test = first "
            f"{args.test_per_class} of the test split; each sorted by index"
        ),
        "seed": args.seed,
        "source": source,
        "builder": "scripts/build_embedded_data.py",
    }

    if args.check:
        committed = json.loads((args.out_dir / EMBEDDED_METADATA).read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as scratch:
            _, json_path = write_embedded(arrays, scratch, provenance=provenance)
            rebuilt = json.loads(json_path.read_text(encoding="utf-8"))
        same = rebuilt["arrays"] == committed["arrays"]
        logger.info("arrays %s the committed ones", "match" if same else "DIFFER FROM")
        return 0 if same else 1

    npz_path, json_path = write_embedded(arrays, args.out_dir, provenance=provenance)
    logger.info("wrote %s (%d bytes) and %s", npz_path, npz_path.stat().st_size, json_path)
    for split in ("train", "val", "test"):
        logger.info("%s: %d images", split, arrays[f"{split}_labels"].shape[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
