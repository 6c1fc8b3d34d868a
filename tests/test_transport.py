"""pcbp.transport: weight transport, learned and random feedback in training, and the free equilibrium.

float64 throughout, synthetic teacher-student data. Oracles: transport Z-IL (bit for bit), autograd + SGD
(BP), direct feedback alignment (`fa_updates`), `pcbp.autonomy`'s settling and Hessian spectrum, autograd's
Jacobian, and rounding budgets derived in each docstring. eps = 2⁻⁵².
"""

import math

import numpy as np
import pytest
import torch

from pcbp.autonomy import decay_rate, linear_rate, relaxation_spectrum, settling_curve
from pcbp.compare import batch_seed
from pcbp.data import batches, teacher_student
from pcbp.experiments import random_problem
from pcbp.feedback import Feedback, feedback_step, offsets, random_feedback
from pcbp.metrics import divergence
from pcbp.network import PCN
from pcbp.pcn import errors, predictions
from pcbp.rules.bp import AutogradSGD
from pcbp.transport import (
    BP_RUN,
    FA_DIRECT,
    IDENTICAL,
    IL_RANDOM,
    KOLEN_POLLACK,
    MISMATCHED,
    NOISY,
    RANDOM,
    RUN_NAMES,
    TRANSPORT,
    DirectFA,
    NoisyCopy,
    feedback_spectrum,
    feedback_step_jacobian,
    feedback_step_jacobian_radius,
    free_equilibrium,
    kp_rate,
    relaxation_operator,
    stable_gamma_limit,
    train_feedback_runs,
)

EPS = torch.finfo(torch.float64).eps
SIZES = (4, 16, 16, 8)
SEED, ALPHA, BATCH, EPOCHS, N = 2, 0.05, 16, 3, 320  # 60 updates
PER_UPDATE = 1e-12  # the per-update bound tests/test_zil.py and tests/test_feedback.py hold Z-IL to (vs BP, vs FA)
DECAY, DELTA, SIGMA = 0.05, 0.5, 0.1


def data(activation: str = "tanh"):
    return teacher_student(N, SIZES, activation, seed=1)


@pytest.fixture(scope="module")
def runs():
    """Every run on teacher-student data (tanh, biases), recorded after every update."""
    s_in, s_out = data()
    test = (s_in[:64], s_out[:64], s_out[:64].argmax(dim=1))
    return train_feedback_runs(SIZES, (s_in, s_out), test, epochs=EPOCHS, batch_size=BATCH, alpha=ALPHA, seed=SEED,
                               bias=True, delta=DELTA, decay=DECAY, sigma=SIGMA, gamma=0.1, T=8)


def equal_params(a: PCN, b: PCN) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def twin_amplification(make_rule, eta: float = 1e-8) -> float:
    """How much training amplifies a small difference of weights: the largest ratio, over the 60 updates, of the
    divergence between a run and its twin started from weights perturbed by a relative `η` (same batches)."""
    s_in, s_out = data()
    a = PCN(SIZES, "tanh", bias=True, seed=SEED)
    b = a.clone()
    gen = torch.Generator().manual_seed(0)
    for p in b.parameters():
        p.add_(eta * (p.abs() + 0.1) * torch.randn(p.shape, generator=gen, dtype=p.dtype))  # biases start at 0
    ra, rb = make_rule(a), make_rule(b)
    d0, worst = divergence(b, a), 1.0
    for epoch in range(EPOCHS):
        for x, y in batches(s_in, s_out, BATCH, seed=batch_seed(SEED, epoch)):
            ra(a, x, y)
            rb(b, x, y)
            worst = max(worst, divergence(b, a) / d0)
    return worst


def rounding_budget(run, ref, amplification: float) -> np.ndarray:
    """The largest relative divergence between two trainers of one exact update rule that rounding allows.

    At update j each trainer rounds `θ + Δθ` once (≤ (eps/2)‖θ_{j+1}‖ each) and their updates from the same weights
    differ by ≤ `PER_UPDATE`·‖Δ_j‖. Added up, and each injected difference grown at most by the measured
    `amplification` (with a 2× margin: the twin measures one direction), the distance after k updates is at most
    `2·A·Σ_{j<k} (eps/2 (‖a_{j+1}‖ + ‖r_{j+1}‖) + PER_UPDATE·max(‖Δa_j‖, ‖Δr_j‖))`, divided by `‖r_k‖`.
    Needs records after every update (`run.iterations == 0 … K`).
    """
    assert run.iterations == list(range(len(run.iterations)))
    step = [0.5 * EPS * (run.norms[j + 1] + ref.norms[j + 1]) + PER_UPDATE * max(run.update_norms[j],
                                                                               ref.update_norms[j])
            for j in range(len(run.update_norms))]
    total = 2 * amplification * np.concatenate([[0.0], np.cumsum(step)])
    return total / np.array(ref.norms)


