"""pcbp.conditions: breaking C1–C3 one at a time, the γ^l law and its repair, the step ordering."""

import numpy as np
import pytest
import torch

from pcbp.conditions import (
    GammaScaledBP,
    PerLayerRateZIL,
    WeightsFirstZIL,
    at_end_schedule,
    early_schedule,
    gamma_law_by_layer,
    gamma_scaled,
    late_schedule,
    late_update,
    lemma_by_layer,
    loglog_slope,
    noise_sweep,
    on_time_schedule,
    persistent_schedule,
    wave_ratios,
)
from pcbp.data import teacher_student
from pcbp.experiments import MODES, error_vs_autograd, il_reference, random_problem, twin_divergence
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.rules import ZIL, autograd_updates
from pcbp.updates import Trace

# --- schedules -------------------------------------------------------------------------------


def test_schedules_by_name():
    assert on_time_schedule(3) == {0: (0,), 1: (1,), 2: (2,)}
    assert early_schedule(3) == {0: (0,), 1: (0, 1), 2: (0, 1, 2)}
    assert late_schedule(3, 1) == {0: (0,), 1: (2,), 2: (2,)}
    assert late_schedule(3, 2, delay=2) == {0: (0,), 1: (1,), 2: (4,)}
    assert at_end_schedule(3) == {0: (2,), 1: (2,), 2: (2,)}
    assert persistent_schedule(3) == {0: (0, 1, 2), 1: (1, 2), 2: (2,)}


@pytest.mark.parametrize("layer, delay", [(-1, 1), (3, 1), (0, 0)])
def test_late_schedule_rejects_a_bad_layer_or_delay(layer, delay):
    with pytest.raises(ValueError, match="layer"):
        late_schedule(3, layer, delay)


def test_on_time_schedule_is_plain_zil(problem):
    net, s_in, s_out = problem
    plain = ZIL(0.1)(net, s_in, s_out, apply=False)
    named = ZIL(0.1, schedule=on_time_schedule(net.l_max))(net, s_in, s_out, apply=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.tensors(net), named.tensors(net)))


# --- C2 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
def test_early_updates_are_exactly_zero_so_nothing_changes(bias):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=5)
    plain = ZIL(0.1)(net, s_in, s_out, apply=False)
    early = ZIL(0.1, schedule=early_schedule(net.l_max))(net, s_in, s_out, apply=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.tensors(net), early.tensors(net)))


@pytest.mark.parametrize("layer", range(4))
def test_each_layer_learning_late_diverges(problem, layer):
    net, s_in, s_out = problem
    assert error_vs_autograd(ZIL(0.1, schedule=late_schedule(net.l_max, layer)), net, s_in, s_out) > 1e-3


@pytest.mark.parametrize("apply", MODES)
@pytest.mark.parametrize("bias", [False, True])
def test_late_update_predicts_zil_learning_one_step_late(apply, bias):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=13)
    for layer in range(net.l_max):
        zil = ZIL(0.1, schedule=late_schedule(net.l_max, layer))(net.clone(), s_in, s_out, apply=apply)
        assert update_error(net, zil, late_update(net, s_in, s_out, 0.1, layer, apply=apply)) <= 1e-12


@pytest.mark.parametrize("layer", range(4))
def test_late_update_is_the_hebbian_rule_one_step_after_the_wave(problem, layer):
    """Oracle: IL's loop written out step by step (γ = 1, weights fixed), read at step `layer + 1`."""
    net, s_in, s_out = problem
    trace = Trace()
    il_reference(net, s_in, s_out, 0.1, 1.0, layer + 1, trace=trace)
    eps, x = trace.eps[layer + 1][layer], trace.x[layer + 1][layer + 1]
    want = 0.1 * eps.T @ torch.tanh(x) / s_in.shape[0]
    torch.testing.assert_close(late_update(net, s_in, s_out, 0.1, layer).theta[layer + 1], want, rtol=1e-12, atol=0)
    bp = autograd_updates(net, s_in, s_out, 0.1)
    for k in set(bp.theta) - {layer + 1}:  # every other weight: BP's update
        torch.testing.assert_close(late_update(net, s_in, s_out, 0.1, layer).theta[k], bp.theta[k])


