"""pcbp.approximation against hand-computed values and independent oracles (autograd, long relaxation)."""

import math

import pytest
import torch

from pcbp.approximation import (
    absorbed_output_error,
    contraction_factor,
    cosine_similarity,
    critical_gamma,
    energy_hessian,
    flatten,
    il_limit_updates,
    il_updates_without_relaxation,
    il_vs_bp,
    kink_crossings,
    max_distance_to_feedforward,
    targets_near_output,
)
from pcbp.experiments import random_problem
from pcbp.metrics import relative_error, update_error
from pcbp.network import PCN
from pcbp.pcn import (
    energy,
    errors,
    feedforward_state,
    inference_step,
    perturb_hidden,
    predictions,
    rest_state,
    settle,
)
from pcbp.rules import IL, autograd_updates
from pcbp.updates import Trace, Updates

T64 = torch.float64


def one_weight_net():
    return PCN((1, 2), "linear")


def test_cosine_similarity_by_hand():
    net = one_weight_net()
    a = Updates(theta={1: torch.tensor([[1.0, 0.0]], dtype=T64)})
    b = Updates(theta={1: torch.tensor([[1.0, 1.0]], dtype=T64)})
    c = Updates(theta={1: torch.tensor([[-2.0, 0.0]], dtype=T64)})
    assert cosine_similarity(a, b, net) == pytest.approx(1 / math.sqrt(2), abs=1e-15)
    assert cosine_similarity(a, c, net) == pytest.approx(-1.0, abs=1e-15)
    assert cosine_similarity(b, b, net) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(ValueError):
        cosine_similarity(a, Updates(), net)  # a missing update counts as 0


def test_flatten_orders_weights_then_biases():
    net = PCN((1, 2, 3), "tanh", bias=True)
    upd = Updates(theta={2: torch.full((2, 3), 2.0, dtype=T64)}, b={1: torch.full((1,), 5.0, dtype=T64)})
    v = flatten(upd, net)
    assert v.tolist() == [0.0, 0.0] + [2.0] * 6 + [5.0] + [0.0, 0.0]


def test_targets_near_output_scale_the_output_error_linearly():
    net, s_in, _ = random_problem((3, 5, 4), "tanh", seed=1)
    y0 = net(s_in)
    e1, e2 = targets_near_output(net, s_in, 1.0) - y0, targets_near_output(net, s_in, 1e-3) - y0
    torch.testing.assert_close(e2, 1e-3 * e1, rtol=1e-12, atol=1e-15)
    assert not torch.equal(e1, targets_near_output(net, s_in, 1.0, seed=1) - y0)


def test_il_vs_bp_agrees_with_metrics_and_its_own_fields(problem):
    net, s_in, s_out = problem
    r = il_vs_bp(net, s_in, s_out, gamma=0.1, T=20, alpha=0.1)
    il = IL(0.1, gamma=0.1, T=20)(net, s_in, s_out, apply=False)
    bp = autograd_updates(net, s_in, s_out, 0.1)
    assert r["rel_err"] == pytest.approx(update_error(net, il, bp), rel=1e-12)
    assert r["abs_err"] == pytest.approx(r["rel_err"] * r["bp_norm"], rel=1e-12)
    assert r["cos"] == pytest.approx(cosine_similarity(il, bp, net), rel=1e-12)
    assert r["monotone"] == 1.0 and r["energy_end"] < r["energy_start"]
    assert "lim_err" not in r


def test_il_vs_bp_fills_the_given_trace_and_reports_the_limit_error_of_the_same_run(problem):
    net, s_in, s_out = problem
    trace = Trace()
    r = il_vs_bp(net, s_in, s_out, gamma=0.2, T=30, trace=trace, limit=True)
    assert trace.steps == 31  # the start and every step
    il = IL(0.1, gamma=0.2, T=30)(net, s_in, s_out, apply=False)
    assert r["lim_err"] == pytest.approx(update_error(net, il, il_limit_updates(net, s_in, s_out, 0.1)), rel=1e-12)
    assert r["energy_end"] == pytest.approx(float(trace.energies()[-1]), rel=1e-15)


