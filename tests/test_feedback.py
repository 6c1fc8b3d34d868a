"""Feedback weights B^l in Z-IL and IL (pcbp.feedback), float64, each against an oracle.

Oracles: today's `ZIL`/`IL` (transport, bit for bit), `fa_updates` (feedback alignment written
directly, itself checked against autograd BP with B = θᵀ), autograd + SGD (BP), and the rounding
bounds derived in each test's docstring. eps = 2⁻⁵² below; for a normal float64 `x`, rounding
changes it by at most ½ulp(x) ≤ (eps/2)|x|.
"""

import math

import numpy as np
import pytest
import torch

from pcbp.data import batches, teacher_student
from pcbp.experiments import MODES, random_problem
from pcbp.feedback import Feedback, FeedbackIL, FeedbackZIL, fa_updates, offset_norm, offsets
from pcbp.metrics import divergence
from pcbp.network import PCN
from pcbp.rules import IL, ZIL, autograd_updates
from pcbp.rules.bp import AutogradSGD
from pcbp.updates import Trace

EPS = torch.finfo(torch.float64).eps
SIZES = (4, 16, 16, 8)
SQUARE = (5, 5, 5, 5, 5)  # equal neighbouring widths: using B^l where (B^l)ᵀ belongs raises no shape error


def stream(activation: str, steps: int, sizes=SIZES, batch_size: int = 16, seed: int = 1):
    """`steps` mini-batches of teacher-student data, epoch after epoch."""
    s_in, s_out = teacher_student(320, sizes, activation, seed=seed)
    out, epoch = [], 0
    while len(out) < steps:
        out.extend(batches(s_in, s_out, batch_size, seed=seed + epoch))
        epoch += 1
    return out[:steps]


def equal_updates(net, a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.tensors(net), b.tensors(net)))


def equal_params(a: PCN, b: PCN) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """`‖a − b‖/‖b‖`, or `‖a − b‖` where `b = 0` (a layer whose deltas are all 0)."""
    d, r = float((a - b).norm()), float(b.norm())
    return d / r if r > 0 else d


def worst_layer(net, got, ref) -> float:
    """The largest per-layer relative error over every weight and bias update."""
    return max(rel(g, r) for g, r in zip(got.tensors(net), ref.tensors(net)))


def offset_start(net: PCN, scale: float = 0.5, seed: int = 7) -> dict[int, torch.Tensor]:
    """`B^l = (θ^l)ᵀ + D^l`, `D` random of entries ~ N(0, scale²): a mismatched initial copy."""
    gen = torch.Generator().manual_seed(seed)
    return {l: t.T + scale * torch.randn(t.T.shape, generator=gen, dtype=t.dtype) for l, t in net.theta.items()}


# --- transport is today's rule, bit for bit ---------------------------------------------------------------

ZIL_OPTIONS = [{}, {"gamma": 0.6, "init_noise": 0.05, "seed": 3}, {"schedule": {0: 0, 1: (1, 2), 2: 3, 3: 3}}]


@pytest.mark.parametrize("options", ZIL_OPTIONS, ids=["C1-C3", "gamma+noise", "schedule"])
@pytest.mark.parametrize("activation, bias", [("tanh", False), ("relu", True)])
@pytest.mark.parametrize("apply", MODES)
def test_transport_is_zil_bit_for_bit(options, activation, bias, apply):
    """`feedback=None` and `"transport"` give ZIL's updates, weights and trace exactly (==) over 5
    presentations, also with C1–C3 broken (the loop is a copy of ZIL's; this guards it)."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), activation, bias=bias, batch=6, seed=11)
    ref, tr, none = net.clone(), net.clone(), net.clone()
    feedback = Feedback(tr, "transport")
    for _ in range(5):
        t_ref, t_tr = Trace(), Trace()
        u_ref = ZIL(0.1, **options)(ref, s_in, s_out, apply=apply, trace=t_ref)
        u_tr = FeedbackZIL(0.1, feedback=feedback, **options)(tr, s_in, s_out, apply=apply, trace=t_tr)
        u_none = FeedbackZIL(0.1, **options)(none, s_in, s_out, apply=apply)
        assert equal_updates(net, u_ref, u_tr) and equal_updates(net, u_ref, u_none)
        assert equal_params(ref, tr) and equal_params(ref, none)
        assert all(torch.equal(a, b) for xa, xb in zip(t_ref.x, t_tr.x) for a, b in zip(xa, xb))


@pytest.mark.parametrize("activation, bias", [("tanh", False), ("relu", True)])
@pytest.mark.parametrize("apply", MODES)
def test_transport_is_il_bit_for_bit(activation, bias, apply):
    """Same for IL (T = 8, γ = 0.2, a perturbed start), over 5 presentations."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), activation, bias=bias, batch=6, seed=12)
    ref, tr, none = net.clone(), net.clone(), net.clone()
    feedback = Feedback(tr, "transport")
    opts = {"gamma": 0.2, "T": 8, "init_noise": 0.02}
    for _ in range(5):
        u_ref = IL(0.1, **opts)(ref, s_in, s_out, apply=apply)
        u_tr = FeedbackIL(0.1, feedback=feedback, **opts)(tr, s_in, s_out, apply=apply)
        u_none = FeedbackIL(0.1, **opts)(none, s_in, s_out, apply=apply)
        assert equal_updates(net, u_ref, u_tr) and equal_updates(net, u_ref, u_none)
        assert equal_params(ref, tr) and equal_params(ref, none)


