"""pcbp.autonomy: settling to C1 by the network itself, and when each Fa-Z-IL error node fires."""

import math

import numpy as np
import pytest
import torch

from pcbp.autonomy import (
    decay_rate,
    distance_to_feedforward,
    firing_record,
    linear_rate,
    missed_delta_bound,
    relaxation_spectrum,
    replay_updates,
    settle_and_record,
    settled_floor,
    settling_curve,
    steps_to_settle,
    thresholded_bp,
    wave_cut,
)
from pcbp.experiments import error_vs_autograd, random_problem
from pcbp.metrics import relative_error, update_error
from pcbp.pcn import rest_state, settle_tolerance
from pcbp.rules import FaZIL, autograd_updates


@pytest.fixture
def small():
    return random_problem((3, 6, 6, 5), "tanh", batch=4, seed=3)


def test_distance_is_zero_at_the_feedforward_pass_and_one_at_rest(small):
    net, s_in, _ = small
    y = net.feedforward(s_in)
    assert distance_to_feedforward(net, y, y) == 0.0
    assert distance_to_feedforward(net, rest_state(net, s_in), y) == pytest.approx(1.0)


def test_settling_curve_starts_at_rest_and_reaches_the_feedforward_pass(small):
    net, s_in, _ = small
    curve = settling_curve(net, s_in, 0.2, 3000, every=100)
    assert len(curve) == 31 and curve[0] == pytest.approx(1.0)
    assert curve[-1] <= 1e-12
    assert np.all(np.diff(curve[curve > 1e-13]) < 0)  # monotone in the resolved range


def test_settling_curve_sampling_does_not_change_the_dynamics(small):
    net, s_in, _ = small
    fine, coarse = settling_curve(net, s_in, 0.2, 200), settling_curve(net, s_in, 0.2, 200, every=50)
    np.testing.assert_allclose(fine[::50], coarse, rtol=1e-12, atol=0)


def test_steps_to_settle_and_the_linear_stability_limit(small):
    net, s_in, _ = small
    lam_min, lam_max = relaxation_spectrum(net, s_in)
    assert 0 < lam_min <= lam_max
    stable = steps_to_settle(net, s_in, 0.9 * 2 / lam_max, max_steps=20_000)
    assert stable is not None and stable > net.l_max
    assert steps_to_settle(net, s_in, 1.2 * 2 / lam_max, max_steps=5_000) is None


def test_spectrum_matches_a_finite_difference_hessian(small):
    net, s_in, _ = small
    s = s_in[:1]
    y = net.feedforward(s)
    n = sum(net.sizes[: net.l_max])

    def energy(v):
        x, k = list(y), 0
        for l in range(net.l_max):
            x[l] = v[k : k + net.sizes[l]].reshape(1, -1)
            k += net.sizes[l]
        return sum(0.5 * (x[l] - net.predict(l, x[l + 1])).pow(2).sum() for l in range(net.l_max))

    v0 = torch.cat([y[l].reshape(-1) for l in range(net.l_max)])
    H = torch.autograd.functional.hessian(energy, v0)
    ev = torch.linalg.eigvalsh(H)
    assert H.shape == (n, n)
    lo, hi = relaxation_spectrum(net, s)
    assert math.isclose(lo, float(ev[0]), rel_tol=1e-9) and math.isclose(hi, float(ev[-1]), rel_tol=1e-9)


def test_measured_decay_matches_the_linear_rate(small):
    net, s_in, _ = small
    lam_min, lam_max = relaxation_spectrum(net, s_in)
    gamma = 1 / lam_max
    curve = settling_curve(net, s_in, gamma, 4000)
    rho = linear_rate(lam_min, lam_max, gamma)
    assert math.log(decay_rate(curve)) / math.log(rho) == pytest.approx(1.0, rel=0.05)


def test_decay_rate_of_a_geometric_sequence_and_bad_curves():
    curve = 0.5 ** np.arange(60.0)
    assert decay_rate(curve) == pytest.approx(0.5)
    assert decay_rate(curve[::3], every=3) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        decay_rate(np.ones(10))


def test_feedback_phi_fires_every_node_once_at_its_own_step(problem):
    net, s_in, s_out = problem
    rule = FaZIL(0.1, steps=3 * net.l_max)
    firing, trace, updates = firing_record(net, s_in, s_out, rule)
    assert firing.late() == 0 and firing.missed(1e-12) == 0
    assert firing.on_time() == sum(d.numel() for d in firing.delta)
    assert all(int(c.max()) <= 1 for c in firing.count)
    assert firing.value_error() <= 1e-13
    assert update_error(net, replay_updates(net, firing, trace, 0.1), updates) <= 1e-15


