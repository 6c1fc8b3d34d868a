"""The reviewers' protocol: show the input alone, wait `k` steps, then clamp the output and learn.

The reviewers of Song et al. (2020) note that Z-IL and Fa-Z-IL are exact only "at least
asymptotically, given complete convergence at the initialization". This module measures the
"asymptotically": the free network relaxes from a start (rest, or the previous sample's final
state) for `k` steps at rate `γ_s` (`pcbp.pcn.settle`), then the output is clamped and a rule
runs from that state. Near the feedforward pass the settling is linear, so the start's distance
from C1 and with it the update's error fall geometrically, at the rate `ρ = max|1 − γ_s λ|`
of `pcbp.autonomy.linear_rate`, until rounding takes over.

* `divergence_vs_settling` / `early_output` / `early_output_table`: the update error against
  autograd BP as a function of `k`;
* `cost_per_sample`: inference steps (and matrix products) that Fa-Z-IL needs for a target error,
  settling included, beside IL's;
* `AutonomousFaZIL` / `train_autonomous`: Fa-Z-IL that settles each mini-batch from the previous
  one's final state, for training runs.

Fa-Z-IL's gate needs a threshold `τ` on "the error has left 0". Three choices (`tau=`):
`"following"` (default) takes FaZIL's rule `τ^l = 16 · r · max(1, max|μ^l|)` with `r` the start's
measured relative residual, floored at settle's default 64 ε (what `FaZIL(init="settle",
settle_tol=r)` uses): the most favourable reading, as it needs to know how far settling got;
`None` holds τ at FaZIL's default after a full settle (16 · 64 ε of the activity): what a network
that does not know gets; a float fixes τ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pcbp.autonomy import decay_rate, linear_rate, relaxation_spectrum
from pcbp.benchmark import count_matmuls
from pcbp.checks import check_non_negative, check_positive
from pcbp.compare import Comparison, compare_rules
from pcbp.experiments import random_problem
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.pcn import activity_scale, errors, inference_step, predictions, rest_state, settle_tolerance
from pcbp.rules import BP, IL, autograd_updates
from pcbp.rules.base import Rule
from pcbp.rules.fazil import FaZIL, driven_mask, gated_feedback, phi_gate
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

PROTOCOL_RULES = ("fazil", "zil")
TARGETS = (1e-1, 1e-2, 1e-4, 1e-8, 1e-12)  # divergences the cost table asks for


# --- the start state -------------------------------------------------------------------------

def relative_residual(net: PCN, x: list[Tensor]) -> float:
    """`max_l max|ε^l| / max(1, max|μ^l|)` of a free state: the `tol` at which `settle` would stop here."""
    mu = predictions(net, x)
    return max(float((x_l - m).abs().max()) / activity_scale(m) for x_l, m in zip(x, mu))


def settle_for(net: PCN, s_in: Tensor, gamma: float, k: int, x0: list[Tensor] | None = None) -> list[Tensor]:
    """The free network (input `s_in` clamped, output free) after exactly `k` steps at rate `γ`
    from `x0` (default: rest): `pcbp.pcn.settle`'s steps without its stopping test, which costs a
    device sync per layer and step (tests/test_protocol.py checks the two agree bit for bit)."""
    with torch.no_grad():
        x = rest_state(net, s_in) if x0 is None else list(x0)
        for _ in range(k):
            x = inference_step(net, x, errors(x, predictions(net, x)), gamma, clamp_output=False)
    return x


def carried_state(net: PCN, previous: list[Tensor] | None, s_in: Tensor) -> list[Tensor]:
    """The state a new mini-batch starts from: the previous final state with the new input clamped.

    The output is released (it will settle freely) and the input node takes `s_in`. Rows are
    paired by position (stream `i` of one batch continues stream `i` of the last); a batch larger
    than the last starts its extra rows from rest, a smaller one drops the last rows.
    """
    x = rest_state(net, s_in)
    if previous is None:
        return x
    n = min(previous[0].shape[0], s_in.shape[0])
    for l in range(net.l_max):
        x[l] = x[l].clone()
        x[l][:n] = previous[l][:n].to(dtype=s_in.dtype, device=s_in.device)
    return x


# --- the rules, started from a given state ---------------------------------------------------

def fazil_from(
    rule: FaZIL, net: PCN, x0: list[Tensor], s_out: Tensor, *, apply: bool, trace: Trace | None = None
) -> tuple[Updates, list[Tensor]]:
    """`FaZIL.run` from the free state `x0` instead of `rule.initial_state`; also the final state.

    The loop is `FaZIL.run`'s, line for line (tests/test_protocol.py checks it bit for bit against
    `FaZIL` from both of its starts): the gate's reference predictions and thresholds come from
    `rule.free_predictions` and `rule.thresholds` of `x0`, then the output is clamped and every
    weight learns through Φ at every step. Returns the updates and the state after the last step.
    """
    L = net.l_max
    with torch.no_grad():
        x = list(x0)
        mu_prev = rule.free_predictions(net, x)
        tau = rule.thresholds(mu_prev)
        x[0] = s_out
        armed = [torch.ones_like(m, dtype=torch.bool) for m in mu_prev]
        driven = [torch.ones_like(armed[0])] + [torch.zeros_like(a) for a in armed[1:]]
        updates = Updates()
        for _ in range(rule.steps or 2 * L):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            now, phi = Updates(), []
            for l in range(L):
                gated, armed[l] = phi_gate(eps[l], mu[l], mu_prev[l], armed[l], tau[l], rule.phi, driven[l])
                rule.learn(net, now, l, gated, x[l + 1])
                phi.append(gated)
            driven = [torch.zeros_like(armed[0])] + [
                driven_mask(x[l], gated_feedback(net, l, x[l], phi[l - 1])) for l in range(1, L)
            ]
            x = inference_step(net, x, eps, rule.gamma, clamp_output=True)
            rule.commit(net, now, updates, apply=apply)
            mu_prev = mu
    return updates, x


def zil_from(net: PCN, x0: list[Tensor], s_out: Tensor, alpha: float, *, gamma: float = 1.0) -> Updates:
    """Z-IL (C2: `θ^{l+1}` learns at `t = l`; C3 by default) from the free state `x0`, weights unchanged.

    `ZIL.run`'s loop with `x0` in place of the feedforward pass (tests/test_protocol.py checks it
    bit for bit against `ZIL` from the feedforward pass): a broken C1 of exactly the size settling left.
    """
    check_positive("alpha (the learning rate α)", alpha)
    learner = BP(alpha)  # only for its `learn`: the local Hebbian update of every rule
    with torch.no_grad():
        x = list(x0)
        x[0] = s_out
        updates = Updates()
        for t in range(net.l_max):
            eps = errors(x, predictions(net, x))
            learner.learn(net, updates, t, eps[t], x[t + 1])
            if t < net.l_max - 1:
                x = inference_step(net, x, eps, gamma, clamp_output=True)
    return updates


def following_tol(residual: float, dtype: torch.dtype) -> float:
    """The settling tolerance a start with this relative `residual` counts as: the residual, but
    never below `settle`'s default (64 ε): rounding alone leaves that much in every error node, and
    a γ = 1 wave grows it (`settled_floor`), so a gate set below it fires on rounding."""
    return max(residual, settle_tolerance(dtype))


def gate_rule(
    alpha: float, residual: float, tau: str | float | None, steps: int | None, dtype: torch.dtype = torch.float64
) -> FaZIL:
    """The FaZIL whose thresholds a start with this `residual` gets (see the module's note on `tau`)."""
    if tau == "following":
        return FaZIL(alpha, init="settle", settle_tol=following_tol(residual, dtype), steps=steps)
    if tau is None or isinstance(tau, (int, float)):
        return FaZIL(alpha, init="settle", tau=tau, steps=steps)
    raise ValueError(f"tau={tau!r}: use 'following', None (FaZIL's default after a settle) or a number ≥ 0")


def updates_from(
    rule: str, net: PCN, x0: list[Tensor], s_out: Tensor, alpha: float, *,
    tau: str | float | None = "following", steps: int | None = None,
) -> Updates:
    """One mini-batch's updates (weights unchanged) of `rule` (`"fazil"` or `"zil"`) from the free state `x0`."""
    if rule == "zil":
        return zil_from(net, x0, s_out, alpha)
    if rule == "fazil":
        with torch.no_grad():
            residual = relative_residual(net, x0)
        return fazil_from(gate_rule(alpha, residual, tau, steps, net.dtype), net, x0, s_out, apply=False)[0]
    raise ValueError(f"rule={rule!r}: use one of {', '.join(map(repr, PROTOCOL_RULES))}")


# --- (1) divergence against settling steps ---------------------------------------------------

def divergence_vs_settling(
    net: PCN, s_in: Tensor, s_out: Tensor, settle_gamma: float, step_grid: Iterable[int], *,
    rule: str = "fazil", alpha: float = 0.1, tau: str | float | None = "following", steps: int | None = None,
) -> np.ndarray:
    """Relative update error against autograd BP after `k` settling steps, for every `k` in `step_grid`.

    The free network relaxes from rest with the input alone at rate `settle_gamma` for `k` steps;
    then the output is clamped and `rule` runs from that state (`"fazil"`: Fa-Z-IL, its gate's `τ`
    set by `tau`, `steps` inference steps, default `2 l_max`; `"zil"`: Z-IL's clocked wave).
    `k = 0` is the rest start. The settle runs once, through the sorted grid; the result follows
    `step_grid`'s order. Expect the error to fall like `ρ^k`, `ρ = predicted_rate(...)`, to a floor.
    """
    grid = [int(k) for k in step_grid]
    if any(k < 0 for k in grid):
        raise ValueError(f"step_grid={grid}: every number of settling steps must be ≥ 0")
    check_positive("settle_gamma", settle_gamma)
    reference = autograd_updates(net, s_in, s_out, alpha)
    found: dict[int, float] = {}
    x, done = rest_state(net, s_in), 0
    for k in sorted(set(grid)):
        x = settle_for(net, s_in, settle_gamma, k - done, x)
        done = k
        found[k] = update_error(net, updates_from(rule, net, x, s_out, alpha, tau=tau, steps=steps), reference)
    return np.array([found[k] for k in grid])


def predicted_rate(net: PCN, s_in: Tensor, settle_gamma: float) -> float:
    """`ρ = max|1 − γ_s λ|` over the Hessian of `F` at the feedforward pass (worst sample of the batch)."""
    return linear_rate(*relaxation_spectrum(net, s_in), settle_gamma)


def fitted_rate(ks: Sequence[int], errs: Sequence[float], *, hi: float, lo: float) -> float:
    """Contraction per settling step of measured errors, between the first `k` below `hi` and the
    first below `lo` (`pcbp.autonomy.decay_rate` on an uneven grid)."""
    order = np.argsort(ks)
    return decay_rate(np.asarray(errs, dtype=float)[order], hi=hi, lo=lo, times=np.asarray(ks, dtype=float)[order])


def rate_tolerance(hi: float, lo: float, start_share: float, end_share: float = 0.0) -> float:
    """How far `log(fitted)/log(ρ)` may stray from 1 when the fit runs from `hi` down to `lo`.

    Near the fixed point the error is `a ρ^k (1 + η_k)`: `η_k` is the share of the faster modes
    (at most `start_share` where the fit starts) and of rounding (at most `end_share` where it
    ends). The fit's log-rate is then off by `[ln(1 + η_j) − ln(1 + η_i)] / (j − i)` while
    `(j − i) |ln ρ| ≈ ln(hi/lo)`; allowing a factor 2 for that approximation (the grid, and the
    same `η`s in the span), the relative error is at most
    `2 (|ln(1 − start_share)| + |ln(1 − end_share)|) / ln(hi/lo)`.
    """
    if not (0 <= start_share < 1 and 0 <= end_share < 1 and 0 < lo < hi):
        raise ValueError(f"need shares in [0, 1) and 0 < lo < hi, got {start_share}, {end_share}, {lo}, {hi}")
    return 2 * (abs(math.log(1 - start_share)) + abs(math.log(1 - end_share))) / math.log(hi / lo)


def relaxation_eigenvalues(net: PCN, s_in: Tensor) -> np.ndarray:
    """Every eigenvalue of the Hessian `JᵀJ` of `F` at the feedforward pass, output free, for all
    samples of the batch together (sorted): the full spectrum behind `relaxation_spectrum`'s extremes."""
    with torch.no_grad():
        y = net.feedforward(s_in)
        sizes = net.sizes[: net.l_max]
        off = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        out = []
        for b in range(s_in.shape[0]):
            J = torch.eye(off[-1], dtype=torch.float64)
            for l in range(net.l_max - 1):
                block = -net.theta[l + 1].double() * net.df(y[l + 1][b]).double()
                J[off[l] : off[l + 1], off[l + 1] : off[l + 2]] = block
            out.append(torch.linalg.eigvalsh(J.T @ J).numpy())
    return np.sort(np.concatenate(out))


def mode_rates(net: PCN, s_in: Tensor, settle_gamma: float) -> tuple[float, float]:
    """`(ρ, ρ₂)`: the slowest contraction per settling step `max|1 − γλ|` and the next slowest, over
    the whole spectrum (`relaxation_eigenvalues`). `(ρ₂/ρ)^k` is how fast the faster modes fade."""
    rates = np.sort(np.abs(1 - settle_gamma * relaxation_eigenvalues(net, s_in)))[::-1]
    return float(rates[0]), float(rates[1]) if len(rates) > 1 else 0.0


def same_linear_piece(net: PCN, x: list[Tensor], y: list[Tensor]) -> bool:
    """Whether every hidden node of `x` has the slope `f'` it has at `y`: for ReLU, the settling
    from `x` on is then exactly the linear map of the Hessian at `y` (no unit crosses its kink)."""
    return all(bool((net.df(x[l]) == net.df(y[l])).all()) for l in range(1, net.l_max))


# --- (2) the output presented early -----------------------------------------------------------

def default_gamma(net: PCN, s_in: Tensor) -> float:
    """`γ_s = 1/λ_max`: half the linear stability limit, the rate the Fa-Z-IL chapter settles at."""
    return 1.0 / relaxation_spectrum(net, s_in)[1]


def early_output(
    net: PCN, s_in: Tensor, s_out: Tensor, k: int, *, settle_gamma: float | None = None,
    rule: str = "fazil", alpha: float = 0.1, tau: str | float | None = "following",
) -> float:
    """The divergence from BP of one update when the output is presented after only `k` settling
    steps (from rest, rate `settle_gamma`, default `1/λ_max`): `divergence_vs_settling` at one `k`."""
    gamma = default_gamma(net, s_in) if settle_gamma is None else settle_gamma
    return float(divergence_vs_settling(net, s_in, s_out, gamma, [k], rule=rule, alpha=alpha, tau=tau)[0])


EARLY_KS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000)


