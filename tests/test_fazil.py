"""Fa-Z-IL equals BP with no clock (oracle: autograd), from the feedforward limit or a real settle."""


import pytest
import torch

from pcbp.activations import ACTIVATIONS
from pcbp.data import teacher_student
from pcbp.experiments import error_vs_autograd, random_problem, twin_divergence
from pcbp.network import PCN
from pcbp.rules import ZIL, FaZIL
from pcbp.rules.fazil import phi_gate
from pcbp.updates import Trace

ACTS = sorted(ACTIVATIONS)
@pytest.mark.parametrize("extra", [0, 1, 5, 20])
def test_no_clock_running_longer_changes_nothing(problem, extra):
    net, s_in, s_out = problem
    assert error_vs_autograd(FaZIL(0.1, steps=net.l_max + extra), net, s_in, s_out) <= 1e-12


def test_stopping_before_the_wave_reaches_the_input_misses_updates(problem):
    net, s_in, s_out = problem
    assert error_vs_autograd(FaZIL(0.1, steps=net.l_max - 1), net, s_in, s_out) > 1e-3


@pytest.mark.parametrize("activation, depth", [("tanh", 2), ("tanh", 3), ("sigmoid", 4), ("relu", 3)])
def test_fazil_from_the_settled_free_network_equals_bp(activation, depth):
    net, s_in, s_out = random_problem((3,) + (6,) * (depth - 1) + (5,), activation, seed=depth)
    rule = FaZIL(0.1, init="settle", settle_gamma=0.2, steps=3 * depth)
    assert error_vs_autograd(rule, net, s_in, s_out) <= 1e-12


def test_every_error_node_passes_its_error_at_most_once(problem):
    """Φ is a one-shot gate: summed over steps, each node contributes one error, BP's δ."""
    net, s_in, s_out = problem
    trace, rule = Trace(), FaZIL(0.1, steps=3 * net.l_max)
    rule(net, s_in, s_out, apply=False, trace=trace)
    for l in range(net.l_max):
        departures = sum((trace.eps[t][l].abs() > 1e-13).int() for t in range(trace.steps))
        assert departures.max() >= 1  # the error wave did reach layer l ...
    # ... and yet the updates equal BP's, which pass each δ exactly once
    assert error_vs_autograd(rule, net, s_in, s_out) <= 1e-12


def test_phi_fires_on_feedback_but_not_on_a_moving_prediction():
    eps = torch.tensor([[0.5, 0.5, 0.0, 1e-20]], dtype=torch.float64)
    mu_prev = torch.zeros_like(eps)
    mu = torch.tensor([[0.0, 0.2, 0.0, 0.0]], dtype=torch.float64)
    armed = torch.ones_like(eps, dtype=torch.bool)
    gated, still = phi_gate(eps, mu, mu_prev, armed, 1e-13, "feedback")
    assert gated.tolist() == [[0.5, 0.0, 0.0, 0.0]] and still.tolist() == [[False, False, True, True]]
    gated, _ = phi_gate(eps, mu, mu_prev, armed, 1e-13, "departure")
    assert gated.tolist() == [[0.5, 0.5, 0.0, 0.0]]
    gated, _ = phi_gate(eps, mu_prev, mu_prev, still, 1e-13, "feedback")
    assert gated.tolist() == [[0.0, 0.0, 0.0, 0.0]]  # disarmed nodes never fire again


def test_relu_edge_case_departure_phi_fires_late_feedback_phi_is_exact():
    """A unit with BP delta exactly 0 (inactive ReLU) never departs at its own step; when its
    prediction later moves, 'first departure' fires with a wrong error, the feedback check does not."""
    net, s_in, s_out = random_problem((3, 7, 7, 7, 5), "relu", seed=1)
    naive = error_vs_autograd(FaZIL(0.1, phi="departure", steps=8), net, s_in, s_out)
    fixed = error_vs_autograd(FaZIL(0.1, phi="feedback", steps=8), net, s_in, s_out)
    assert naive > 1e-3 and fixed <= 1e-12


def test_fazil_and_bp_weights_agree_over_training():
    s_in, s_out = teacher_student(320, (4, 16, 16, 8), "relu", seed=1)
    net = PCN((4, 16, 16, 8), "relu", seed=2)
    div = twin_divergence(FaZIL(0.05), net, s_in, s_out, steps=200, batch_size=16)
    assert max(div) <= 1e-10


def test_fazil_and_zil_agree(problem):
    net, s_in, s_out = problem
    a = FaZIL(0.1)(net, s_in, s_out, apply=False)
    b = ZIL(0.1)(net, s_in, s_out, apply=False)
    for x, y in zip(a.tensors(net), b.tensors(net)):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-16)


def test_settle_that_does_not_converge_raises_with_the_fix(problem):
    net, s_in, s_out = problem
    with pytest.raises(RuntimeError, match="did not settle.*settle_steps"):
        FaZIL(0.1, init="settle", settle_steps=3)(net, s_in, s_out)