def test_il_without_relaxation_is_the_hebbian_update_at_the_clamped_feedforward_start():
    """T = 0: ε^0 = s_out − y^0 and the hidden errors are 0, so only θ^1 (and b^1) learn, by α ε^0 f(y^1)ᵀ."""
    net, s_in, s_out = random_problem((3, 6, 5, 4), "tanh", bias=True, batch=5, seed=12)
    y = net.feedforward(s_in)
    eps0 = s_out - y[0]
    upd = il_updates_without_relaxation(net, s_in, s_out, 0.1)
    torch.testing.assert_close(upd.theta[1], 0.1 * eps0.T @ net.f(y[1]) / 5, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(upd.b[1], 0.1 * eps0.mean(0), rtol=1e-13, atol=1e-15)
    assert set(upd.theta) == {1} and set(upd.b) == {1}


def test_il_equals_bp_without_hidden_layers():
    """No hidden layer, nothing relaxes: IL's single update is BP's (hand argument: ε^0 = δ^0)."""
    net, s_in, s_out = random_problem((3, 6), "tanh", bias=True, seed=2)
    r = il_vs_bp(net, s_in, s_out, gamma=0.3, T=10)
    assert r["rel_err"] <= 1e-15 and r["cos"] == pytest.approx(1.0, abs=1e-15)


def test_kink_crossings_counts_nodes_that_left_their_feedforward_side():
    net, s_in, _ = random_problem((2, 4, 3, 5), "relu", batch=3, seed=13)
    y = feedforward_state(net, s_in)
    trace = Trace()
    trace.record(y, y, y)
    assert kink_crossings(net, s_in, trace) == 0
    moved = [v.clone() for v in y]
    moved[1][0, 2] = -1.0 if y[1][0, 2] > 0 else 1.0  # one node of layer 1 changes side
    moved[2][1] = torch.where(y[2][1] > 0, -1.0, 1.0).to(T64)  # every node of one sample of layer 2
    moved[0][:] = -moved[0]  # the output has no kink that counts (f is applied to hidden nodes only)
    trace.record(moved, moved, moved)
    trace.record(y, y, y)  # back again: a node that crossed once counts once
    assert kink_crossings(net, s_in, trace) == 1 + 3


def test_distance_to_feedforward_is_zero_there_and_one_at_rest():
    net, s_in, _ = random_problem((3, 6, 5, 4), "tanh", seed=4)
    assert max_distance_to_feedforward(net, s_in, feedforward_state(net, s_in)) == 0.0
    assert max_distance_to_feedforward(net, s_in, rest_state(net, s_in)) == 1.0
    x, steps = settle(net, s_in, gamma=0.2)
    assert steps < 20_000 and max_distance_to_feedforward(net, s_in, x) < 1e-12


def test_absorbed_output_error_by_hand_one_linear_hidden_layer():
    """F = ½‖δ − θ¹u‖² + ½‖u‖² is minimised by u = (I + θ¹ᵀθ¹)⁻¹θ¹ᵀδ, so ε^0 = (I + θ¹θ¹ᵀ)⁻¹δ."""
    net, s_in, _ = random_problem((3, 4, 5), "linear", seed=6)
    delta = torch.randn(s_in.shape[0], 3, generator=torch.Generator().manual_seed(0), dtype=T64)
    th = net.theta[1]
    expected = torch.linalg.solve(torch.eye(3, dtype=T64) + th @ th.T, delta.T).T
    torch.testing.assert_close(absorbed_output_error(net, s_in, delta), expected, rtol=1e-13, atol=1e-14)
    assert float(expected.norm()) < float(delta.norm())


def test_absorbed_output_error_without_hidden_layers_is_the_output_error():
    net, s_in, s_out = random_problem((3, 6), "tanh", seed=2)
    delta = s_out - net(s_in)
    torch.testing.assert_close(absorbed_output_error(net, s_in, delta), delta, rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "linear"])
def test_absorbed_output_error_is_where_long_il_relaxation_ends(activation):
    """Independent path: relax IL for many steps with a small output error, read ε^0."""
    net, s_in, _ = random_problem((3, 7, 6, 5), activation, seed=8)
    scale = 1e-5
    s_out = targets_near_output(net, s_in, scale)
    trace = Trace()
    IL(0.1, gamma=0.2, T=3000)(net, s_in, s_out, apply=False, trace=trace)
    predicted = absorbed_output_error(net, s_in, s_out - net(s_in))
    assert relative_error([trace.eps[-1][0]], [predicted]) < 100 * scale


def test_il_limit_updates_match_long_il_relaxation_at_small_errors():
    net, s_in, _ = random_problem((4, 8, 8, 6), "tanh", seed=3)
    for scale in (1e-3, 1e-5):
        s_out = targets_near_output(net, s_in, scale)
        il = IL(0.1, gamma=0.2, T=2000)(net, s_in, s_out, apply=False)
        limit = il_limit_updates(net, s_in, s_out, 0.1)
        assert update_error(net, il, limit) < 100 * scale
        assert update_error(net, il, autograd_updates(net, s_in, s_out, 0.1)) > 0.1  # and it is not BP


def autograd_hessian(net, s_in, b):
    y = net.feedforward(s_in)

    def F(*hidden):
        x = [y[0][b : b + 1]] + [h.unsqueeze(0) for h in hidden] + [s_in[b : b + 1]]
        return energy(errors(x, predictions(net, x)))  # batch of one: the sample's own energy

    hidden = tuple(y[l][b] for l in range(1, net.l_max))
    H = torch.autograd.functional.hessian(F, hidden)
    return torch.cat([torch.cat(list(row), dim=1) for row in H], dim=0)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_energy_hessian_equals_autograd_at_the_feedforward_pass(activation):
    net, s_in, _ = random_problem((3, 5, 4, 6, 2), activation, seed=9)
    for b in (0, 3):
        torch.testing.assert_close(energy_hessian(net, s_in, b), autograd_hessian(net, s_in, b), rtol=1e-12, atol=1e-13)


