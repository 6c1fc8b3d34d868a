"""Z-IL in continuous time: one Euler step of size γ = 1 per layer is BP; finer steps of the same flow are not."""

import numpy as np
import pytest
import torch

from pcbp.conditions import loglog_slope
from pcbp.continuous import (
    ContinuousZIL,
    gamma_law_sweep,
    gamma_slope,
    gamma_sweep,
    substeps_sweep,
    time_schedule,
    wave_alignment,
    zil_continuous,
)
from pcbp.experiments import MODES, random_problem, rounding_floor
from pcbp.metrics import relative_error
from pcbp.pcn import energy, errors, feedforward_state, hebbian, inference_step, predictions
from pcbp.rules import ZIL
from pcbp.updates import Trace

PROBLEMS = [((3, 6, 5, 4, 7), "tanh", False), ((4, 8, 8, 8, 6), "relu", True), ((5, 7, 7, 5), "sigmoid", True)]


def same(a, b, net):
    return all(torch.equal(u, v) for u, v in zip(a.tensors(net), b.tensors(net)))


@pytest.mark.parametrize("gamma", [1.0, 0.7, 1.3])
@pytest.mark.parametrize("apply", MODES)
def test_one_substep_is_zil_bit_for_bit(problem, gamma, apply):
    """`substeps = 1` runs `ZIL(α, gamma=γ)`: every update, every weight and every traced node agree exactly."""
    net, s_in, s_out = problem
    a, b, ta, tb = net.clone(), net.clone(), Trace(), Trace()
    got = ContinuousZIL(0.1, gamma=gamma)(a, s_in, s_out, apply=apply, trace=ta)
    want = ZIL(0.1, gamma=gamma)(b, s_in, s_out, apply=apply, trace=tb)
    assert same(got, want, net) and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert ta.steps == tb.steps and all(
        torch.equal(u, v) for t in range(ta.steps) for u, v in zip(ta.eps[t] + ta.x[t], tb.eps[t] + tb.x[t])
    )
    if gamma == 1.0:
        assert same(zil_continuous(net, s_in, s_out, 1.0, 1), ZIL(0.1)(net, s_in, s_out, apply=False), net)


def test_init_noise_breaks_c1_as_in_zil(problem):
    net, s_in, s_out = problem
    got = ContinuousZIL(0.1, init_noise=0.2, seed=3)(net, s_in, s_out, apply=False)
    assert same(got, ZIL(0.1, init_noise=0.2, seed=3)(net, s_in, s_out, apply=False), net)