@pytest.mark.parametrize(
    "make", [lambda fb: FeedbackZIL(0.1, feedback=fb), lambda fb: FeedbackIL(0.1, T=6, feedback=fb)], ids=["Z-IL", "IL"]
)
@pytest.mark.parametrize("apply", MODES)
def test_fixed_feedback_equal_to_theta_transposed_is_transport_bit_for_bit(make, apply):
    """On a square network, `"fixed"` with `B^l = (θ^l)ᵀ` given gives transport's updates exactly:
    the stored B goes through the feedback product the right way round (B^l, not (B^l)ᵀ = θ^l would
    differ at O(1), see the next test) and in θ's layout (the same matmul, so the same rounding)."""
    net, s_in, s_out = random_problem(SQUARE, "tanh", batch=6, seed=5)
    a, b = net.clone(), net.clone()
    u_tr = make(Feedback(a, "transport"))(a, s_in, s_out, apply=apply)
    u_fix = make(Feedback(b, "fixed", B={l: t.T for l, t in net.theta.items()}))(b, s_in, s_out, apply=apply)
    assert equal_updates(net, u_tr, u_fix) and equal_params(a, b)


# --- the feedback-alignment oracle and Z-IL with fixed random B ---------------------------------------------

@pytest.mark.parametrize("activation, bias", [("tanh", False), ("relu", True), ("sigmoid", True)])
def test_fa_oracle_with_theta_transposed_is_autograd_bp(activation, bias):
    """`fa_updates` with `B^l = (θ^l)ᵀ` is BP: ≤ 1e-12 relative per layer against autograd."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), activation, bias=bias, batch=6, seed=13)
    fa = fa_updates(net, {l: t.T.clone() for l, t in net.theta.items()}, s_in, s_out, 0.1)
    assert worst_layer(net, fa, autograd_updates(net, s_in, s_out, 0.1)) <= 1e-12


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_fa_comparison_tells_b_from_its_transpose_and_from_bp(activation):
    """The next test has power: on the square network, FA with `(B^l)ᵀ` in place of `B^l`, and BP, both
    differ from FA with `B^l` by more than 10 % in the worst layer (against a tolerance of 1e-12)."""
    net, s_in, s_out = random_problem(SQUARE, activation, batch=6, seed=3)
    B = Feedback(net, "fixed", seed=2).B
    fa = fa_updates(net, B, s_in, s_out, 0.1)
    slip = fa_updates(net, {l: b.T for l, b in B.items()}, s_in, s_out, 0.1)
    assert worst_layer(net, slip, fa) > 0.1
    assert worst_layer(net, autograd_updates(net, s_in, s_out, 0.1), fa) > 0.1


@pytest.mark.parametrize("sizes, bias", [((4, 7, 6, 5, 3), False), (SQUARE, True)], ids=["tapered", "square"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("apply", MODES)
def test_zil_with_fixed_random_feedback_is_feedback_alignment(sizes, bias, activation, apply):
    """Under C1–C3 the error wave carries FA's deltas: each of 10 training updates (random mini-batches) of Z-IL
    with fixed random B equals `fa_updates` (computed on the network as it is before that update) to ≤ 1e-12
    relative, per layer.

    `apply=True`: the rule trains the network, and both its returned updates and the weights' actual change
    are compared. `apply=False`: its reported updates are compared, then applied by hand to move on.
    The weight-change comparison cannot resolve less than eps·‖θ + Δθ‖/‖Δθ‖ per layer; the test checks that
    this floor stays 4× below 1e-12 (≤ 2.5e-13), so 1e-12 is a fair bound.
    """
    net, _, _ = random_problem(sizes, activation, bias=bias, seed=4)
    feedback = Feedback(net, "fixed", seed=9)
    B0 = {l: b.clone() for l, b in feedback.B.items()}
    rule = FeedbackZIL(0.1, feedback=feedback)
    for k in range(10):
        _, s_in, s_out = random_problem(sizes, batch=8, seed=100 + k)  # a fresh random mini-batch
        before = net.clone()
        ref = fa_updates(net, feedback, s_in, s_out, 0.1)
        got = rule(net, s_in, s_out, apply=apply)
        assert worst_layer(net, got, ref) <= 1e-12
        if apply:
            change = [p1 - p0 for p1, p0 in zip(net.parameters(), before.parameters())]
            floors = [EPS * float(p.norm()) / float(d.norm()) for p, d in zip(net.parameters(), ref.tensors(net))
                      if d.norm() > 0]
            assert max(floors) <= 2.5e-13
            assert max(rel(c, r) for c, r in zip(change, ref.tensors(net))) <= 1e-12
        else:
            assert equal_params(net, before)
            got.apply(net)
    assert all(torch.equal(feedback.B[l], B0[l]) for l in B0)  # fixed: never learned


# --- learned copies ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_an_identical_copy_stays_identical_and_zil_stays_bp(activation):
    """`"copy"` from `B = θᵀ`: after each of 100 SGD updates `B^l == (θ^l)ᵀ` exactly, the network equals the
    transport-Z-IL twin exactly, and its divergence from an autograd + SGD twin is ≤ 1e-10 (the bound
    tests/test_zil.py holds Z-IL to over 200 updates)."""
    net = PCN(SIZES, activation, bias=True, seed=2)
    a, b, c = net.clone(), net.clone(), net.clone()
    feedback = Feedback(a, "copy")
    copy_rule, zil, bp = FeedbackZIL(0.05, feedback=feedback), ZIL(0.05), AutogradSGD(0.05)
    for s_in, s_out in stream(activation, 100):
        copy_rule(a, s_in, s_out)
        zil(b, s_in, s_out)
        bp(c, s_in, s_out)
        assert all(torch.equal(feedback.B[l], a.theta[l].T) for l in a.theta)
        assert equal_params(a, b)
        assert divergence(a, c) <= 1e-10
    assert divergence(a, net) > 1e-3  # it did learn


def test_an_identical_copy_stays_identical_under_il():
    """The same under IL (T = 5, γ = 0.2), 30 updates: B == θᵀ and the network equals the transport-IL twin."""
    net = PCN(SIZES, "tanh", seed=3)
    a, b = net.clone(), net.clone()
    feedback = Feedback(a, "copy")
    for s_in, s_out in stream("tanh", 30):
        FeedbackIL(0.05, gamma=0.2, T=5, feedback=feedback)(a, s_in, s_out)
        IL(0.05, gamma=0.2, T=5)(b, s_in, s_out)
        assert all(torch.equal(feedback.B[l], a.theta[l].T) for l in a.theta) and equal_params(a, b)


def test_kolen_pollack_keeps_an_identical_copy_identical():
    """Kolen–Pollack from `B = θᵀ`: θ and B take the same operations elementwise, so the offset stays 0 exactly."""
    net = PCN(SIZES, "tanh", seed=2)
    feedback = Feedback(net, "kolen-pollack", decay=0.05)
    rule = FeedbackZIL(0.05, feedback=feedback)
    for s_in, s_out in stream("tanh", 50):
        rule(net, s_in, s_out)
        assert offset_norm(net, feedback) == 0.0


def test_kolen_pollack_update_is_the_copy_update_plus_decay():
    """The weights' change under Kolen–Pollack is `Δθ − λθ`, `Δθ` the copy mode's (Hebbian) update, exactly."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", batch=6, seed=14)
    lam = 0.03
    copy = FeedbackZIL(0.1, feedback=Feedback(net, "copy"))(net, s_in, s_out, apply=False)
    kp = FeedbackZIL(0.1, feedback=Feedback(net, "kolen-pollack", decay=lam))(net, s_in, s_out, apply=False)
    assert all(torch.equal(kp.theta[l], copy.theta[l] - lam * net.theta[l]) for l in net.theta)


