"""Fixed-prediction PC: BP at `η = 1` after `l_max − 1` steps; for other `η`, BP with `δ^l` scaled by
`P(Bin(T, η) ≥ l)`."""

import itertools
import math

import numpy as np
import pytest
import torch

from pcbp.activations import ACTIVATIONS
from pcbp.experiments import MODES, error_vs_autograd, random_problem
from pcbp.metrics import relative_error, update_error
from pcbp.rules import BP, autograd_updates
from pcbp.rules.fixed_prediction import FixedPrediction, binomial_gain, binomial_gap, binomial_scaled
from pcbp.updates import Trace

SHAPES = {"narrow": lambda d: (4,) + (3,) * (d - 1) + (5,), "wide": lambda d: (4,) + (16,) * (d - 1) + (5,),
          "square": lambda d: (5,) * (d + 1)}
GRID = list(itertools.product((1, 2, 3, 4, 6), SHAPES, (1, 7), sorted(ACTIVATIONS), (False, True)))


def per_layer_errors(net, got, reference):
    """`‖Δ_got − Δ_ref‖ / ‖Δ_ref‖` for each weight and each bias separately."""
    return [relative_error([a], [b]) for a, b in zip(got.tensors(net), reference.tensors(net))]


@pytest.mark.parametrize("depth, shape, batch, activation, bias", GRID)
def test_eta_one_for_l_max_steps_is_autograd_bp_in_both_modes(depth, shape, batch, activation, bias):
    """≤ 1e-12 relative for every single weight and bias (`apply=False`), and for the trained weights
    against one `torch.optim.SGD` step (`apply=True`); the updates equal `BP`'s bit for bit."""
    net, s_in, s_out = random_problem(SHAPES[shape](depth), activation, bias=bias, batch=batch, seed=7 * depth + batch)
    rule = FixedPrediction(0.1)
    got = rule(net, s_in, s_out, apply=False)
    assert max(per_layer_errors(net, got, autograd_updates(net, s_in, s_out, 0.1))) <= 1e-12
    assert all(torch.equal(a, b) for a, b in zip(got.tensors(net), BP(0.1)(net, s_in, s_out, apply=False).tensors(net)))
    for apply in MODES:
        assert error_vs_autograd(rule, net, s_in, s_out, apply=apply) <= 1e-12, apply


def test_l_max_minus_one_steps_suffice_and_one_fewer_leaves_the_deepest_weight_unlearned(problem):
    """At `η = 1` the wave reaches layer `l` at step `l`; the deepest error layer is `l_max − 1`."""
    net, s_in, s_out = problem
    reference = autograd_updates(net, s_in, s_out, 0.1)
    enough = FixedPrediction(0.1, steps=net.l_max - 1)(net, s_in, s_out, apply=False)
    assert update_error(net, enough, reference) <= 1e-12
    short = FixedPrediction(0.1, steps=net.l_max - 2)(net, s_in, s_out, apply=False)
    assert torch.count_nonzero(short.theta[net.l_max]) == 0
    assert max(per_layer_errors(net, short, reference)[: net.l_max - 1]) <= 1e-12


