"""Each activation's `f'` against `torch.autograd` of its `f`."""

import pytest
import torch

from pcbp.activations import ACTIVATIONS, Activation, get_activation


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd(name):
    act = get_activation(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    x = x[x.abs() > 1e-9].requires_grad_(True)  # ReLU's kink at 0 is a convention, tested below
    (grad,) = torch.autograd.grad(act.f(x).sum(), x)
    torch.testing.assert_close(act.df(x.detach()), grad, rtol=1e-14, atol=1e-15)


def test_relu_derivative_at_zero_follows_autograd_convention():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(torch.relu(x).sum(), x)
    assert torch.equal(get_activation("relu").df(x.detach()), grad)


def test_activation_object_passes_through():
    mine = Activation("cube", lambda x: x**3, lambda x: 3 * x**2)
    assert get_activation(mine) is mine


def test_unknown_activation_names_the_options():
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*tanh"):
        get_activation("gelu")