def autograd_free_hessian(net, s_in, b):
    """Hessian of the sample's energy in x^0 … x^{l_max−1} (output free) at the feedforward pass."""
    y = net.feedforward(s_in)

    def F(*free):
        x = [h.unsqueeze(0) for h in free] + [s_in[b : b + 1]]
        return energy(errors(x, predictions(net, x)))

    H = torch.autograd.functional.hessian(F, tuple(y[l][b] for l in range(net.l_max)))
    return torch.cat([torch.cat(list(row), dim=1) for row in H], dim=0)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_free_energy_hessian_equals_autograd_at_the_feedforward_pass(activation):
    net, s_in, _ = random_problem((3, 5, 4, 6, 2), activation, seed=10)
    for b in (0, 2):
        H = energy_hessian(net, s_in, b, clamp_output=False)
        torch.testing.assert_close(H, autograd_free_hessian(net, s_in, b), rtol=1e-12, atol=1e-13)


def test_free_energy_hessian_without_hidden_layers_is_the_identity():
    """F = ½‖x^0 − θ¹f(s_in)‖²: its Hessian in x^0 is I, so settle reaches y^0 in one step at γ = 1."""
    net, s_in, _ = random_problem((3, 6), "tanh", seed=2)
    torch.testing.assert_close(energy_hessian(net, s_in, 0, clamp_output=False), torch.eye(3, dtype=T64))
    assert contraction_factor(net, s_in, 1.0, clamp_output=False) == 0.0
    assert contraction_factor(net, s_in, 0.3, clamp_output=False) == pytest.approx(0.7, abs=1e-15)
    assert contraction_factor(net, s_in, 0.3) == 0.0  # clamped: nothing relaxes


def test_contraction_factor_by_hand_one_linear_hidden_layer():
    """Clamped, the Hessian is I + θ¹ᵀθ¹ for every sample: ρ = max |1 − γλ| over its eigenvalues."""
    net, s_in, _ = random_problem((3, 4, 5), "linear", seed=6)
    lam = torch.linalg.eigvalsh(torch.eye(4, dtype=T64) + net.theta[1].T @ net.theta[1])
    for gamma in (0.1, 0.45, 1.2):
        expected = float((1 - gamma * lam).abs().max())
        assert contraction_factor(net, s_in, gamma) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("clamp", [False, True])
def test_contraction_factor_is_the_late_rate_of_linear_relaxation(clamp):
    """Independent path: a linear network relaxes exactly linearly; with input and target 0 its fixed
    point is 0 (and H does not depend on the input), so late steps shrink ‖x‖ by ρ."""
    net, s_in, _ = random_problem((3, 6, 5, 4), "linear", batch=4, seed=14)
    zero_in = torch.zeros_like(s_in)
    x = perturb_hidden(feedforward_state(net, zero_in, torch.zeros(4, 3, dtype=T64)), 1.0, seed=1)
    if not clamp:
        x[0] = x[0] + 1.0  # the free output starts away from its fixed point too
    gamma, norms = 0.2, []
    for _ in range(3000):
        x = inference_step(net, x, errors(x, predictions(net, x)), gamma, clamp_output=clamp)
        norms.append(float(sum(v.norm() ** 2 for v in x[:-1]) ** 0.5))
    measured = norms[-1] / norms[-2]
    assert measured == pytest.approx(contraction_factor(net, s_in, gamma, clamp_output=clamp), rel=1e-6)


def test_critical_gamma_by_hand_one_linear_hidden_layer():
    """Hessian in x^1 of ½‖x^0 − θ¹x^1‖² + ½‖x^1 − θ²x^2‖² is I + θ¹ᵀθ¹ (any sample)."""
    net, s_in, _ = random_problem((3, 4, 5), "linear", seed=6)
    lam = float(torch.linalg.eigvalsh(torch.eye(4, dtype=T64) + net.theta[1].T @ net.theta[1]).max())
    assert critical_gamma(net, s_in) == pytest.approx(2 / lam, rel=1e-12)
    assert critical_gamma(PCN((3, 5), "tanh"), torch.zeros(2, 5, dtype=T64)) == math.inf


def test_critical_gamma_separates_stable_from_unstable_relaxation():
    net, s_in, _ = random_problem((4, 16, 16, 8), "tanh", batch=16, seed=3)
    g = critical_gamma(net, s_in)
    s_out = targets_near_output(net, s_in, 1e-6)

    def energies(gamma, steps=300):
        x, F = feedforward_state(net, s_in, s_out), []
        for _ in range(steps):
            eps = errors(x, predictions(net, x))
            F.append(float(energy(eps)))
            x = inference_step(net, x, eps, gamma, clamp_output=True)
        return F

    below, above = energies(0.95 * g), energies(1.1 * g)
    assert below[-1] < below[0] and above[-1] > 1e3 * above[0]