@pytest.mark.parametrize("eta", [0.3, 0.7, 1.0, 1.5])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10, 40])
@pytest.mark.parametrize("bias", [False, True])
def test_updates_are_bp_scaled_by_the_binomial_gain(eta, steps, bias):
    """`ε^l_T = P(Bin(T, η) ≥ l) δ^l` exactly (module doc), so the updates are BP's scaled per layer."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", bias=bias, batch=6, seed=2)
    got = FixedPrediction(0.1, eta, steps)(net, s_in, s_out, apply=False)
    assert update_error(net, got, binomial_scaled(autograd_updates(net, s_in, s_out, 0.1), eta, steps)) <= 1e-12


@pytest.mark.parametrize("eta", [0.2, 0.5, 0.9])
def test_binomial_gain_is_the_scalar_chain_it_claims(eta):
    """Independent check of the closed form: the scalar chain `e^l ← (1 − η) e^l + η e^{l−1}`, `e^0 = 0`,
    `e^l_0 = −1`, is `g_l(T) − 1`."""
    e = np.array([0.0] + [-1.0] * 5)
    for T in range(1, 80):
        e = np.concatenate([[0.0], (1 - eta) * e[1:] + eta * e[:-1]])
        np.testing.assert_allclose(e, [binomial_gain(l, T, eta) - 1 for l in range(6)], rtol=0, atol=1e-13)


@pytest.mark.parametrize("eta", [0.2, 0.5, 0.9, 1.3])
@pytest.mark.parametrize("l", [1, 3, 5])
def test_the_gap_shrinks_by_one_minus_eta_per_step_in_the_limit(eta, l):
    """`gap(T+1)/gap(T) = 1 − η P(Bin(T) = l−1)/P(Bin(T) < l)`; the neglected lower terms are a geometric
    series of ratio at most `q = (l − 1)|1 − η| / (η(T − l + 2))`, so the ratio is `1 − η` within `η q / (1 − 2q)`."""
    T = 200
    ratio = binomial_gap(l, T + 1, eta) / binomial_gap(l, T, eta)
    q = (l - 1) * abs(1 - eta) / (eta * (T - l + 2))
    assert abs(ratio - (1 - eta)) <= eta * q / (1 - 2 * q) + 1e-12


@pytest.mark.parametrize("eta", [0.3, 0.6, 0.9])
def test_below_one_the_error_to_bp_falls_every_step_to_the_fixed_point(eta):
    """`1 − g_1(T) = (1 − η)^T` falls strictly, so the total does too; the error never exceeds the
    derived bound `max_l P(Bin(T, η) < l)` (plus rounding) and reaches rounding at large `T`."""
    net, s_in, s_out = random_problem((4, 8, 8, 8, 6), "tanh", batch=5, seed=4)
    reference = autograd_updates(net, s_in, s_out, 0.1)
    errs = []
    for T in range(1, 121):
        errs.append(update_error(net, FixedPrediction(0.1, eta, T)(net, s_in, s_out, apply=False), reference))
        bound = max(binomial_gap(l, T, eta) for l in range(net.l_max))
        assert errs[-1] <= bound + 1e-12, T
    above = [e for e in errs if e > 1e-10]
    assert all(b < a for a, b in zip(above, above[1:]))
    assert errs[-1] <= max(binomial_gap(l, 120, eta) for l in range(net.l_max)) + 1e-12 <= 1e-9


def test_above_one_it_overshoots_then_still_converges(problem):
    """For `1 < η < 2` the step's eigenvalue `1 − η` is negative: not monotone, but it settles at BP."""
    net, s_in, s_out = problem
    reference = autograd_updates(net, s_in, s_out, 0.1)
    errs = [update_error(net, FixedPrediction(0.1, 1.5, T)(net, s_in, s_out, apply=False), reference)
            for T in (1, 2, 3, 100)]
    assert errs[2] > errs[0] and errs[3] <= 1e-12


def test_trace_holds_fixed_predictions_and_a_clamped_output(problem):
    net, s_in, s_out = problem
    trace = Trace()
    FixedPrediction(0.1, 0.5, 6)(net, s_in, s_out, apply=False, trace=trace)
    y = net.feedforward(s_in)
    assert trace.steps == 7
    for t in range(trace.steps):
        assert all(torch.equal(m, y[l]) for l, m in enumerate(trace.mu[t]))
        assert torch.equal(trace.x[t][0], s_out) and torch.equal(trace.x[t][-1], s_in)
        assert torch.equal(trace.eps[t][0], s_out - y[0])
    assert all(float(e.abs().max()) == 0 for e in trace.eps[0][1:])  # C1: every hidden error starts at 0


def test_apply_changes_the_weights_once_by_the_returned_updates(problem):
    net, s_in, s_out = problem
    frozen = FixedPrediction(0.1, 0.5, 4)(net, s_in, s_out, apply=False)
    live = net.clone()
    applied = FixedPrediction(0.1, 0.5, 4)(live, s_in, s_out, apply=True)
    assert all(torch.equal(a, b) for a, b in zip(frozen.tensors(net), applied.tensors(net)))
    assert all(torch.equal(p + d, q) for p, d, q in zip(net.parameters(), frozen.tensors(net), live.parameters()))


@pytest.mark.parametrize("eta", [0, -0.5, 2, 2.5, math.nan, math.inf, True, "1"])
def test_a_bad_eta_is_refused(eta):
    with pytest.raises(ValueError, match="eta"):
        FixedPrediction(0.1, eta=eta)


@pytest.mark.parametrize("steps", [0, -3, 1.5, True, "2"])
def test_bad_steps_are_refused(steps):
    with pytest.raises(ValueError, match="steps"):
        FixedPrediction(0.1, steps=steps)


def test_defaults_and_repr():
    rule = FixedPrediction(0.1)
    assert (rule.eta, rule.steps) == (1.0, None)
    assert repr(rule) == "FixedPrediction(alpha=0.1, eta=1.0, steps=None)"