def early_output_table(
    depths: Sequence[int] = (2, 4, 8), activations: Sequence[str] = ("tanh", "relu"),
    ks: Sequence[int] = EARLY_KS, *, rules: Sequence[str] = PROTOCOL_RULES, width: int = 16,
    n_in: int = 8, n_out: int = 4, batch: int = 8, seed: int = 0, settle_gamma: float | None = None,
    alpha: float = 0.1, tau: str | float | None = "following",
) -> list[dict[str, object]]:
    """A tidy table for the chapter: one row per (depth, activation, rule, k) with the divergence.

    Each (depth = `l_max`, activation) gets one `random_problem` with hidden layers `width` wide;
    the free network settles from rest at `settle_gamma` (default `1/λ_max` of that network).
    Columns: `depth, activation, rule, k, divergence`, and per network `settle_gamma`, the
    predicted `rate` ρ and `lam_min`, `lam_max` of the Hessian.
    """
    rows: list[dict[str, object]] = []
    for depth in depths:
        for act in activations:
            sizes = (n_out,) + (width,) * (depth - 1) + (n_in,)
            net, s_in, s_out = random_problem(sizes, act, batch=batch, seed=seed)
            lam_min, lam_max = relaxation_spectrum(net, s_in)
            gamma = 1.0 / lam_max if settle_gamma is None else settle_gamma
            rho = linear_rate(lam_min, lam_max, gamma)
            for rule in rules:
                errs = divergence_vs_settling(net, s_in, s_out, gamma, ks, rule=rule, alpha=alpha, tau=tau)
                rows += [{"depth": depth, "activation": act, "rule": rule, "k": int(k), "divergence": float(e),
                          "settle_gamma": gamma, "rate": rho, "lam_min": lam_min, "lam_max": lam_max}
                         for k, e in zip(ks, errs)]
    return rows