# --- training ------------------------------------------------------------------------------------------------

def test_the_runs_share_the_start_and_record_what_a_plot_needs(runs):
    assert list(runs.runs) == list(RUN_NAMES)
    assert all(r.iterations == list(range(61)) and r.divergence[0] == 0.0 for r in runs.runs.values())
    assert math.isnan(runs[BP_RUN].offset[0]) and math.isnan(runs[TRANSPORT].offset[-1])
    assert runs[IDENTICAL].offset[0] == 0.0 and runs[NOISY].offset[0] == 0.0
    assert runs[MISMATCHED].offset[0] == pytest.approx(DELTA, rel=1e-12)  # ‖D^l‖ = δ‖θ^l‖ in every layer
    assert len(runs.records()) == 9 * 61 and len(runs.summary()) == 9
    assert 0 < runs.chance <= runs.learned < 1
    assert runs[BP_RUN].loss < runs[BP_RUN].loss_start


def test_an_identical_copy_is_transport_bit_for_bit_and_bp_to_rounding(runs):
    """60 updates: the identical copy's network equals transport Z-IL's exactly, its B equals θᵀ exactly, and its
    divergence from BP stays within the rounding budget (BP's own amplification of a difference measured on a
    twin, checked ≤ 2: this regime does not blow differences up)."""
    copy, tr, bp = runs[IDENTICAL], runs[TRANSPORT], runs[BP_RUN]
    assert len(copy.update_norms) >= 50
    assert equal_params(copy.net, tr.net)
    assert all(torch.equal(copy.feedback.B[l], copy.net.theta[l].T) for l in copy.net.theta)
    assert all(o == 0.0 for o in copy.offset_steps)
    amp = twin_amplification(lambda net: AutogradSGD(ALPHA))
    assert amp <= 2
    budget = rounding_budget(copy, bp, amp)
    assert np.all(np.array(copy.divergence) <= budget)
    assert budget[-1] < 1e-10 and divergence(copy.net, PCN(SIZES, "tanh", bias=True, seed=SEED)) > 1e-2  # power


def test_zil_with_random_feedback_is_direct_feedback_alignment_over_training(runs):
    """Z-IL with fixed random B stays within the rounding budget of direct FA (same B) over all 60 updates, while
    both are far from BP (so B is not θᵀ in disguise) and IL with the same B is far from FA (IL is not FA)."""
    zil, fa = runs[RANDOM], runs[FA_DIRECT]
    amp = twin_amplification(lambda net: DirectFA(ALPHA, Feedback(net, "fixed", seed=SEED)))
    assert amp <= 2
    budget = rounding_budget(zil, fa, amp)
    assert np.all(np.array(zil.fa_divergence) <= budget)
    assert all(torch.equal(zil.feedback.B[l], fa.feedback.B[l]) for l in zil.feedback.B)  # fixed, one draw
    assert zil.final_divergence > 1e-2 and runs[IL_RANDOM].fa_divergence[-1] > 1e6 * budget[-1]


def test_a_mismatched_copy_keeps_a_constant_offset(runs):
    """‖B − θᵀ‖ stays at its start to the summed rounding bounds of the updates so far plus the norm measurement
    (ρ ≤ (N + 2) eps relative each), while the weights move ≥ 1e8 times that."""
    run = runs[MISMATCHED]
    n = sum(b.numel() for b in run.feedback.B.values())
    off, rounding = np.array(run.offset_steps), np.concatenate([[0.0], np.cumsum(run.offset_rounding)])
    bound = rounding + (n + 2) * EPS * (off + off[0])
    assert np.all(np.abs(off - off[0]) <= bound)
    start = PCN(SIZES, "tanh", bias=True, seed=SEED)
    moved = sum(float((run.net.theta[l] - start.theta[l]).pow(2).sum()) for l in start.theta) ** 0.5
    assert moved >= 1e8 * bound[-1]