def test_late_update_with_updates_applied_uses_the_learned_weights():
    """Oracle: eq. (cond-late) by hand for l_max = 2, θ^2 late, θ^1 already learned (apply=True)."""
    net, s_in, s_out = random_problem((3, 5, 4), "tanh", batch=6, seed=2)
    th1, th2, alpha = net.theta[1], net.theta[2], 0.1
    y1 = torch.tanh(s_in) @ th2.T
    d0 = s_out - torch.tanh(y1) @ th1.T
    d1 = (1 - torch.tanh(y1) ** 2) * (d0 @ th1)
    th1_new = th1 + alpha * d0.T @ torch.tanh(y1) / 6
    x1 = y1 + d1
    eta0 = s_out - torch.tanh(x1) @ th1_new.T
    eta1 = y1 + (1 - torch.tanh(x1) ** 2) * (eta0 @ th1_new) - torch.tanh(s_in) @ th2.T
    got = late_update(net, s_in, s_out, alpha, 1, apply=True)
    torch.testing.assert_close(got.theta[2], alpha * eta1.T @ torch.tanh(s_in) / 6, rtol=1e-12, atol=1e-15)
    assert update_error(net, got, late_update(net, s_in, s_out, alpha, 1, apply=False)) > 1e-3


def test_late_update_rejects_a_layer_without_a_weight(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="layer"):
        late_update(net, s_in, s_out, 0.1, net.l_max)


@pytest.mark.parametrize("schedule", [at_end_schedule, persistent_schedule])
def test_learning_at_the_end_or_all_the_time_diverges(problem, schedule):
    net, s_in, s_out = problem
    assert error_vs_autograd(ZIL(0.1, schedule=schedule(net.l_max)), net, s_in, s_out) > 1e-3


# --- C1 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("apply", MODES)
def test_noise_sweep_is_exact_at_zero_and_linear_in_sigma(problem, apply):
    net, s_in, s_out = problem
    sigmas = np.logspace(-8, -4, 5)
    err = noise_sweep(net, s_in, s_out, np.concatenate([[0.0], sigmas]), apply=apply)
    assert err[0] <= 1e-12
    assert abs(loglog_slope(sigmas, err[1:]) - 1) < 0.01
    assert err[1] > 1e-10  # far above rounding even at σ = 1e-8


def test_loglog_slope_recovers_a_power_law_and_rejects_bad_input():
    x = np.logspace(-3, 2, 7)
    assert loglog_slope(x, 3 * x**2.5) == pytest.approx(2.5, abs=1e-12)
    with pytest.raises(ValueError):
        loglog_slope([1.0], [1.0])
    with pytest.raises(ValueError):
        loglog_slope([1.0, 2.0], [0.0, 1.0])


# --- the lemma, per layer -----------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_lemma_by_layer(activation):
    net, s_in, s_out = random_problem((3, 7, 6, 5, 7, 4), activation, seed=3)
    before, rel, kappa = lemma_by_layer(net, s_in, s_out)
    assert before == 0.0 and rel.shape == kappa.shape == (net.l_max,)
    assert rel[0] == 0.0  # the output error is s_out − y^0 itself
    eps = torch.finfo(torch.float64).eps
    assert np.all(rel <= 8 * eps * np.maximum(1.0, kappa))


def test_lemma_by_layer_gives_nan_where_the_delta_vanishes():
    net, s_in, s_out = random_problem((2, 3, 4), "relu", seed=0)
    net.theta[2].zero_()  # layer 1 is all zero: f'(0) = 0 for ReLU, so δ^1 = 0
    before, rel, kappa = lemma_by_layer(net, s_in, s_out)
    assert before == 0.0 and np.isnan(rel[1]) and np.isnan(kappa[1]) and np.isfinite(rel[0])


# --- C3 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.3])
def test_wave_ratios_follow_gamma_to_the_l(problem, gamma):
    net, s_in, s_out = problem
    ratios = wave_ratios(net, s_in, s_out, gamma=gamma)
    np.testing.assert_allclose(ratios, gamma ** np.arange(net.l_max), rtol=1e-12)
    dev, kappa = gamma_law_by_layer(net, s_in, s_out, gamma=gamma)
    assert dev.max() <= 1e-12 and np.all(kappa > 0)


@pytest.mark.parametrize("bias", [False, True])
def test_gamma_scaled_bp_predicts_the_broken_update_exactly(bias):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=7)
    bp = autograd_updates(net, s_in, s_out, 0.1)
    broken = ZIL(0.1, gamma=0.8)(net, s_in, s_out, apply=False)
    assert update_error(net, broken, gamma_scaled(bp, 0.8)) <= 1e-12
    assert update_error(net, broken, bp) > 1e-3