# --- (3) cost per sample ----------------------------------------------------------------------

def il_error_curve(
    net: PCN, s_in: Tensor, s_out: Tensor, *, alpha: float = 0.1, gamma: float = 0.1, T_max: int,
    start: str = "feedforward",
) -> tuple[np.ndarray, float]:
    """IL's relative update error against autograd BP for every `T = 0 … T_max` relaxation steps.

    One relaxation (input and output clamped, rate `γ`) with the IL update `α ε^l_T f(x^{l+1}_T)ᵀ`
    read off at every step: `curve[T]` is what `IL(alpha, gamma=gamma, T=T)` returns
    (tests/test_protocol.py checks it). `start="feedforward"` is `pcbp.IL`'s start (it assumes
    C1); `"rest"` shows input and output together to a network at rest, the protocol the reviewers
    call more plausible. Also returns the last step's relative change of the state (`‖Δx‖/‖x‖`),
    which says whether `T_max` reached IL's equilibrium.
    """
    if start not in ("feedforward", "rest"):
        raise ValueError(f"start={start!r}: use 'feedforward' or 'rest'")
    reference, learner = autograd_updates(net, s_in, s_out, alpha), BP(alpha)
    with torch.no_grad():
        x = net.feedforward(s_in) if start == "feedforward" else rest_state(net, s_in)
        x[0] = s_out
        out, change = [], math.inf
        for t in range(T_max + 1):
            eps = errors(x, predictions(net, x))
            now = Updates()
            for l in range(net.l_max):
                learner.learn(net, now, l, eps[l], x[l + 1])
            out.append(update_error(net, now, reference))
            if t < T_max:
                new = inference_step(net, x, eps, gamma, clamp_output=True)
                change = _state_change(x, new, net.l_max)
                x = new
    return np.array(out), change


