"""The PCN dynamics against their definitions: autograd of the energy is the oracle."""

import pytest
import torch

from pcbp.experiments import random_problem
from pcbp.pcn import (
    energy,
    errors,
    feedforward_state,
    hebbian,
    inference_step,
    is_settled,
    perturb_hidden,
    predictions,
    rest_state,
    settle,
    settle_tolerance,
)


def grad_of_energy(net, x, s_out=None):
    """`∂F/∂x^l` for every hidden layer (and the output if free) by autograd: the oracle for inference."""
    xs = [v.detach().clone().requires_grad_(True) for v in x]
    eps = errors(xs, predictions(net, xs))
    F = energy(eps) * x[0].shape[0]  # energy() averages over the batch; F itself is the sum
    grads = torch.autograd.grad(F, xs[:-1])
    return list(grads)


def test_feedforward_state_has_zero_energy_when_output_free(problem):
    net, s_in, _ = problem
    eps = errors(x := feedforward_state(net, s_in), predictions(net, x))
    assert all(torch.count_nonzero(e) == 0 for e in eps) and energy(eps) == 0


def test_clamped_output_error_is_bp_output_delta(problem):
    net, s_in, s_out = problem
    x = feedforward_state(net, s_in, s_out)
    eps = errors(x, predictions(net, x))
    torch.testing.assert_close(eps[0], s_out - net(s_in), rtol=0, atol=0)


@pytest.mark.parametrize("clamp_output", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_inference_step_is_gradient_descent_on_energy(clamp_output, activation):
    net, s_in, s_out = random_problem((3, 6, 5, 4), activation, bias=True, seed=5)
    x = perturb_hidden(feedforward_state(net, s_in, s_out), 0.3, seed=2)
    gamma = 0.37
    new = inference_step(net, x, errors(x, predictions(net, x)), gamma, clamp_output=clamp_output)
    grads = grad_of_energy(net, x)
    first = 1 if clamp_output else 0
    for l in range(first, net.l_max):
        torch.testing.assert_close(new[l], x[l] - gamma * grads[l], rtol=1e-13, atol=1e-14)
    assert new[net.l_max] is x[net.l_max]
    if clamp_output:
        assert new[0] is x[0]


def test_hebbian_is_the_batch_mean_of_outer_products():
    gen = torch.Generator().manual_seed(0)
    eps, f_pre = torch.randn(4, 3, generator=gen), torch.randn(4, 5, generator=gen)
    expected = 0.1 * sum(torch.outer(eps[b], f_pre[b]) for b in range(4)) / 4
    torch.testing.assert_close(hebbian(0.1, eps, f_pre), expected)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
def test_free_network_settles_to_the_feedforward_pass(activation):
    net, s_in, _ = random_problem((3, 6, 5, 4), activation, seed=7)
    y = net.feedforward(s_in)
    start = rest_state(net, s_in)
    x, steps = settle(net, s_in, gamma=0.2, max_steps=20_000)
    assert steps < 20_000
    dist = max(float((x[l] - y[l]).abs().max() / y[l].abs().max()) for l in range(net.l_max))
    dist0 = max(float((start[l] - y[l]).abs().max() / y[l].abs().max()) for l in range(net.l_max))
    assert dist0 == 1.0 and dist < 1e-12


def test_settling_energy_decreases_monotonically_for_small_gamma(problem):
    net, s_in, _ = problem
    x, energies = rest_state(net, s_in), []
    for _ in range(300):
        eps = errors(x, predictions(net, x))
        energies.append(float(energy(eps)))
        x = inference_step(net, x, eps, 0.1, clamp_output=False)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(energies, energies[1:]))
    assert energies[-1] < 1e-3 * energies[0]


def test_settle_reports_when_it_did_not_converge(problem):
    net, s_in, _ = problem
    _, steps = settle(net, s_in, gamma=0.1, max_steps=5)
    assert steps == 5


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_settle_tolerance_is_relative_to_the_activity(scale):
    """With an absolute tolerance a large activity could never settle: its rounding residue exceeds it."""
    net, s_in, _ = random_problem((3, 6, 5, 4), "linear", seed=7)
    s_in = scale * s_in
    y = net.feedforward(s_in)
    x, steps = settle(net, s_in, gamma=0.2, max_steps=20_000)
    assert steps < 20_000
    dist = max(float((x[l] - y[l]).abs().max() / y[l].abs().max()) for l in range(net.l_max))
    assert dist < 1e-12
    assert is_settled(predictions(net, x), errors(x, predictions(net, x)), settle_tolerance(s_in.dtype))
