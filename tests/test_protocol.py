"""pcbp.protocol: the input alone for k steps, then the output; how exact Z-IL and Fa-Z-IL are then."""

import math

import numpy as np
import pytest
import torch

from pcbp.autonomy import relaxation_spectrum, settled_floor
from pcbp.data import teacher_student
from pcbp.experiments import random_problem, rounding_floor
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.pcn import rest_state, settle, settle_tolerance
from pcbp.protocol import (
    AutonomousFaZIL,
    autonomous_name,
    carried_state,
    cost_per_sample,
    default_gamma,
    divergence_vs_settling,
    early_output,
    early_output_table,
    fazil_from,
    fitted_rate,
    gate_rule,
    il_error_curve,
    mode_rates,
    predicted_rate,
    rate_tolerance,
    relative_residual,
    relaxation_eigenvalues,
    same_linear_piece,
    settle_for,
    step_costs,
    train_autonomous,
    updates_from,
    zil_from,
)
from pcbp.rules import IL, ZIL, FaZIL, autograd_updates

EXACT64 = 1e-12  # the package's float64 exactness bound (~4500 ε), as in tests/test_fazil.py
A_MAX = 10.0  # assumed: at k = 0 the faster modes hold at most 10 times the slowest mode's share of the error


def share(net, updates, layers):
    """`‖Δθ^l for l in layers‖ / ‖Δθ‖`: the part of an update held by some weights."""
    parts = updates.tensors(net)
    total = sum(float(t.pow(2).sum()) for t in parts)
    return math.sqrt(sum(float(parts[l - 1].pow(2).sum()) for l in layers) / total)


def same_updates(net, a, b):
    return all(torch.equal(x, y) for x, y in zip(a.tensors(net), b.tensors(net)))


# --- the start-state injection is the rules' own loop ---------------------------------------

@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("init", ["feedforward", "settle"])
@pytest.mark.parametrize("apply", [False, True])
def test_fazil_from_is_fazil_bit_for_bit(act, init, apply):
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), act, bias=act == "relu", batch=6, seed=11)
    rule = FaZIL(0.1, init=init, settle_gamma=0.2)
    a_net, b_net = net.clone(), net.clone()
    a = rule(a_net, s_in, s_out, apply=apply)
    b, _ = fazil_from(rule, b_net, rule.initial_state(net, s_in), s_out, apply=apply)
    assert same_updates(net, a, b)
    assert all(torch.equal(p, q) for p, q in zip(a_net.parameters(), b_net.parameters()))


def test_zil_from_the_feedforward_pass_is_zil_bit_for_bit(problem):
    net, s_in, s_out = problem
    assert same_updates(net, ZIL(0.1)(net, s_in, s_out, apply=False), zil_from(net, net.feedforward(s_in), s_out, 0.1))


def test_settle_for_runs_exactly_k_steps_in_any_chunks(problem):
    net, s_in, _ = problem
    whole = settle_for(net, s_in, 0.1, 30)
    parts = settle_for(net, s_in, 0.1, 17, settle_for(net, s_in, 0.1, 13))
    assert all(torch.equal(a, b) for a, b in zip(whole, parts))
    assert all(torch.equal(a, b) for a, b in zip(whole, settle(net, s_in, gamma=0.1, max_steps=30, tol=0.0)[0]))
    assert all(torch.equal(a, b) for a, b in zip(settle_for(net, s_in, 0.1, 0), rest_state(net, s_in)))


def test_relative_residual_is_zero_at_the_feedforward_pass_and_what_settle_stops_at(problem):
    net, s_in, _ = problem
    assert relative_residual(net, net.feedforward(s_in)) == 0.0
    x = settle_for(net, s_in, 0.1, 40)
    r = relative_residual(net, x)
    assert r > 0
    # settle with that tolerance stops at once; with a slightly smaller one it takes a step
    assert settle(net, s_in, gamma=0.1, max_steps=5, tol=r, x0=x)[1] == 0
    assert settle(net, s_in, gamma=0.1, max_steps=5, tol=0.999 * r, x0=x)[1] == 1


def test_the_full_spectrum_has_relaxation_spectrums_extremes(problem):
    net, s_in, _ = problem
    ev, (lo, hi) = relaxation_eigenvalues(net, s_in), relaxation_spectrum(net, s_in)
    assert len(ev) == s_in.shape[0] * sum(net.sizes[: net.l_max])
    assert math.isclose(ev[0], lo, rel_tol=1e-12) and math.isclose(ev[-1], hi, rel_tol=1e-12)
    rho, rho2 = mode_rates(net, s_in, 0.1)
    assert rho == pytest.approx(predicted_rate(net, s_in, 0.1), rel=1e-12) and rho2 <= rho


# --- (1) divergence against settling steps --------------------------------------------------