def _state_change(x: list[Tensor], new: list[Tensor], L: int) -> float:
    """`‖new − x‖ / ‖x‖` over the hidden layers (0 with none)."""
    diff = sum(float((a - b).pow(2).sum()) for a, b in zip(new[1:L], x[1:L]))
    ref = sum(float(b.pow(2).sum()) for b in x[1:L])
    return math.sqrt(diff / ref) if ref > 0 else math.sqrt(diff)


def first_reaching(curve: np.ndarray, target: float, offset: int = 0) -> int | None:
    """The smallest index `i` with `curve[i] ≤ target`, plus `offset`; `None` if there is none."""
    hits = np.flatnonzero(curve <= target)
    return int(hits[0]) + offset if len(hits) else None


@dataclass(frozen=True)
class StepCosts:
    """Matrix products per mini-batch: `settle_step` per free settling step, `wave` for Fa-Z-IL's
    `wave_steps` learning steps and `zil_wave` for Z-IL's `l_max`, `il_step` per IL relaxation step plus
    `il_fixed`, and `bp` for BP."""

    settle_step: int
    wave: int
    zil_wave: int
    il_step: int
    il_fixed: int
    bp: int


def step_costs(net: PCN, s_in: Tensor, s_out: Tensor, wave_steps: int) -> StepCosts:
    """Count the matrix products (`pcbp.benchmark.count_matmuls`) of each phase on this mini-batch.

    A settling step is one `settle` step (predictions and feedback); the wave is `fazil_from` for
    `wave_steps` steps from the feedforward pass (its own products only); IL's per-step and fixed
    parts come from `pcbp.IL` at `T = 1` and `T = 2` (its feedforward start included in `il_fixed`).
    """
    rest, y = rest_state(net, s_in), net.feedforward(s_in)
    settle_mm = count_matmuls(lambda: settle_for(net, s_in, 0.1, 1, rest))
    wave = count_matmuls(lambda: fazil_from(FaZIL(0.1, steps=wave_steps), net, y, s_out, apply=False))
    il1, il2 = (count_matmuls(lambda T=T: IL(0.1, T=T)(net, s_in, s_out, apply=False)) for T in (1, 2))
    zil_wave = count_matmuls(lambda: zil_from(net, y, s_out, 0.1))
    bp = count_matmuls(lambda: BP(0.1)(net, s_in, s_out, apply=False))
    return StepCosts(settle_mm, wave, zil_wave, il2 - il1, 2 * il1 - il2, bp)