def test_kolen_pollack_rate_fitted_on_training_is_one_minus_lambda_to_rounding(runs):
    """`kp_rate` on the real run: every ratio within its τ of 1 − λ and the fitted rate within the derived
    tolerance; power: that tolerance is below 1e-6 λ, and a λ off by 0.1 % is rejected."""
    fit = kp_rate(runs[KOLEN_POLLACK], DECAY)
    assert fit.updates == 60 and fit.predicted == 1 - DECAY
    assert np.all(np.abs(fit.ratios - fit.predicted) <= fit.taus)
    assert fit.error <= fit.tolerance < 1e-6 * DECAY
    wrong = kp_rate(runs[KOLEN_POLLACK], DECAY * 1.001)
    assert wrong.error > wrong.tolerance
    assert runs[KOLEN_POLLACK].offset_steps[-1] < 0.1 * runs[KOLEN_POLLACK].offset_steps[0]


def test_noisy_updates_make_an_identical_copy_drift_as_predicted(runs):
    """From B = θᵀ each layer's ‖B^l − (θ^l)ᵀ‖² lies within 5 sd of the mean that its noise predicts
    (`NoisyCopy.expected_offset_sq`), the total too, and the offset grows: the copies drift."""
    run = runs[NOISY]
    off = offsets(run.net, run.feedback)
    for l in off:
        mean, sd = run.feedback.expected_offset_sq(l)
        assert abs(float(off[l].pow(2).sum()) - mean) <= 5 * sd
    mean, sd = run.feedback.expected_offset_sq()
    assert abs(run.offset_steps[-1] ** 2 - mean) <= 5 * sd and mean > 5 * sd  # power: the drift is resolved
    assert run.offset_steps[0] == 0.0 < run.offset_steps[10] < run.offset_steps[-1]


def test_noise_free_noisy_copy_is_the_copy_bit_for_bit():
    s_in, s_out = data("relu")
    r = train_feedback_runs(SIZES, (s_in[:96], s_out[:96]), epochs=1, batch_size=BATCH, alpha=ALPHA, seed=3,
                            runs=[IDENTICAL, NOISY], sigma=0.0, activation="relu")
    assert equal_params(r[NOISY].net, r[IDENTICAL].net) and r[NOISY].offset_steps == r[IDENTICAL].offset_steps
    twin = r[NOISY].feedback.clone()
    assert isinstance(twin, NoisyCopy) and twin.B[1] is not r[NOISY].feedback.B[1]


def test_bad_runs_and_fits_raise():
    s_in, s_out = data()
    with pytest.raises(ValueError, match="unknown run"):
        train_feedback_runs(SIZES, (s_in, s_out), runs=["Z-IL (mirror)"])
    with pytest.raises(ValueError, match="≥ 3 finite positive"):
        kp_rate([1.0, 0.9], 0.1)
    net, s, _ = random_problem((3, 6, 5), batch=2)
    with pytest.raises(ValueError, match="one sample"):
        relaxation_operator(net, None, s)
    with pytest.raises(TypeError, match="stores B"):
        DirectFA(0.1, Feedback(net, "transport"))


# --- the free equilibrium ------------------------------------------------------------------------------------

@pytest.fixture
def small():
    return random_problem((3, 6, 6, 5), "tanh", bias=True, batch=4, seed=3)


def test_free_equilibrium_with_transport_is_the_settling_curve_bit_for_bit(small):
    net, s_in, _ = small
    ref = settling_curve(net, s_in, 0.2, 300)
    assert np.array_equal(free_equilibrium(net, None, s_in, 0.2, 300), ref)
    assert np.array_equal(free_equilibrium(net, {l: t.T for l, t in net.theta.items()}, s_in, 0.2, 300), ref)
    assert np.array_equal(free_equilibrium(net, None, s_in, 0.2, 300, every=50), ref[::50])


@pytest.mark.parametrize("kind", ["random", "anti"])
def test_the_feedforward_pass_is_a_fixed_point_for_any_feedback(small, kind):
    """At x = y every ε is exactly 0, so the step leaves every node exactly where it is, whatever B."""
    net, s_in, _ = small
    B = random_feedback(net, 1) if kind == "random" else {l: -3 * t.T for l, t in net.theta.items()}
    curve = free_equilibrium(net, B, s_in, 0.3, 50, x0=net.feedforward(s_in))
    assert np.all(curve == 0.0)


