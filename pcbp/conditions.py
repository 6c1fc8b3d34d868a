"""Breaking Z-IL's conditions C1–C3 one at a time: schedules, sweeps, a repair and an ordering.

Also the lemma layer by layer, with the rounding floor of each comparison.

`ZIL` already breaks each condition on request (`init_noise` for C1, `schedule` for C2, `gamma`
for C3). This module holds what the chapters need around it: the C2 schedules by name, the
C1 noise sweep with its log-log slope, the measured per-layer ratio `‖ε^l_l‖ / ‖δ^l‖` that the
`γ^l` law predicts, Z-IL with a per-layer rate `α/γ^l` (which undoes the law), and Z-IL with the
two updates of a step done in the wrong order (weights first). Two predictions from BP's own
quantities serve as oracles for broken rules: the update of a weight that learns one step late
(`late_update`), and BP with per-layer rates `αγ^l` (`GammaScaledBP`), which is what Z-IL with only
C3 broken is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pcbp.checks import check_positive
from pcbp.experiments import error_vs_autograd, error_wave
from pcbp.network import PCN
from pcbp.pcn import hebbian, hebbian_bias
from pcbp.rules import ZIL, Rule, autograd_updates, deltas
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor
Schedule = dict[int, tuple[int, ...]]


# --- the lemma, layer by layer ------------------------------------------------------------


def lemma_by_layer(net: PCN, s_in: Tensor, s_out: Tensor) -> tuple[float, np.ndarray, np.ndarray]:
    """The lemma under C1–C3, per layer: `max_{t<l} |ε^l_t|`, then for `l = 0 … l_max − 1` the
    relative error `‖ε^l_l − δ^l‖ / ‖δ^l‖` and the ratio `κ^l = ‖y^l‖ / ‖δ^l‖`.

    The PCN forms `ε^l_l` as `(y^l + δ^l) − y^l`, so its rounding is about `ε_mach · κ^l`
    relative to `δ^l`: a layer whose delta is much smaller than its activity (a vanishing
    gradient) cannot be compared more finely than that. Where `δ^l = 0` both are `nan`.
    """
    trace, delta = error_wave(net, s_in, s_out)
    before = max((float(trace.eps[t][l].abs().max()) for l in range(net.l_max) for t in range(l)), default=0.0)
    return (before, *_deviation_from_law(net, s_in, trace, delta, gamma=1.0))


def _deviation_from_law(
    net: PCN, s_in: Tensor, trace: Trace, delta: list[Tensor], *, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: `‖ε^l_l − γ^l δ^l‖ / ‖γ^l δ^l‖` and `κ^l = ‖y^l‖ / ‖γ^l δ^l‖`; `nan` where `δ^l = 0`."""
    y = net.feedforward(s_in)
    dev, kappa = np.full(net.l_max, np.nan), np.full(net.l_max, np.nan)
    for l in range(net.l_max):
        law = gamma**l * delta[l]
        norm = float(law.norm())
        if norm > 0:
            dev[l] = float((trace.eps[l][l] - law).norm()) / norm
            kappa[l] = float(y[l].norm()) / norm
    return dev, kappa


# --- C2: when each weight learns -------------------------------------------------------------


def on_time_schedule(l_max: int) -> Schedule:
    """C2 itself: `θ^{l+1}` learns at step `t = l` only."""
    return {l: (l,) for l in range(l_max)}


def early_schedule(l_max: int) -> Schedule:
    """`θ^{l+1}` learns at every step `t ≤ l`: C2 plus extra updates before the wave arrives."""
    return {l: tuple(range(l + 1)) for l in range(l_max)}


def late_schedule(l_max: int, layer: int, delay: int = 1) -> Schedule:
    """C2 for every layer but `layer`, whose weight `θ^{layer+1}` learns `delay` steps late."""
    if not 0 <= layer < l_max or delay < 1:
        raise ValueError(f"layer={layer}, delay={delay}: need 0 ≤ layer < l_max = {l_max} and delay ≥ 1")
    plan = on_time_schedule(l_max)
    plan[layer] = (layer + delay,)
    return plan