def learned_run(make_rule, mode: str, decay: float, steps: int, seed: int = 2):
    """Train from a mismatched copy `B = θᵀ + D`; after each update record the stored θ, B and the offset."""
    net = PCN(SIZES, "tanh", seed=seed)
    feedback = Feedback(net, mode, B=offset_start(net), decay=decay)
    rule = make_rule(feedback)
    start = (net.clone(), {l: b.clone() for l, b in feedback.B.items()}, offsets(net, feedback))
    record = []
    for s_in, s_out in stream("tanh", steps):
        rule(net, s_in, s_out)
        record.append((net.clone(), {l: b.clone() for l, b in feedback.B.items()}, offsets(net, feedback)))
    return start, record


RULES = {
    "Z-IL": lambda fb: FeedbackZIL(0.05, feedback=fb),
    "IL": lambda fb: FeedbackIL(0.05, gamma=0.2, T=5, feedback=fb),
}


@pytest.mark.parametrize("name, steps", [("Z-IL", 100), ("IL", 30)])
def test_a_mismatched_copy_keeps_its_offset(name, steps):
    """`"copy"` from `B = θᵀ + D`: `B − θᵀ` stays `D` to rounding, elementwise, after every update.

    Bound: each update rounds θ_ij + Δ_ij and B_ji + Δ_ij once each (the same Δ: ΔB = Δθᵀ), by at most
    (eps/2)(|θ_ij| + |B_ji|) after the step; measuring the offsets `fl(B − θᵀ)` and `D` adds
    (eps/2)(|off| + |D|). The sum over the updates so far bounds |off − D|. For the test to have power,
    the weights must move by far more than that bound (≥ 1e8 × it).
    """
    (net0, _, D), record = learned_run(RULES[name], "copy", 0.0, steps)
    drift = {l: torch.zeros_like(d) for l, d in D.items()}
    for net, B, off in record:
        for l in D:
            drift[l] += 0.5 * EPS * (net.theta[l].T.abs() + B[l].abs())
            bound = drift[l] + 0.5 * EPS * (off[l].abs() + D[l].abs())
            assert bool(((off[l] - D[l]).abs() <= bound).all())
    moved = max(float((net.theta[l] - net0.theta[l]).abs().max()) for l in D)
    assert moved >= 1e8 * max(float(d.max()) for d in drift.values())


