"""Z-IL equals BP (oracle: autograd), and each condition C1–C3 is needed for it."""


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pcbp.activations import ACTIVATIONS
from pcbp.data import teacher_student
from pcbp.experiments import (
    dtype_divergence,
    error_vs_autograd,
    gamma_law_error,
    lemma_errors,
    random_problem,
    rounding_floor,
    twin_divergence,
)
from pcbp.network import PCN
from pcbp.rules import ZIL
from pcbp.updates import Trace

ACTS = sorted(ACTIVATIONS)
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=9),
    activation=st.sampled_from(ACTS),
    bias=st.booleans(),
    batch=st.integers(1, 9),
    seed=st.integers(0, 10_000),
)
def test_zil_equals_bp_on_random_architectures(sizes, activation, bias, batch, seed):
    """≤ 1e-12, or the rounding floor where deltas are tiny next to the values (width-1 chains)."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, batch=batch, seed=seed)
    bound = max(1e-12, rounding_floor(net, s_in, s_out))
    assert error_vs_autograd(ZIL(0.1), net, s_in, s_out) <= bound


def test_rounding_floor_explains_a_degenerate_chain():
    """A width-1 leaky-ReLU chain: |δ| ≪ |y|, Z-IL misses 1e-12 but stays under eps·|y|/|δ|."""
    net, s_in, s_out = random_problem([1] * 6, "leaky_relu", batch=1, seed=0)
    err, floor = error_vs_autograd(ZIL(0.1), net, s_in, s_out), rounding_floor(net, s_in, s_out)
    assert 1e-12 < err <= floor


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_zil_and_bp_weights_agree_after_200_sgd_steps(activation):
    s_in, s_out = teacher_student(320, (4, 16, 16, 8), activation, seed=1)
    net = PCN((4, 16, 16, 8), activation, bias=True, seed=2)
    div = twin_divergence(ZIL(0.05), net, s_in, s_out, steps=200, batch_size=16)
    assert len(div) == 200 and max(div) <= 1e-10


def test_applying_each_update_at_its_step_changes_nothing(problem):
    """Plasticity during inference (apply=True) gives the same updates as frozen weights."""
    net, s_in, s_out = problem
    frozen = ZIL(0.1)(net, s_in, s_out, apply=False)
    live = net.clone()
    applied = ZIL(0.1)(live, s_in, s_out, apply=True)
    for a, b in zip(frozen.tensors(net), applied.tensors(net)):
        assert torch.equal(a, b)
    for p0, d, p1 in zip(net.parameters(), frozen.tensors(net), live.parameters()):
        torch.testing.assert_close(p0 + d, p1, rtol=0, atol=0)


@pytest.mark.parametrize("activation", ACTS)
def test_lemma_errors_stay_zero_until_the_wave_then_equal_delta(activation):
    net, s_in, s_out = random_problem((3, 7, 6, 5, 7, 4), activation, seed=3)
    before, at = lemma_errors(net, s_in, s_out)
    assert before == 0.0 and at <= 1e-12


def test_presynaptic_node_is_still_feedforward_when_its_weight_learns(problem):
    net, s_in, s_out = problem
    trace = Trace()
    ZIL(0.1)(net, s_in, s_out, apply=False, trace=trace)
    y = net.feedforward(s_in)
    for l in range(net.l_max):
        assert torch.equal(trace.x[l][l + 1], y[l + 1])


@pytest.mark.parametrize("gamma", [0.3, 0.5, 0.9, 1.2])
def test_only_gamma_broken_scales_layer_l_error_by_gamma_to_the_l(gamma):
    net, s_in, s_out = random_problem((3, 7, 6, 5, 7, 4), "tanh", seed=4)
    assert gamma_law_error(net, s_in, s_out, gamma=gamma) <= 1e-12


def test_gamma_not_one_diverges_from_bp(problem):
    net, s_in, s_out = problem
    assert error_vs_autograd(ZIL(0.1, gamma=0.9), net, s_in, s_out) > 1e-3


@pytest.mark.parametrize("sigma", [1e-3, 1e-1])
def test_breaking_c1_diverges_far_above_rounding(problem, sigma):
    net, s_in, s_out = problem
    assert error_vs_autograd(ZIL(0.1, init_noise=sigma), net, s_in, s_out) > 1e6 * 1e-16 * (sigma / 1e-3)


def test_updating_a_layer_after_its_step_diverges(problem):
    net, s_in, s_out = problem
    late = ZIL(0.1, schedule={0: 0, 1: 1, 2: 3, 3: 3})  # θ^3 learns at t = 3 instead of t = 2
    assert error_vs_autograd(late, net, s_in, s_out) > 1e-3


def test_updating_a_layer_also_before_its_step_is_harmless(problem):
    """Errors are still exactly 0 before the wave arrives, so the early updates are exactly 0."""
    net, s_in, s_out = problem
    early = ZIL(0.1, schedule={l: range(l + 1) for l in range(net.l_max)})
    assert error_vs_autograd(early, net, s_in, s_out) <= 1e-12


def test_il_style_single_update_at_the_end_diverges(problem):
    net, s_in, s_out = problem
    at_end = ZIL(0.1, schedule={l: net.l_max - 1 for l in range(net.l_max)})
    assert error_vs_autograd(at_end, net, s_in, s_out) > 1e-3


def test_float32_divergence_is_rounding_not_theory():
    f64 = dtype_divergence(lambda: ZIL(0.05), torch.float64)
    f32 = dtype_divergence(lambda: ZIL(0.05), torch.float32)
    assert f64 <= 1e-13 and f32 >= 1e6 * f64
    assert f32 <= 1e-4  # still rounding-sized in float32


def test_lemma_check_handles_a_dead_layer_whose_delta_is_zero():
    net, s_in, s_out = random_problem((3, 5, 4), "relu", seed=0)
    net.theta[2].fill_(-1.0)
    s_in = s_in.abs() + 0.1  # every hidden unit inactive: δ^1 = 0 exactly
    before, at = lemma_errors(net, s_in, s_out)
    assert before == 0.0 and at == 0.0