@pytest.mark.parametrize("rule", ["fazil", "zil"])
def test_a_rest_start_is_wrong_by_at_least_the_output_weights_share(rule):
    """From rest every hidden node is 0 and f(0) = 0, so θ¹ learns `α ε⁰ f(x¹)ᵀ = 0`: the error is at
    least the share of BP's update held by θ¹ (derived), and O(1)."""
    for act in ("tanh", "relu"):
        net, s_in, s_out = random_problem((4, 8, 8, 6), act, batch=4, seed=1)
        err = divergence_vs_settling(net, s_in, s_out, 0.1, [0], rule=rule)[0]
        assert err >= share(net, autograd_updates(net, s_in, s_out, 0.1), [1]) * (1 - 1e-12)
        assert err >= 0.1


@pytest.mark.parametrize("act", ["tanh", "relu"])
@pytest.mark.parametrize("rule", ["fazil", "zil"])
def test_error_decays_at_the_predicted_linear_rate_down_to_rounding(act, rule):
    """One sample, so the rate of the slowest mode is that of the batch; the fit runs from 1e-4 to
    1e3 times the rounding floor; the tolerance follows from the faster modes' share where it starts
    (A_MAX (ρ₂/ρ)^k) and rounding's where it ends (the measured floor / lo): `rate_tolerance`."""
    net, s_in, s_out = random_problem((3, 6, 6, 5), act, batch=1, seed=0)
    gamma = default_gamma(net, s_in)
    rho, rho2 = mode_rates(net, s_in, gamma)
    ks = list(range(0, 1500, 5))
    errs = divergence_vs_settling(net, s_in, s_out, gamma, ks, rule=rule)
    floor, hi = float(errs[-20:].max()), 1e-4
    assert floor <= EXACT64  # the end: rounding
    lo = 1e3 * rounding_floor(net, s_in, s_out)
    k_start = ks[int(np.argmax(errs <= hi))]
    start_share, end_share = A_MAX * (rho2 / rho) ** k_start, floor / lo
    assert start_share < 0.5 and end_share < 0.5  # the fit sees the slowest mode, above rounding
    if act == "relu":  # the linearisation is exact once no unit is on the other side of its kink
        y = net.feedforward(s_in)
        assert same_linear_piece(net, settle_for(net, s_in, gamma, k_start), y)
    fit = fitted_rate(ks, errs, hi=hi, lo=lo)
    assert abs(math.log(fit) / math.log(rho) - 1) <= rate_tolerance(hi, lo, start_share, end_share)
    assert errs[0] >= 0.1  # the rest start: O(1)


def test_fazil_and_zil_agree_once_the_gate_is_cleared(problem):
    net, s_in, s_out = problem
    gamma = default_gamma(net, s_in)
    ks = [800, 1600]
    fa, z = (divergence_vs_settling(net, s_in, s_out, gamma, ks, rule=r) for r in ("fazil", "zil"))
    assert np.all(fa <= 1e-3) and np.allclose(fa, z, rtol=1e-6, atol=EXACT64)


def test_a_held_threshold_is_a_cliff():
    """With τ held at a full settle's value, a start whose every hidden error exceeds τ closes all
    hidden gates at t = 0 (they depart undriven): only θ¹ learns, so the error is at least the share
    of BP's update in θ² … θ^{l_max} (derived); with τ following the residual it is far smaller."""
    net, s_in, s_out = random_problem((4, 8, 8, 6), "tanh", batch=4, seed=1)
    gamma, k = default_gamma(net, s_in), 400
    x = settle_for(net, s_in, gamma, k)
    rule = gate_rule(0.1, relative_residual(net, x), None, None)
    mu = rule.free_predictions(net, x)
    tau = rule.thresholds(mu)
    assert all(bool(((x[l] - mu[l]).abs() > tau[l]).all()) for l in range(1, net.l_max))  # the premise
    held, following = (divergence_vs_settling(net, s_in, s_out, gamma, [k], tau=t)[0] for t in (None, "following"))
    bound = share(net, autograd_updates(net, s_in, s_out, 0.1), range(2, net.l_max + 1))
    assert held >= bound * (1 - 1e-12) and following <= 1e-3 * held


def test_a_following_threshold_is_floored_at_settles_tolerance():
    """Settled below 64 ε, a threshold 16 r set from the residual r itself sits at rounding level, and
    on this deep batch (8 layers, 8 samples) some gate trips on rounding before the wave arrives
    (`FaZIL(tau=16 r)`, the premise). Floored at 64 ε, the error is within the settled floor."""
    net, s_in, s_out = random_problem((4,) + (8,) * 7 + (8,), "relu", batch=8, seed=0)
    tol = settle_tolerance(torch.float64)
    x, n = settle(net, s_in, gamma=default_gamma(net, s_in), max_steps=20_000, tol=tol / 8)
    r = relative_residual(net, x)
    assert n < 20_000 and r < tol
    reference = autograd_updates(net, s_in, s_out, 0.1)
    unfloored = fazil_from(FaZIL(0.1, init="settle", tau=FaZIL.TAU_FACTOR * r), net, x, s_out, apply=False)[0]
    assert update_error(net, unfloored, reference) > 1e-3  # the premise: the hazard is real here
    floored = update_error(net, updates_from("fazil", net, x, s_out, 0.1), reference)
    assert floored <= max(EXACT64, settled_floor(net, s_in, s_out, tol))


