"""IL only approximates BP: its error is real and shrinks with the output error."""

import pytest
import torch

from pcbp.data import teacher_student
from pcbp.experiments import error_vs_autograd, il_reference, random_problem, twin_divergence
from pcbp.metrics import relative_error
from pcbp.network import PCN
from pcbp.rules import IL, autograd_updates
from pcbp.updates import Trace


def targets_near_output(net, s_in, scale, seed=0):
    """Targets `y^0 + scale · noise`: an output error of size `scale`."""
    noise = torch.randn(s_in.shape[0], net.sizes[0], generator=torch.Generator().manual_seed(seed),
                        dtype=s_in.dtype)
    return net(s_in) + scale * noise


def test_il_differs_from_bp(problem):
    net, s_in, s_out = problem
    assert error_vs_autograd(IL(0.1, gamma=0.1, T=20), net, s_in, s_out) > 1e-3


def test_il_difference_from_bp_shrinks_with_the_output_error_but_not_relatively():
    """‖Δ_IL − Δ_BP‖ falls in step with the output error; relative to ‖Δ_BP‖ it levels off
    (about 0.5 here): at equilibrium the hidden layers absorb part of the output error."""
    net, s_in, _ = random_problem((3, 8, 8, 6), "tanh", seed=3)
    absolute, relative = [], []
    for scale in (1.0, 1e-1, 1e-2, 1e-3):
        s_out = targets_near_output(net, s_in, scale)
        il = IL(0.1, gamma=0.1, T=50)(net, s_in, s_out, apply=False)
        bp = autograd_updates(net, s_in, s_out, 0.1)
        absolute.append(relative_error(il.tensors(net), bp.tensors(net)) * norm(bp, net))
        relative.append(relative_error(il.tensors(net), bp.tensors(net)))
    assert all(b < 0.2 * a for a, b in zip(absolute, absolute[1:])), absolute
    assert min(relative) > 0.1, relative


def norm(updates, net):
    return float(sum(t.pow(2).sum() for t in updates.tensors(net)) ** 0.5)


def test_il_relaxation_lowers_the_energy(problem):
    net, s_in, s_out = problem
    trace = Trace()
    IL(0.1, gamma=0.1, T=30)(net, s_in, s_out, apply=False, trace=trace)
    F = trace.energies()
    assert trace.steps == 31 and bool((F[1:] <= F[:-1] + 1e-15).all()) and F[-1] < F[0]


def test_il_divergence_over_training_is_nonzero():
    s_in, s_out = teacher_student(256, (4, 12, 8), seed=0)
    div = twin_divergence(IL(0.05), PCN((4, 12, 8), seed=1), s_in, s_out, steps=40, batch_size=16)
    assert div[-1] > 1e-4


@pytest.mark.parametrize("T", [1, 5])
def test_il_updates_with_the_relaxed_state(problem, T):
    net, s_in, s_out = problem
    trace = Trace()
    upd = IL(0.1, T=T)(net, s_in, s_out, apply=False, trace=trace)
    eps, x = trace.eps[-1], trace.x[-1]
    expected = 0.1 * eps[1].T @ net.f(x[2]) / s_in.shape[0]
    torch.testing.assert_close(upd.theta[2], expected)


def reference_il(net, s_in, s_out, alpha, gamma, T, init_noise=0.0, seed=0):
    trace = Trace()
    return il_reference(net, s_in, s_out, alpha, gamma, T, init_noise, seed, trace=trace), trace


def max_gap(a, b):
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "leaky_relu", "linear"])
@pytest.mark.parametrize("sizes, init_noise", [((3, 6, 5, 4, 7), 0.0), ((3, 6, 5, 4, 7), 0.3), ((4, 9, 5), 0.0),
                                               ((4, 5), 0.0)])
def test_fast_relaxation_equals_the_reference_step_by_step(bias, activation, sizes, init_noise):
    """Every x, μ, ε of every step and every update agree with the plain loop to 1e-13 (float64)."""
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, batch=6, seed=5)
    expected, ref_trace = reference_il(net, s_in, s_out, 0.1, 0.1, 25, init_noise, seed=2)
    trace = Trace()
    got = IL(0.1, gamma=0.1, T=25, init_noise=init_noise, seed=2)(net, s_in, s_out, apply=False, trace=trace)
    assert trace.steps == ref_trace.steps == 26
    for t in range(trace.steps):
        for name in ("x", "mu", "eps"):
            assert max_gap(getattr(trace, name)[t], getattr(ref_trace, name)[t]) <= 1e-13, (name, t)
    assert max_gap(got.tensors(net), expected.tensors(net)) <= 1e-13
    assert sorted(got.b) == sorted(expected.b) == ([l for l in range(1, net.l_max + 1)] if bias else [])


def test_fast_relaxation_leaves_the_batch_and_a_copy_of_the_net_alone(problem):
    """The in-place steps move only IL's own copies of the hidden nodes."""
    net, s_in, s_out = problem
    s_in0, s_out0, theta0 = s_in.clone(), s_out.clone(), [p.clone() for p in net.parameters()]
    IL(0.1, T=10)(net, s_in, s_out, apply=False)
    assert torch.equal(s_in, s_in0) and torch.equal(s_out, s_out0)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), theta0))
    twin = net.clone()
    upd = IL(0.1, T=10)(net, s_in, s_out)
    upd.apply(twin)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), twin.parameters()))


def test_fast_relaxation_keeps_float32():
    net, s_in, s_out = random_problem((10, 32, 32, 78), "tanh", batch=4, dtype=torch.float32)
    trace = Trace()
    upd = IL(0.1, T=3)(net, s_in, s_out, apply=False, trace=trace)
    assert all(t.dtype == torch.float32 for t in upd.tensors(net) + trace.x[-1] + trace.mu[-1] + trace.eps[-1])