@pytest.mark.parametrize("sizes, activation, bias", PROBLEMS)
def test_the_euler_step_is_minus_the_energy_gradient(sizes, activation, bias):
    """`inference_step` at rate `h` is `x − h ∂F/∂x` on the hidden nodes (autograd; `F` summed over samples)."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, seed=5)
    x = feedforward_state(net, s_in, s_out)
    x = [v + 0.1 * torch.randn(v.shape, generator=torch.Generator().manual_seed(l), dtype=v.dtype)
         if 0 < l < net.l_max else v for l, v in enumerate(x)]
    hidden = [v.clone().requires_grad_(True) for v in x[1:-1]]
    with torch.enable_grad():
        state = [x[0], *hidden, x[-1]]
        F = energy(errors(state, predictions(net, state))) * s_in.shape[0]
        grads = torch.autograd.grad(F, hidden)
    stepped = inference_step(net, x, errors(x, predictions(net, x)), 0.25, clamp_output=True)
    for l, g in enumerate(grads, start=1):
        torch.testing.assert_close(stepped[l], x[l] - 0.25 * g, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("substeps", [1, 3, 8])
def test_layer_l_learns_at_time_l_gamma_after_l_substeps_euler_steps(problem, substeps):
    """`(l_max − 1) n` Euler steps of `h = γ/n`; `θ^{l+1}` learns from the state after `l n` of them."""
    net, s_in, s_out = problem
    rule, trace = ContinuousZIL(0.1, gamma=0.9, substeps=substeps), Trace()
    upd = rule(net, s_in, s_out, apply=False, trace=trace)
    assert rule.h == 0.9 / substeps and time_schedule(net.l_max, substeps) == {l: (l * substeps,) for l in range(4)}
    assert trace.steps == (net.l_max - 1) * substeps + 1
    for l in range(net.l_max):
        t = l * substeps
        assert torch.equal(upd.theta[l + 1], hebbian(0.1, trace.eps[t][l], net.f(trace.x[t][l + 1])))


@pytest.mark.parametrize("sizes, activation, bias", PROBLEMS)
def test_divergence_near_gamma_one_is_the_gamma_to_the_l_law_with_slope_one(sizes, activation, bias):
    """With `n = 1`, `ε^l_l = γ^l δ^l`, so the divergence is the law's (≤ 1e-12 absolute), and
    `= c|1 − γ|(1 + ρ)` with `|ρ| ≤ (l_max − 1) u` (`u = |1 − γ|`, from `γ^l − 1 = l(γ − 1)(1 + (l − 1)(γ − 1)/2 + …)`).
    A least-squares slope over `x = log u` spanning `W` then misses 1 by at most `3 max|ρ| / W`."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, seed=9)
    u = np.array([1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
    c, bound = gamma_slope(net, s_in, s_out), (net.l_max - 1) * u.max()
    for side in (-1, 1):
        gammas = 1 + side * u
        div = gamma_sweep(net, s_in, s_out, gammas)
        np.testing.assert_allclose(div, gamma_law_sweep(net, s_in, s_out, gammas), rtol=0, atol=1e-12)
        assert np.all(np.abs(div / (c * u) - 1) <= (net.l_max - 1) * u + 1e-12 / (c * u))
        assert abs(loglog_slope(u, div) - 1) <= 3 * bound / np.log(u.max() / u.min())


@pytest.mark.parametrize("sizes, activation, bias", PROBLEMS)
@pytest.mark.parametrize("apply", MODES)
def test_finer_integration_of_the_same_time_is_not_bp(sizes, activation, bias, apply):
    """Same times `t_l = l`, Euler steps `h = 1/n`: the divergence from BP is at least 1e8 times the
    same-run baseline (`n = 1`, or the rounding floor if larger), for every `n > 1`, and for every γ."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, seed=9)
    div = substeps_sweep(net, s_in, s_out, [1, 2, 4, 16, 64], apply=apply)
    baseline = max(div[0], rounding_floor(net, s_in, s_out))
    assert div[0] <= 1e-12 and np.all(div[1:] >= 1e8 * baseline), div
    assert np.all(gamma_sweep(net, s_in, s_out, [0.5, 0.9, 1.0, 1.1, 2.0], substeps=16, apply=apply) >= 1e8 * baseline)


def test_finer_integration_converges_to_the_flow_at_first_order(problem):
    """Euler's global error is `C h + O(h²)`: successive differences halve, so the `n → ∞` limit (the flow)
    exists; its Richardson estimate `2U(2n) − U(n)` is as far from BP as the finest run."""
    net, s_in, s_out = problem
    runs = {n: zil_continuous(net, s_in, s_out, 1.0, n).tensors(net) for n in (16, 32, 64)}
    gap = lambda a, b: relative_error(runs[a], runs[b])  # noqa: E731
    assert 0.4 <= gap(32, 64) / gap(16, 32) <= 0.6
    exact = zil_continuous(net, s_in, s_out, 1.0, 1).tensors(net)  # = BP, to rounding
    flow = [2 * b - a for a, b in zip(runs[32], runs[64])]
    assert relative_error(flow, runs[64]) <= 2 * gap(32, 64)
    assert relative_error(flow, exact) >= 1e8 * rounding_floor(net, s_in, s_out)


@pytest.mark.parametrize("sizes, activation, bias", PROBLEMS)
def test_in_the_flow_no_per_layer_rate_can_repair_the_error(sizes, activation, bias):
    """`γ ≠ 1` only rescales `δ^l` (residual at rounding, scale `γ^l`); the flow's `ε^l(t_l)` points elsewhere."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, seed=9)
    scale, residual = wave_alignment(net, s_in, s_out, gamma=0.8)
    ok = ~np.isnan(scale)
    np.testing.assert_allclose(scale[ok], (0.8 ** np.arange(net.l_max))[ok], rtol=1e-12)
    baseline = max(float(np.nanmax(residual)), 1e-16)
    assert baseline <= 1e-12
    _, flow = wave_alignment(net, s_in, s_out, substeps=64)
    assert flow[0] <= 1e-12 and np.nanmax(flow[1:]) >= 1e8 * baseline  # the output layer learns at t = 0


@pytest.mark.parametrize("kwargs", [{"gamma": 0}, {"gamma": -1.0}, {"substeps": 0}, {"substeps": 1.5},
                                    {"substeps": True}, {"init_noise": -0.1}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ContinuousZIL(0.1, **kwargs)


def test_zil_continuous_leaves_the_net_alone(problem):
    net, s_in, s_out = problem
    before = [p.clone() for p in net.parameters()]
    zil_continuous(net, s_in, s_out, 0.8, 4)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