def test_divergence_keeps_the_grid_order_and_checks_its_arguments(problem):
    net, s_in, s_out = problem
    a = divergence_vs_settling(net, s_in, s_out, 0.1, [50, 0, 10, 50], rule="zil")
    b = divergence_vs_settling(net, s_in, s_out, 0.1, [0, 10, 50], rule="zil")
    assert a.tolist() == [b[2], b[0], b[1], b[2]]
    with pytest.raises(ValueError, match="rule"):
        divergence_vs_settling(net, s_in, s_out, 0.1, [1], rule="il")
    with pytest.raises(ValueError, match="≥ 0"):
        divergence_vs_settling(net, s_in, s_out, 0.1, [-1])
    with pytest.raises(ValueError, match="tau"):
        divergence_vs_settling(net, s_in, s_out, 0.1, [1], tau="sometimes")


def test_rate_tolerance():
    assert rate_tolerance(1e-4, 1e-10, 0.0) == 0.0
    assert rate_tolerance(1e-4, 1e-13, 0.5, 0.5) == pytest.approx(4 * math.log(2) / math.log(1e9))
    with pytest.raises(ValueError):
        rate_tolerance(1e-10, 1e-4, 0.1)


# --- (2) the output presented early ----------------------------------------------------------

def test_early_output_is_one_point_of_the_curve(problem):
    net, s_in, s_out = problem
    gamma = default_gamma(net, s_in)
    assert early_output(net, s_in, s_out, 200) == divergence_vs_settling(net, s_in, s_out, gamma, [200])[0]


def test_early_output_table_is_tidy_and_falls_with_k():
    ks = (0, 50, 1000)
    rows = early_output_table((2, 3), ("tanh", "relu"), ks, width=6, n_in=4, n_out=3, batch=2)
    assert len(rows) == 2 * 2 * 2 * len(ks)
    assert {"depth", "activation", "rule", "k", "divergence", "rate"} <= set(rows[0])
    for depth in (2, 3):
        for act in ("tanh", "relu"):
            for rule in ("fazil", "zil"):
                key = (depth, act, rule)
                curve = [r["divergence"] for r in rows if (r["depth"], r["activation"], r["rule"]) == key]
                rho = next(r["rate"] for r in rows if (r["depth"], r["activation"]) == (depth, act))
                assert curve[0] >= 0.1 and curve[-1] <= max(EXACT64, 1e3 * rho**1000)


# --- (3) cost per sample ---------------------------------------------------------------------

def test_il_error_curve_is_il_at_every_T(problem):
    net, s_in, s_out = problem
    curve, _ = il_error_curve(net, s_in, s_out, T_max=30)
    reference = autograd_updates(net, s_in, s_out, 0.1)
    for T in (1, 7, 30):
        assert curve[T] == pytest.approx(update_error(net, IL(0.1, T=T)(net, s_in, s_out, apply=False), reference),
                                         rel=1e-10)
    # T = 0 from the feedforward pass: only the output error is nonzero, ε⁰ = δ⁰, so only θ¹ learns, exactly
    assert curve[0] == pytest.approx(share(net, reference, range(2, net.l_max + 1)), rel=1e-12)


def test_matmul_counts_per_step_are_the_derived_ones(problem):
    net, s_in, s_out = problem
    L = net.l_max
    costs = step_costs(net, s_in, s_out, L)
    assert costs.settle_step == 2 * L - 1  # L predictions, L − 1 feedbacks
    assert costs.il_step == 2 * (L - 1)  # the clamped input's prediction is kept
    assert costs.bp == 3 * L - 1  # forward, deltas, one outer product per weight
    assert costs.zil_wave == L * L + L + (L - 1) ** 2  # L steps: predictions; 1 update each; L − 1 relaxations