def kp_tolerance(record, start, lam: float) -> tuple[list[float], list[float]]:
    """Per-update measured ratios r_k = ‖off_{k+1}‖/‖off_k‖ and their rounding tolerances τ_k.

    Exactly, off_{k+1} = (1 − λ) off_k + e_k with |e_k| ≤ 1.001 eps (|θ_k| + |θ_{k+1}| + |B_k| + |B_{k+1}|)
    elementwise (per copy: fl(λθ), fl(Δ − λθ), fl(θ + ·), each ≤ (eps/2)× a term bounded by |θ| + |θ'|).
    Measuring a norm ‖fl(B − θᵀ)‖ adds a relative error ρ ≤ (N + 2) eps (N entries). Hence
    |r_k − (1 − λ)| ≤ τ_k = 3ρ(1 − λ) + 1.01 ‖E_k‖/‖off_k‖.
    """
    states = [start] + record
    n = sum(d.numel() for d in start[2].values())
    rho = (n + 2) * EPS
    ratios, taus = [], []
    for (n0, b0, off0), (n1, b1, off1) in zip(states, states[1:]):
        e = sum(float((1.001 * EPS * (n0.theta[l].T.abs() + n1.theta[l].T.abs() + b0[l].abs() + b1[l].abs()))
                      .pow(2).sum()) for l in off0) ** 0.5
        norm0 = sum(float(d.pow(2).sum()) for d in off0.values()) ** 0.5
        norm1 = sum(float(d.pow(2).sum()) for d in off1.values()) ** 0.5
        ratios.append(norm1 / norm0)
        taus.append(3 * rho * (1 - lam) + 1.01 * e / norm0)
    return ratios, taus


@pytest.mark.parametrize("name, lam, steps", [("Z-IL", 0.01, 60), ("Z-IL", 0.1, 60), ("IL", 0.05, 30)])
def test_kolen_pollack_shrinks_the_offset_by_one_minus_lambda_per_update(name, lam, steps):
    """Kolen–Pollack from `B = θᵀ + D`: ‖B − θᵀ‖ falls geometrically, ratio 1 − λ per update.

    Every measured ratio r_k lies within τ_k of 1 − λ (`kp_tolerance`). The rate fitted by least squares
    to log‖B − θᵀ‖ against k is exp(slope); the slope is a weighted mean of the log r_k (positive weights,
    sum 1), so |slope − log(1 − λ)| ≤ max_k τ_k/(1 − λ − τ_k), plus 64 eps for the fit's own rounding.
    Power: that tolerance is below 1e-6 λ, so a rate off by a part in a million of λ would fail.
    """
    start, record = learned_run(RULES[name], "kolen-pollack", lam, steps)
    ratios, taus = kp_tolerance(record, start, lam)
    assert all(abs(r - (1 - lam)) <= t for r, t in zip(ratios, taus))
    norms = [sum(float(d.pow(2).sum()) for d in s[2].values()) ** 0.5 for s in [start] + record]
    slope = np.polyfit(np.arange(len(norms)), np.log(norms), 1)[0]
    tol = max(t / (1 - lam - t) for t in taus) + 64 * EPS
    assert tol < 1e-6 * lam
    assert abs(slope - math.log(1 - lam)) <= tol
    assert abs(math.exp(slope) - (1 - lam)) <= (1 - lam) * math.expm1(tol)