def cost_per_sample(
    net: PCN, s_in: Tensor, s_out: Tensor, targets: Sequence[float] = TARGETS, *,
    settle_gamma: float | None = None, max_k: int = 5000, il_gamma: float = 0.1, max_T: int = 2000,
    alpha: float = 0.1, tau: str | float | None = "following",
) -> list[dict[str, object]]:
    """Inference steps per sample that each protocol needs for its update to be within `d` of BP's.

    Fa-Z-IL: the smallest number `k ≤ max_k` of settling steps from rest (rate `settle_gamma`,
    default `1/λ_max`) after which its update is within relative error `d` of autograd BP, plus
    the `l_max` steps of the error wave (`FaZIL(steps=l_max)`); Z-IL likewise (its clocked wave
    needs no gate, so no threshold to clear); IL: the smallest `T ≤ max_T` of
    relaxation steps (rate `il_gamma`) from the feedforward pass (`pcbp.IL`'s start, which itself
    assumes C1) and from rest (input and output shown together). `None` where not reached: IL's
    error has a floor at its equilibrium, which is not BP. One row per `d`, with the totals in
    matrix products (`step_costs`) and, in every row, IL's best error over the scan and the state
    change at its last step (small: the scan reached IL's equilibrium).
    """
    L = net.l_max
    gamma = default_gamma(net, s_in) if settle_gamma is None else settle_gamma
    reference = autograd_updates(net, s_in, s_out, alpha)
    goal = min(targets)
    curves: dict[str, list[float]] = {"fazil": [], "zil": []}
    x = rest_state(net, s_in)
    for k in range(max_k + 1):
        if k:
            x = settle_for(net, s_in, gamma, 1, x)
        for rule, curve in curves.items():
            curve.append(update_error(net, updates_from(rule, net, x, s_out, alpha, tau=tau, steps=L), reference))
        if all(curve[-1] <= goal for curve in curves.values()):
            break
    fazil_curve, zil_curve = np.array(curves["fazil"]), np.array(curves["zil"])
    il_ff, change_ff = il_error_curve(net, s_in, s_out, alpha=alpha, gamma=il_gamma, T_max=max_T)
    il_rest, change_rest = il_error_curve(net, s_in, s_out, alpha=alpha, gamma=il_gamma, T_max=max_T, start="rest")
    costs = step_costs(net, s_in, s_out, L)
    rows = []
    for d in targets:
        k, k_zil = first_reaching(fazil_curve, d), first_reaching(zil_curve, d)
        T_ff, T_rest = first_reaching(il_ff, d), first_reaching(il_rest, d)
        rows.append({
            "target": d, "fazil_k": k, "fazil_steps": None if k is None else k + L,
            "fazil_matmuls": None if k is None else k * costs.settle_step + costs.wave,
            "zil_k": k_zil, "zil_steps": None if k_zil is None else k_zil + L,
            "zil_matmuls": None if k_zil is None else k_zil * costs.settle_step + costs.zil_wave,
            "il_T": T_ff, "il_matmuls": None if T_ff is None else T_ff * costs.il_step + costs.il_fixed,
            "il_rest_T": T_rest,
            "il_rest_matmuls": None if T_rest is None else T_rest * costs.il_step + costs.il_fixed,
            "il_best": float(il_ff.min()), "il_rest_best": float(il_rest.min()),
            "il_change": change_ff, "il_rest_change": change_rest, "bp_matmuls": costs.bp,
            "settle_gamma": gamma, "il_gamma": il_gamma, "l_max": L,
        })
    return rows


