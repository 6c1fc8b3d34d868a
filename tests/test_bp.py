"""Explicit-delta BP against its oracle, `torch.autograd`."""

import itertools

import pytest
import torch

from pcbp.experiments import error_vs_autograd, random_problem
from pcbp.rules import BP, autograd_updates

GRID = list(itertools.product((2, 3, 5, 8), ("tanh", "sigmoid", "relu", "linear", "leaky_relu"), (False, True)))


@pytest.mark.parametrize("depth, activation, bias", GRID)
def test_bp_updates_equal_autograd(depth, activation, bias):
    net, s_in, s_out = random_problem((4,) + (9,) * (depth - 1) + (6,), activation, bias=bias, seed=depth)
    assert error_vs_autograd(BP(0.1), net, s_in, s_out) <= 1e-12


def test_autograd_update_is_minus_alpha_times_gradient_of_mean_loss(problem):
    """The oracle itself, against a finite difference of E = ½‖s_out − y^0‖² (batch mean)."""
    net, s_in, s_out = problem
    upd = autograd_updates(net, s_in, s_out, alpha=1.0)
    h, (i, j) = 1e-6, (1, 2)

    def loss_with(delta):
        twin = net.clone()
        twin.theta[2][i, j] += delta
        return 0.5 * ((s_out - twin(s_in)) ** 2).sum() / s_in.shape[0]

    numeric = -(loss_with(h) - loss_with(-h)) / (2 * h)
    assert abs(float(upd.theta[2][i, j] - numeric)) < 1e-8


def test_apply_false_leaves_the_network_alone(problem):
    net, s_in, s_out = problem
    before = [p.clone() for p in net.parameters()]
    BP(0.1)(net, s_in, s_out, apply=False)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    upd = BP(0.1)(net, s_in, s_out)
    assert all(torch.equal(a + d, b) for a, d, b in zip(before, upd.tensors(net), net.parameters()))