def test_step_jacobian_is_autograds(small):
    """`I − γGJ` against autograd's Jacobian of `feedback_step` (one sample, random B), ≤ 1e-12 relative."""
    net, s_in, _ = small
    s, fb, gamma = s_in[:1], Feedback(net, "fixed", seed=4), 0.3
    y = net.feedforward(s)
    sizes = net.sizes[: net.l_max]

    def step(z):
        x, k = list(y), 0
        for l, n in enumerate(sizes):
            x[l] = z[k : k + n].reshape(1, n)
            k += n
        new = feedback_step(net, fb, x, errors(x, predictions(net, x)), gamma, clamp_output=False)
        return torch.cat([new[l].reshape(-1) for l in range(net.l_max)])

    z0 = torch.cat([y[l].reshape(-1) for l in range(net.l_max)])
    auto = torch.autograd.functional.jacobian(step, z0)
    mine = feedback_step_jacobian(net, fb, s, gamma)
    assert float((mine - auto).norm() / auto.norm()) <= 1e-12


def test_with_transport_the_radius_is_the_hessians_linear_rate(small):
    """B = θᵀ: GJ = JᵀJ, so the radius is `linear_rate(relaxation_spectrum)` and the γ limit is 2/λ_max,
    to the eigensolver's backward error (taken as 100·n·eps·λ_max)."""
    net, s_in, _ = small
    lo, hi = relaxation_spectrum(net, s_in)
    tol = 100 * sum(net.sizes[: net.l_max]) * EPS * hi
    for gamma in (0.1, 0.5, 1 / hi):
        assert abs(feedback_step_jacobian_radius(net, None, s_in, gamma) - linear_rate(lo, hi, gamma)) <= gamma * tol
    assert stable_gamma_limit(net, None, s_in) == pytest.approx(2 / hi, rel=tol / lo)
    assert np.abs(feedback_spectrum(net, None, s_in).imag).max() <= tol


@pytest.mark.parametrize("activation", ["tanh", "linear"])
def test_the_radius_predicts_whether_random_feedback_settles(activation):
    """Random B: below the γ limit (radius < 1) the free network settles to its feedforward pass, at the rate the
    radius predicts (log ratio within 5 %, the asymptotic-rate tolerance tests/test_autonomy.py uses); above it
    (radius > 1) it does not. With B = −θᵀ some Re μ < 0: no rate settles."""
    net, s_in, _ = random_problem((3, 6, 6, 5), activation, batch=4, seed=3)
    B = random_feedback(net, 0)
    limit = stable_gamma_limit(net, B, s_in)
    assert limit > 0
    gamma = 0.5 * limit
    rho = feedback_step_jacobian_radius(net, B, s_in, gamma)
    curve = free_equilibrium(net, B, s_in, gamma, 3000)
    assert rho < 1 and curve[-1] <= 1e-12
    assert math.log(decay_rate(curve)) / math.log(rho) == pytest.approx(1.0, rel=0.05)
    assert feedback_step_jacobian_radius(net, B, s_in, 1.1 * limit) > 1
    assert free_equilibrium(net, B, s_in, 1.1 * limit, 3000)[-1] > 1e-3
    anti = {l: -t.T for l, t in net.theta.items()}
    assert stable_gamma_limit(net, anti, s_in) == 0.0 and feedback_step_jacobian_radius(net, anti, s_in, 0.05) > 1
    assert free_equilibrium(net, anti, s_in, 0.05, 3000)[-1] > 1e-3


def test_b_scale_scales_the_one_random_draw():
    s_in, s_out = data()
    r = train_feedback_runs(SIZES, (s_in[:32], s_out[:32]), epochs=1, batch_size=BATCH, alpha=ALPHA, seed=SEED,
                            runs=[RANDOM, IL_RANDOM, FA_DIRECT], b_scale=0.5)
    ref = random_feedback(PCN(SIZES, "tanh", seed=SEED), SEED)
    for name in (RANDOM, IL_RANDOM, FA_DIRECT):
        assert all(torch.equal(r[name].feedback.B[l], 0.5 * ref[l]) for l in ref)