@pytest.mark.parametrize("gamma", [0.5, 0.9, 1.2])
@pytest.mark.parametrize("bias", [False, True])
def test_a_per_layer_rate_restores_bp(gamma, bias):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=9)
    assert error_vs_autograd(PerLayerRateZIL(0.1, gamma=gamma), net, s_in, s_out) <= 1e-12


def test_per_layer_rate_at_gamma_one_is_zil_bit_for_bit(problem):
    net, s_in, s_out = problem
    a, b = ZIL(0.1)(net, s_in, s_out, apply=False), PerLayerRateZIL(0.1)(net, s_in, s_out, apply=False)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(net), b.tensors(net)))


@pytest.mark.parametrize("bias", [False, True])
def test_gamma_scaled_bp_is_autograd_bp_with_rates_alpha_gamma_to_the_l(bias):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=7)
    bp = autograd_updates(net, s_in, s_out, 0.1)
    live = net.clone()
    got = GammaScaledBP(0.1, gamma=0.6)(live, s_in, s_out)
    for l in bp.theta:
        torch.testing.assert_close(got.theta[l], 0.6 ** (l - 1) * bp.theta[l], rtol=1e-14, atol=0)
        torch.testing.assert_close(live.theta[l], net.theta[l] + got.theta[l], rtol=0, atol=0)
    for l in bp.b:
        torch.testing.assert_close(got.b[l], 0.6 ** (l - 1) * bp.b[l], rtol=1e-14, atol=0)


def test_gamma_scaled_bp_traces_zil_with_c3_broken_over_training():
    sizes = (4, 16, 16, 8)
    s_in, s_out = teacher_student(160, sizes, seed=1)
    net = PCN(sizes, seed=2)
    zil = twin_divergence(ZIL(0.05, gamma=0.7), net, s_in, s_out, steps=50, batch_size=16)
    law = twin_divergence(GammaScaledBP(0.05, gamma=0.7), net, s_in, s_out, steps=50, batch_size=16)
    assert zil[-1] > 1e-3 and max(abs(a - b) for a, b in zip(zil, law)) <= 1e-12


def test_per_layer_rate_keeps_zero_divergence_over_training():
    sizes = (4, 16, 16, 8)
    s_in, s_out = teacher_student(160, sizes, seed=1)
    net = PCN(sizes, seed=2)
    assert max(twin_divergence(PerLayerRateZIL(0.05, gamma=0.7), net, s_in, s_out, steps=50, batch_size=16)) <= 1e-10
    assert twin_divergence(ZIL(0.05, gamma=0.7), net, s_in, s_out, steps=50, batch_size=16)[-1] > 1e-3


# --- ordering ------------------------------------------------------------------------------


def test_weights_first_breaks_exactness_to_first_order_in_alpha(problem):
    net, s_in, s_out = problem
    alphas = np.array([1e-4, 1e-3, 1e-2])
    err = np.array([error_vs_autograd(WeightsFirstZIL(a), net, s_in, s_out) for a in alphas])
    assert err.min() > 1e-8
    assert abs(loglog_slope(alphas, err) - 1) < 0.05


def test_weights_first_leaves_the_network_alone_unless_asked(problem):
    net, s_in, s_out = problem
    before = [p.clone() for p in net.parameters()]
    frozen = WeightsFirstZIL(0.1)(net, s_in, s_out, apply=False)
    assert all(torch.equal(p, q) for p, q in zip(before, net.parameters()))
    live = net.clone()
    applied = WeightsFirstZIL(0.1)(live, s_in, s_out, apply=True)
    assert all(torch.equal(a, b) for a, b in zip(frozen.tensors(net), applied.tensors(net)))
    for p0, d, p1 in zip(net.parameters(), frozen.tensors(net), live.parameters()):
        torch.testing.assert_close(p0 + d, p1, rtol=0, atol=0)


def test_weights_first_equals_zil_on_a_single_layer_network():
    """With one weight matrix there is no feedback step, so the order cannot matter."""
    net, s_in, s_out = random_problem((3, 5), "tanh", seed=1)
    a, b = ZIL(0.1)(net, s_in, s_out, apply=False), WeightsFirstZIL(0.1)(net, s_in, s_out, apply=False)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(net), b.tensors(net)))