def test_departure_phi_fires_late_on_relu_networks():
    net, s_in, s_out = random_problem((3, 7, 7, 7, 5), "relu", seed=1)
    dep, _, _ = firing_record(net, s_in, s_out, FaZIL(0.1, phi="departure", steps=8))
    fb, _, _ = firing_record(net, s_in, s_out, FaZIL(0.1, phi="feedback", steps=8))
    assert dep.late() > 0 and fb.late() == 0
    assert fb.silent_small(1e-12) > 0  # inactive units, δ = 0, never fire
    assert dep.on_time() == fb.on_time()


def test_stopping_early_leaves_the_deep_layers_unfired(problem):
    net, s_in, s_out = problem
    firing, _, _ = firing_record(net, s_in, s_out, FaZIL(0.1, steps=2))
    assert all(int((s >= 0).sum()) == s.numel() for s in firing.step[:2])
    assert all(int((s >= 0).sum()) == 0 for s in firing.step[2:])


def test_thresholded_bp_with_tiny_tau_is_bp_and_its_gap_is_bounded(problem):
    net, s_in, s_out = problem
    bp = autograd_updates(net, s_in, s_out, 0.1)
    assert update_error(net, thresholded_bp(net, s_in, s_out, 0.1, 0.0), bp) <= 1e-13
    for tau in (1e-3, 1e-2, 1e-1):
        gap = relative_error(thresholded_bp(net, s_in, s_out, 0.1, tau).tensors(net), bp.tensors(net))
        ref = math.sqrt(sum(float(t.pow(2).sum()) for t in bp.tensors(net)))
        assert gap * ref <= missed_delta_bound(net, s_in, 0.1, tau) * (1 + 1e-12)


def test_fazil_with_a_moderate_tau_is_thresholded_bp(problem):
    net, s_in, s_out = problem
    for tau in (1e-8, 1e-3):
        up = FaZIL(0.1, tau=tau, steps=3 * net.l_max)(net, s_in, s_out, apply=False)
        assert update_error(net, up, thresholded_bp(net, s_in, s_out, 0.1, tau)) <= 1e-12


def test_settling_curve_rejects_bad_arguments(small):
    net, s_in, _ = small
    with pytest.raises(ValueError):
        settling_curve(net, s_in, 0.1, 10, every=0)


def test_settle_and_record_agrees_with_the_separate_functions(small):
    net, s_in, _ = small
    n = steps_to_settle(net, s_in, 0.2, max_steps=10_000)
    steps, times, dists = settle_and_record(net, s_in, 0.2, max_steps=10_000, every=7, extra=3)
    assert steps == n and times[-4] == n and times[-1] == n + 21
    assert dists[0] == pytest.approx(1.0) and dists[-4] <= 1e-12
    curve = settling_curve(net, s_in, 0.2, 70, every=7)
    np.testing.assert_allclose(dists[:11], curve, rtol=1e-12, atol=0)
    assert decay_rate(dists, times=times) == pytest.approx(decay_rate(settling_curve(net, s_in, 0.2, n)), rel=0.02)


def test_settle_and_record_reports_failure(small):
    net, s_in, _ = small
    steps, times, _ = settle_and_record(net, s_in, 0.2, max_steps=50, every=20, extra=5)
    assert steps is None and times[-1] == 50


def test_a_dead_relu_bottleneck_cuts_the_wave():
    net, s_in, s_out = random_problem((3, 2, 6, 5), "relu", batch=6, seed=0)
    net.theta[2].fill_(-1.0)  # the width-2 layer gets negative input from positive f(x): all inactive
    s_in = s_in.abs()
    assert bool(wave_cut(net, s_in, s_out).all())
    net2, s_in2, s_out2 = random_problem((3, 6, 6, 5), "tanh", batch=6, seed=0)
    assert not bool(wave_cut(net2, s_in2, s_out2).any())


def test_settled_start_error_stays_within_its_floor():
    """A settle leaves residue of its tolerance; the γ = 1 learning phase grows it (here 2/λ_max < 1) before the
    wave reads it. This network's floor is above 1e-12, and the error (oracle: autograd) stays below it."""
    net, s_in, s_out = random_problem((4, 8, 2, 1), "leaky_relu", batch=9, seed=1004)
    _, hi = relaxation_spectrum(net, s_in)
    rule = FaZIL(0.1, init="settle", settle_gamma=1 / hi, settle_steps=100_000)
    floor = settled_floor(net, s_in, s_out, settle_tolerance(s_in.dtype))
    assert floor > 1e-12
    assert error_vs_autograd(rule, net, s_in, s_out, apply=True) <= floor
