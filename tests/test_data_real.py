"""The real FashionMNIST and MNIST files that `make data` installs (Debian's package, a download, the PyPI sdist).

Nothing here downloads: the tests read what `make data` left (Debian's package, $PCBP_DATA or the cache).
"""

import hashlib
import os
from pathlib import Path

import pytest
import torch

from pcbp import data

# MNIST's published images per class, 0..9, and the MD5s of its four official (decompressed) idx files.
MNIST_COUNTS = {"train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]}
MNIST_MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
             "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
             "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
             "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}


@pytest.mark.realdata
def test_real_fashion_mnist_test_split_loads_with_every_class_1000_times():
    """The files `make data` provides (Debian's package, $PCBP_DATA or the cache) load and verify."""
    try:
        s = data.load_fashion_mnist("test")
    except data.DataNotFoundError as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have FashionMNIST (run `make data`): {err}")
        pytest.skip(f"FashionMNIST not installed (run `make data`): {err}")
    assert s.images.shape == (10000, 784) and 0 <= s.images.min() and s.images.max() <= 1
    assert s.labels.min() >= 0 and s.labels.max() <= 9
    assert torch.bincount(s.labels, minlength=10).tolist() == [1000] * 10


def load_real_mnist(split: str) -> data.ImageSet:
    """The MNIST split `make data` installed; its absence fails the test (the book needs MNIST on every build)."""
    try:
        return data.load_mnist(split)
    except data.DataNotFoundError as err:
        pytest.fail(f"MNIST not installed: run `make data` (it fetches MNIST into {data.cache_dir('mnist')}).\n{err}")


@pytest.mark.realdata
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist_loads_with_its_published_class_counts(split):
    s = load_real_mnist(split)
    n = sum(MNIST_COUNTS[split])
    assert s.images.shape == (n, 784) and s.images.dtype == torch.float64
    assert s.images.min() == 0 and s.images.max() == 1
    assert torch.bincount(s.labels, minlength=10).tolist() == MNIST_COUNTS[split]


@pytest.mark.realdata
def test_real_mnist_files_are_the_official_ones_by_md5():
    """The files the loader found hash to MNIST's official MD5s (the loader checks them too; this does it apart)."""
    directory = Path(load_real_mnist("test").source)
    for stem, md5 in MNIST_MD5.items():
        path = data._find_file(directory, stem)
        assert path is not None, f"{directory} lacks {stem}: run `make data`"
        assert hashlib.md5(data._read_bytes(path)).hexdigest() == md5, f"{path}: not MNIST's official file"