# --- (4) autonomous training: settle from the previous sample's final state ------------------

class AutonomousFaZIL(FaZIL):
    """Fa-Z-IL that never resets: each mini-batch settles from where the last one left the network.

    A presentation is: the new input is clamped and the output released; the free network relaxes
    for exactly `settle_steps` steps at rate `settle_gamma` from the previous presentation's final
    state (the very first from rest); then the output is clamped and Fa-Z-IL learns for `steps`
    steps (default `2 l_max`). Its final state is kept for the next call (`state`; `reset()`
    forgets it). Nothing is told how far settling got: with `tau=None` the gate's threshold is
    FaZIL's after a full settle (`TAU_FACTOR · settle_tolerance`, scaled by the activity), so a
    settle too short to reach that tolerance leaves residues that close gates before the wave
    arrives. `tau="following"` sets τ from the measured residual instead (an oracle reading);
    a number fixes τ. `residuals` records each start's relative residual (`relative_residual`).
    """

    name = "Fa-Z-IL (autonomous)"

    def __init__(
        self, alpha: float, *, settle_steps: int, settle_gamma: float = 0.1, gamma: float = 1.0,
        steps: int | None = None, settle_tol: float | None = None, tau: str | float | None = None,
        phi: str = "feedback",
    ) -> None:
        if isinstance(settle_steps, bool) or not isinstance(settle_steps, int) or settle_steps < 0:
            raise ValueError(f"settle_steps must be an integer ≥ 0 (steps with the input alone), got {settle_steps!r}")
        following = tau == "following"
        if not following and tau is not None:
            check_non_negative("tau", tau)  # type: ignore[arg-type]
        super().__init__(alpha, gamma=gamma, steps=steps, init="settle", settle_gamma=settle_gamma,
                         settle_steps=max(1, settle_steps), settle_tol=settle_tol,
                         phi=phi, tau=None if following else tau)  # type: ignore[arg-type]
        self.settle_steps = settle_steps  # exactly this many, not a cap
        self.following = following
        self._state: list[Tensor] | None = None
        self._residual: float | None = None
        self._residuals: list[float] = []

    @property
    def state(self) -> list[Tensor] | None:
        """The final state of the last presentation (what the next one settles from); `None` before the first."""
        return self._state

    @property
    def residuals(self) -> list[float]:
        """Each presentation's relative residual (`relative_residual`) when its output was clamped."""
        return list(self._residuals)

    def reset(self) -> None:
        """Forget the carried state: the next presentation starts from rest."""
        self._state = None

    def initial_state(self, net: PCN, s_in: Tensor) -> list[Tensor]:
        """The previous final state, input replaced, after `settle_steps` free steps."""
        return settle_for(net, s_in, self.settle_gamma, self.settle_steps, carried_state(net, self.state, s_in))

    def thresholds(self, mu_free: list[Tensor]) -> list[float]:
        """FaZIL's thresholds, or with `tau="following"` those of a settle to the measured residual."""
        if not self.following:
            return super().thresholds(mu_free)
        if self._residual is None:
            raise RuntimeError("tau='following' sets τ from the residual of a start: run a presentation first")
        tol = following_tol(self._residual, mu_free[0].dtype)
        return [self.TAU_FACTOR * tol * activity_scale(m) for m in mu_free]

    def run(self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None) -> Updates:
        x0 = self.initial_state(net, s_in)
        self._residual = relative_residual(net, x0)
        self._residuals.append(self._residual)
        updates, final = fazil_from(self, net, x0, s_out, apply=apply, trace=trace)
        self._state = [v.detach() for v in final]
        return updates