def at_end_schedule(l_max: int) -> Schedule:
    """Every weight learns once, at the last step `t = l_max − 1` of the iteration (as IL does)."""
    return {l: (l_max - 1,) for l in range(l_max)}


def persistent_schedule(l_max: int) -> Schedule:
    """`θ^{l+1}` learns at every step `t ≥ l` up to `l_max − 1`: plasticity left on after the wave."""
    return {l: tuple(range(l, l_max)) for l in range(l_max)}


def late_update(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float, layer: int, *, apply: bool = False) -> Updates:
    """The updates Z-IL should make when `θ^{layer+1}` alone learns one step late (`late_schedule`),
    predicted from BP's values `y` and deltas `δ` only: BP's update for every other weight, and for
    `θ^{layer+1}` the Hebbian rule with the error one step after the wave, `η^{layer} = ε^{layer}_{layer+1}`.

    With `x^k_k = y^k + δ^k` at the wave (`s_in` for the input), the recursion of eq. (cond-late) is
    `η^0 = s_out − μ^0(x^1_1)`, `η^k = y^k + f'(x^k_k) ⊙ (θ^k)ᵀ η^{k−1} − μ^k(x^{k+1}_{k+1})`, and the
    late update is `α η^{layer} f(x^{layer+1}_{layer+1})ᵀ`. With `apply=True` (updates applied during
    inference) the weights `θ^1 … θ^{layer}` have learned by the time they are used, so the recursion
    runs through them after BP's update; `θ^{layer+1}` itself has not.
    """
    if not 0 <= layer < net.l_max:
        raise ValueError(f"layer={layer}: need 0 ≤ layer < l_max = {net.l_max}")
    y = net.feedforward(s_in)
    delta = deltas(net, y, s_out)
    bp = Updates()
    for k in range(net.l_max):
        d_b = hebbian_bias(alpha, delta[k]) if net.has_bias else None
        bp.add(k + 1, hebbian(alpha, delta[k], net.f(y[k + 1])), d_b)
    w = net.clone()
    if apply:
        Updates({k: bp.theta[k] for k in range(1, layer + 1)}, {k: bp.b[k] for k in bp.b if k <= layer}).apply(w)
    wave = [s_out] + [y[k] + delta[k] for k in range(1, net.l_max)] + [s_in]  # x^k_k
    eta = s_out - w.predict(0, wave[1])
    for k in range(1, layer + 1):
        eta = y[k] + w.df(wave[k]) * (eta @ w.theta[k]) - w.predict(k, wave[k + 1])
    late = Updates(dict(bp.theta), dict(bp.b))
    late.theta[layer + 1] = hebbian(alpha, eta, net.f(wave[layer + 1]))
    if net.has_bias:
        late.b[layer + 1] = hebbian_bias(alpha, eta)
    return late


# --- C1: the hidden nodes start off the feedforward pass -----------------------------------


def noise_sweep(
    net: PCN, s_in: Tensor, s_out: Tensor, sigmas: Sequence[float], *, alpha: float = 0.1, seed: int = 0,
    apply: bool = False,
) -> np.ndarray:
    """Relative error of Z-IL's updates against autograd BP when every hidden node starts at
    `y^l + σ ξ` (`ξ ~ N(0, 1)`, the same `ξ` for every σ), for each σ in `sigmas`; `apply` as in
    `error_vs_autograd` (`True`: updates applied during inference, trained weights checked too)."""
    return np.array([
        error_vs_autograd(ZIL(alpha, init_noise=float(s), seed=seed), net, s_in, s_out, apply=apply) for s in sigmas
    ])


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of `log y` against `log x`: the exponent `p` in `y ∝ x^p`."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = x.shape == y.shape and x.size >= 2 and np.isfinite(x).all() and np.isfinite(y).all()
    if not ok or x.min() <= 0 or y.min() <= 0:
        raise ValueError("need at least two (x, y) points, all finite and > 0")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# --- C3: the inference rate γ --------------------------------------------------------------