def test_cost_table_is_consistent_with_the_curves():
    net, s_in, s_out = random_problem((3, 6, 6, 5), "tanh", batch=2, seed=0)
    targets = (0.5, 1e-2, 1e-6)
    rows = cost_per_sample(net, s_in, s_out, targets, max_k=1500, max_T=200)
    L, gamma = net.l_max, default_gamma(net, s_in)
    il, _ = il_error_curve(net, s_in, s_out, T_max=200)
    for row, d in zip(rows, targets):
        k = row["fazil_k"]
        assert k is not None and row["fazil_steps"] == k + L
        at = divergence_vs_settling(net, s_in, s_out, gamma, [max(k - 1, 0), k], steps=L)
        assert at[1] <= d and (k == 0 or at[0] > d)
        assert row["zil_k"] is not None and row["zil_k"] <= 1500
        assert (row["il_T"] is None) == (il.min() > d)
        if row["il_T"] is not None:
            assert il[row["il_T"]] <= d and np.all(il[: row["il_T"]] > d)
    assert rows[-1]["il_T"] is None and rows[-1]["il_best"] > 1e-6  # IL's equilibrium is not BP: a floor


# --- (4) autonomous training -----------------------------------------------------------------

def test_carried_state_takes_the_new_input_and_pads_with_rest(problem):
    net, s_in, _ = problem
    prev = [v + 1.0 for v in rest_state(net, s_in)]
    more = torch.cat([s_in, s_in[:2]])
    x = carried_state(net, prev, more)
    assert torch.equal(x[net.l_max], more)
    for l in range(net.l_max):
        assert torch.equal(x[l][: len(s_in)], prev[l]) and bool((x[l][len(s_in):] == 0).all())
    fewer = carried_state(net, prev, s_in[:3])
    assert all(torch.equal(fewer[l], prev[l][:3]) for l in range(net.l_max))
    assert all(torch.equal(a, b) for a, b in zip(carried_state(net, None, s_in), rest_state(net, s_in)))


def test_autonomous_fazil_starts_from_rest_then_from_its_last_final_state(problem):
    net, s_in, s_out = problem
    rule = AutonomousFaZIL(0.1, settle_steps=25, settle_gamma=0.1)
    twin = net.clone()
    first = rule(net, s_in, s_out, apply=False)
    x0 = settle_for(twin, s_in, 0.1, 25)
    expected, final = fazil_from(gate_rule(0.1, relative_residual(twin, x0), None, None), twin, x0, s_out, apply=False)
    assert same_updates(net, first, expected)
    assert all(torch.equal(a, b) for a, b in zip(rule.state, final))
    second = rule(net, s_in.flip(0), s_out.flip(0), apply=False)
    x1 = settle_for(twin, s_in.flip(0), 0.1, 25, carried_state(twin, final, s_in.flip(0)))
    expected, _ = fazil_from(gate_rule(0.1, relative_residual(twin, x1), None, None), twin, x1, s_out.flip(0),
                             apply=False)
    assert same_updates(net, second, expected)
    assert len(rule.residuals) == 2
    rule.reset()
    assert rule.state is None
    with pytest.raises(ValueError, match="settle_steps"):
        AutonomousFaZIL(0.1, settle_steps=-1)


def test_autonomous_training_tracks_bp_with_enough_settling_and_not_with_too_little():
    """`enough` is 1.25 times the steps a unit residual needs to shrink to settle's tolerance at the
    predicted rate (`ln(64 ε)/ln ρ`, ρ over every training sample: room for a start residual up to
    `(64 ε)^-0.25 ≈ 3000`); then every start is settled and the run is exact to rounding. A tenth of
    that leaves residues above τ."""
    sizes = (3, 6, 6, 5)
    s_in, s_out = teacher_student(16, sizes, seed=1)
    net = PCN(sizes, seed=2)
    _, hi = relaxation_spectrum(net, s_in)
    gamma = 1 / hi
    tol = settle_tolerance(torch.float64)
    enough = math.ceil(1.25 * math.log(tol) / math.log(predicted_rate(net, s_in, gamma)))
    few = enough // 10
    comp = train_autonomous(sizes, (s_in, s_out), settle_steps=(few, enough), alpha=0.05, settle_gamma=gamma,
                            batch_size=4, seed=2)
    good, bad = comp[autonomous_name(enough)], comp[autonomous_name(few)]
    assert max(good.divergence) <= EXACT64
    assert bad.final_divergence >= 1e3 * max(EXACT64, good.final_divergence)


def test_autonomous_residuals_are_settled_with_enough_steps():
    sizes = (3, 6, 6, 5)
    s_in, s_out = teacher_student(8, sizes, seed=1)
    net = PCN(sizes, seed=2)
    gamma = default_gamma(net, s_in)
    enough = math.ceil(1.25 * math.log(settle_tolerance(torch.float64)) / math.log(predicted_rate(net, s_in, gamma)))
    rule = AutonomousFaZIL(0.05, settle_steps=enough, settle_gamma=gamma)
    for i in range(0, 8, 4):
        rule(net, s_in[i : i + 4], s_out[i : i + 4])
    assert max(rule.residuals) <= settle_tolerance(torch.float64)
    following = AutonomousFaZIL(0.05, settle_steps=5, tau="following")
    with pytest.raises(RuntimeError, match="following"):
        following.thresholds([s_out])
