"""The real FashionMNIST files that `make data` installs (Debian's package or a download)."""

import os

import pytest
import torch

from pcbp import data


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