@pytest.mark.parametrize("mode", ["copy", "kolen-pollack"])
def test_reporting_only_leaves_b_and_theta_alone(mode):
    """`apply=False` changes neither the weights nor B (B learns when θ does)."""
    net, s_in, s_out = random_problem((3, 6, 5, 4, 7), "tanh", batch=6, seed=15)
    feedback = Feedback(net, mode, B=offset_start(net), decay=0.1 if mode == "kolen-pollack" else 0.0)
    before, B0 = net.clone(), {l: b.clone() for l, b in feedback.B.items()}
    FeedbackZIL(0.1, feedback=feedback)(net, s_in, s_out, apply=False)
    FeedbackIL(0.1, feedback=feedback)(net, s_in, s_out, apply=False)
    assert equal_params(net, before) and all(torch.equal(feedback.B[l], B0[l]) for l in B0)


def test_a_copy_is_a_copy_not_a_view_and_clone_is_independent():
    """`"copy"` does not alias θ; `Feedback.clone` gives new tensors with the same values and layout."""
    net = PCN((3, 6, 5), seed=0)
    feedback = Feedback(net, "copy")
    twin = feedback.clone()
    net.theta[1].add_(1.0)
    assert not torch.equal(feedback.B[1], net.theta[1].T)
    feedback.B[2].add_(1.0)
    assert not torch.equal(twin.B[2], feedback.B[2])
    assert twin.B[1].stride() == feedback.B[1].stride() == net.theta[1].T.stride()


# --- bad input -------------------------------------------------------------------------------------------------

def test_bad_input_raises_an_error_naming_the_fix():
    net, s_in, s_out = random_problem((3, 6, 5, 4), "tanh", batch=4, seed=0)
    as_theta = {l: t.clone() for l, t in net.theta.items()}  # θ^l's shape, not (θ^l)ᵀ's
    with pytest.raises(ValueError, match=r"expected \(6, 3\).*\(θ\^1\)ᵀ.*pass its transpose"):
        Feedback(net, "fixed", B=as_theta)
    with pytest.raises(ValueError, match=r"needs exactly l = 1 … 3"):
        Feedback(net, "copy", B={1: net.theta[1].T})
    with pytest.raises(TypeError, match=r"must be a mapping"):
        Feedback(net, "fixed", B=[t.T for t in net.theta.values()])
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        Feedback(net, "fixed", B={l: t.T * float("nan") for l, t in net.theta.items()})
    with pytest.raises(ValueError, match=r"unknown feedback mode 'mirror'.*'kolen-pollack'"):
        Feedback(net, "mirror")
    with pytest.raises(ValueError, match=r"0 ≤ λ < 1, got -0.1"):
        Feedback(net, "kolen-pollack", decay=-0.1)
    with pytest.raises(ValueError, match=r"0 ≤ λ < 1, got 1.0"):
        Feedback(net, "kp", decay=1.0)
    with pytest.raises(ValueError, match=r"Feedback\(net, 'kolen-pollack', decay=λ\)"):
        Feedback(net, "copy", decay=0.1)
    with pytest.raises(ValueError, match=r"drop B"):
        Feedback(net, "transport", B={l: t.T for l, t in net.theta.items()})
    with pytest.raises(TypeError, match=r"feedback=Feedback\(net, 'fixed'"):
        FeedbackZIL(0.1, feedback="fixed")
    other = Feedback(PCN((3, 6, 6, 4)), "fixed")
    with pytest.raises(ValueError, match=r"built for sizes \(3, 6, 6, 4\)"):
        FeedbackZIL(0.1, feedback=other)(net, s_in, s_out)
    with pytest.raises(ValueError, match=r"build the Feedback from the converted network"):
        FeedbackIL(0.1, feedback=Feedback(net, "fixed"))(net.to(torch.float32), s_in.float(), s_out.float())
    with pytest.raises(ValueError, match=r"expected \(6, 3\)"):
        fa_updates(net, as_theta, s_in, s_out, 0.1)
    assert Feedback(net, "KP", decay=0.1).mode == Feedback(net, "Kolen_Pollack").mode == "kolen-pollack"