def autonomous_name(k: int) -> str:
    """The display name of the autonomous rule with `k` settling steps (the key `train_autonomous` uses)."""
    return f"Fa-Z-IL (autonomous, k = {k})"


def train_autonomous(
    sizes: Sequence[int], train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor, Tensor] | None = None, *,
    settle_steps: Sequence[int], alpha: float, settle_gamma: float = 0.1, tau: str | float | None = None,
    others: Mapping[str, Callable[[], Rule]] | None = None, **compare_options: object,
) -> Comparison:
    """Train `AutonomousFaZIL` for every `k` in `settle_steps` beside BP (and `others`), with `compare_rules`.

    The same seeded network, the same mini-batches in the same order, the same BP reference as
    every other comparison in the book (`pcbp.compare.compare_rules`; `compare_options` pass on:
    `activation`, `epochs`, `batch_size`, `seed`, `dtype`, `eval_every`, …), so its runs can stand
    beside Part II's. Runs are named `autonomous_name(k)`; each rule's carried state follows the
    batches in training order, across epochs.
    """
    rules: dict[str, Callable[[], Rule]] = {
        autonomous_name(k): (lambda k=k: AutonomousFaZIL(alpha, settle_steps=k, settle_gamma=settle_gamma, tau=tau))
        for k in settle_steps
    }
    rules.update(others or {})
    return compare_rules(rules, sizes, train, test, **compare_options)  # type: ignore[arg-type]