def wave_ratios(net: PCN, s_in: Tensor, s_out: Tensor, *, gamma: float) -> np.ndarray:
    """Measured `‖ε^l_l‖ / ‖δ^l‖` for `l = 0 … l_max − 1` when Z-IL runs at rate `γ` (law: `γ^l`)."""
    trace, delta = error_wave(net, s_in, s_out, gamma)
    return np.array([float(trace.eps[l][l].norm() / delta[l].norm()) for l in range(net.l_max)])


def gamma_law_by_layer(net: PCN, s_in: Tensor, s_out: Tensor, *, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """With only C3 broken, per layer `l = 0 … l_max − 1`: the deviation from the law,
    `‖ε^l_l − γ^l δ^l‖ / ‖γ^l δ^l‖`, and the rounding ratio `κ^l_γ = ‖y^l‖ / ‖γ^l δ^l‖`
    (the deviation cannot be resolved below about `ε_mach · κ^l_γ`). `nan` where `δ^l = 0`."""
    trace, delta = error_wave(net, s_in, s_out, gamma)
    return _deviation_from_law(net, s_in, trace, delta, gamma=gamma)


def gamma_scaled(updates: Updates, gamma: float) -> Updates:
    """The updates the `γ^l` law predicts from BP's: `θ^{l+1}` and `b^{l+1}` scaled by `γ^l`."""
    return Updates(
        theta={k: gamma ** (k - 1) * d for k, d in updates.theta.items()},
        b={k: gamma ** (k - 1) * d for k, d in updates.b.items()},
    )


class GammaScaledBP(Rule):
    """BP (by `torch.autograd`) in which `θ^{l+1}` learns with rate `α γ^l`: by the `γ^l` law, what
    Z-IL with only C3 broken computes, so over a training run it predicts that rule's trajectory."""

    name = "BP (rate αγ^l)"

    def __init__(self, alpha: float, *, gamma: float) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        with torch.enable_grad():  # a rule runs under no_grad; autograd needs its graph
            bp = autograd_updates(net, s_in, s_out, self.alpha)
        total = Updates()
        self.commit(net, gamma_scaled(bp, self.gamma), total, apply=apply)
        return total


class PerLayerRateZIL(ZIL):
    """Z-IL at inference rate `γ ≠ 1` whose weight `θ^{l+1}` learns with its own rate `α / γ^l`.

    With only C3 broken, `ε^l_l = γ^l δ^l`, so this rate gives back BP's update exactly. The rate
    is a fixed property of each synapse, so the rule stays local. (Not in the paper.)
    """

    name = "Z-IL (rate α/γ^l)"

    def learn(self, net: PCN, updates: Updates, l: int, eps_post: Tensor, x_pre: Tensor) -> None:
        rate = self.alpha / self.gamma**l
        d_b = hebbian_bias(rate, eps_post) if net.has_bias else None
        updates.add(l + 1, hebbian(rate, eps_post, net.f(x_pre)), d_b)


# --- the ordering inside one step ----------------------------------------------------------


class WeightsFirstZIL(ZIL):
    """Z-IL with the two updates of a step in the wrong order: at step `t` the weight update is
    applied first, and the value nodes then move with the *new* weights, so the feedback into
    layer `t + 1` runs through `θ^{t+1} + Δθ^{t+1}` instead of `θ^{t+1}`.

    `ZIL` computes both updates of step `t` from the state at its start, which is what the
    theorem needs. With `apply=False` this rule works on a copy, and `net` is left unchanged.
    """

    name = "Z-IL (weights first)"
    weights_first = True

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        return super().run(net if apply else net.clone(), s_in, s_out, apply=True, trace=trace)
