"""The network in the paper's indexing: shapes, the forward pass, copies."""

import pytest
import torch

from pcbp.network import PCN


def test_weights_follow_paper_indexing():
    net = PCN((2, 3, 5), "tanh")
    assert net.l_max == 2
    assert net.theta[1].shape == (2, 3) and net.theta[2].shape == (3, 5)
    assert set(net.theta) == {1, 2} and net.b == {}


def test_feedforward_applies_f_before_the_weights():
    net = PCN((2, 3, 5), "sigmoid", bias=True, seed=4)
    net.b[1].fill_(0.5)
    s_in = torch.randn(4, 5, dtype=torch.float64)
    y1 = torch.sigmoid(s_in) @ net.theta[2].T + net.b[2]
    y0 = torch.sigmoid(y1) @ net.theta[1].T + net.b[1]
    y = net.feedforward(s_in)
    assert torch.equal(y[2], s_in)
    torch.testing.assert_close(y[1], y1, rtol=0, atol=0)
    torch.testing.assert_close(y[0], y0, rtol=0, atol=0)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = PCN((2, 3), seed=1), PCN((2, 3), seed=1), PCN((2, 3), seed=2)
    assert torch.equal(a.theta[1], b.theta[1]) and not torch.equal(a.theta[1], c.theta[1])


def test_clone_is_independent():
    net = PCN((2, 3), bias=True)
    twin = net.clone()
    twin.theta[1].add_(1.0)
    twin.b[1].add_(1.0)
    assert not torch.equal(net.theta[1], twin.theta[1]) and torch.all(net.b[1] == 0)


def test_to_changes_dtype_of_every_parameter():
    net32 = PCN((2, 3, 4), bias=True).to(torch.float32)
    assert all(p.dtype == torch.float32 for p in net32.parameters())
    assert net32.dtype == torch.float32


@pytest.mark.parametrize("sizes", [(3,), (), (3, 0), (0, 2), (3, 2.7, 4), (3, 2.0, 4), (3, True, 4)])
def test_bad_sizes_are_rejected_with_the_fix(sizes):
    with pytest.raises(ValueError, match="output width first"):
        PCN(sizes)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, "float64"])
def test_non_float_dtype_is_rejected_rather_than_truncating_weights(dtype):
    with pytest.raises(ValueError, match="floating point.*truncate"):
        PCN((2, 3, 4), dtype=dtype)
