"""Autonomy: how a free network reaches C1 by itself, and when each error node of Fa-Z-IL fires.

Two halves of the Fa-Z-IL protocol, measured rather than assumed:

* **settling** — with the input alone shown, gradient descent on `F` relaxes the free network to
  its feedforward pass (`settling_curve`, `steps_to_settle`); near that pass the relaxation is
  linear, governed by the extreme eigenvalues of the Hessian of `F` (`relaxation_spectrum`,
  `linear_rate`), which set both the largest stable rate and the number of steps;
* **firing** — once the output is clamped, which error node passes its error through `Φ`, at
  which step, and with which value (`firing_record`, replaying `phi_gate` on a `Trace`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pcbp.metrics import relative_error
from pcbp.network import PCN
from pcbp.pcn import activity_scale, settle
from pcbp.rules.bp import deltas
from pcbp.rules.fazil import FaZIL, driven_mask, gated_feedback, phi_gate
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def distance_to_feedforward(net: PCN, x: list[Tensor], y: list[Tensor]) -> float:
    """`‖x − y‖ / ‖y‖` over every free layer `0 … l_max − 1` together (Frobenius, whole batch)."""
    return relative_error(x[: net.l_max], y[: net.l_max])


def settling_curve(net: PCN, s_in: Tensor, gamma: float, steps: int, *, every: int = 1) -> np.ndarray:
    """Relative distance of the free network to its feedforward pass while it settles from rest.

    Runs `pcbp.pcn.settle` (output free, rate `γ`) in chunks of `every` steps and returns the
    distance at `t = 0, every, 2·every, …, steps` (`steps // every + 1` values). A state that
    blows up gives `inf` from then on.
    """
    if every < 1 or steps < 0:
        raise ValueError(f"every={every}, steps={steps}: give every ≥ 1 and steps ≥ 0")
    with torch.no_grad():
        y = net.feedforward(s_in)
        x, out = None, []
        for k in range(steps // every + 1):
            if k > 0:
                x, _ = settle(net, s_in, gamma=gamma, max_steps=every, tol=0.0, x0=x)
            else:
                x, _ = settle(net, s_in, gamma=gamma, max_steps=0)  # the rest state
            d = distance_to_feedforward(net, x, y)
            out.append(d if math.isfinite(d) else math.inf)
    return np.array(out)


def settle_and_record(
    net: PCN,
    s_in: Tensor,
    gamma: float,
    *,
    max_steps: int,
    every: int = 1,
    tol: float | None = None,
    extra: int = 0,
) -> tuple[int | None, np.ndarray, np.ndarray]:
    """`steps_to_settle` and a settling curve from one run: `(steps, times, distances)`.

    Settles from rest in chunks of `every` steps, recording the distance to the feedforward pass
    after each chunk, until every `|ε| ≤ tol` (default 64 eps; that moment is recorded too), then
    runs `extra` more chunks (to show the floor). `steps` is `None` if `max_steps` was not enough.
    """
    if every < 1 or max_steps < 0 or extra < 0:
        raise ValueError(f"every={every}, max_steps={max_steps}, extra={extra}: give every ≥ 1, the others ≥ 0")
    with torch.no_grad():
        y = net.feedforward(s_in)
        x, _ = settle(net, s_in, gamma=gamma, max_steps=0)  # the rest state
        times, dists, t, steps = [0], [distance_to_feedforward(net, x, y)], 0, None
        while steps is None and t < max_steps:
            chunk = min(every, max_steps - t)
            x, n = settle(net, s_in, gamma=gamma, max_steps=chunk, tol=tol, x0=x)
            if n < chunk:
                steps = t + n
            t += n
            times.append(t)
            dists.append(distance_to_feedforward(net, x, y))
        for _ in range(extra if steps is not None else 0):
            x, _ = settle(net, s_in, gamma=gamma, max_steps=every, tol=0.0, x0=x)
            t += every
            times.append(t)
            dists.append(distance_to_feedforward(net, x, y))
    d = np.array(dists)
    return steps, np.array(times), np.where(np.isfinite(d), d, np.inf)


def steps_to_settle(net: PCN, s_in: Tensor, gamma: float, *, max_steps: int, tol: float | None = None) -> int | None:
    """Steps `settle` needs from rest until every `|ε| ≤ tol` (default 64 eps); `None` if it did not."""
    with torch.no_grad():
        _, n = settle(net, s_in, gamma=gamma, max_steps=max_steps, tol=tol)
    return None if n == max_steps else n


def relaxation_spectrum(net: PCN, s_in: Tensor) -> tuple[float, float]:
    """Smallest and largest eigenvalue of the Hessian of `F` at the feedforward pass, output free.

    At `ε = 0` the Hessian is `JᵀJ`, `J` the Jacobian of the errors `ε^0 … ε^{l_max−1}` with respect
    to the free nodes `x^0 … x^{l_max−1}` (identity blocks on the diagonal, `−θ^{l+1} diag f'(y^{l+1})`
    beside it). Samples relax independently; the worst of the batch is returned: `(min λ_min,
    max λ_max)`. Gradient descent at rate `γ` is linearly stable iff `γ < 2 / λ_max`.
    """
    with torch.no_grad():
        y = net.feedforward(s_in)
        sizes = net.sizes[: net.l_max]
        off = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        lo, hi = math.inf, 0.0
        for b in range(s_in.shape[0]):
            J = torch.eye(off[-1], dtype=torch.float64)
            for l in range(net.l_max - 1):
                block = net.theta[l + 1].double() * net.df(y[l + 1][b]).double()[None, :]
                J[off[l] : off[l + 1], off[l + 1] : off[l + 2]] = -block
            ev = torch.linalg.eigvalsh(J.T @ J)
            lo, hi = min(lo, float(ev[0])), max(hi, float(ev[-1]))
    return lo, hi


def linear_rate(lam_min: float, lam_max: float, gamma: float) -> float:
    """Contraction per step of linearised gradient descent, `max |1 − γλ|` over the spectrum."""
    return max(abs(1 - gamma * lam_min), abs(1 - gamma * lam_max))


def decay_rate(
    curve: np.ndarray, every: int = 1, *, hi: float = 1e-4, lo: float = 1e-10, times: np.ndarray | None = None
) -> float:
    """Measured contraction per step of a settling curve, over the stretch where it falls from `hi` to `lo`.

    The geometric mean of `d_{t+1}/d_t` between the first sample below `hi` and the first below
    `lo` (both must exist): the asymptotic, linear regime, before rounding takes over. Samples
    are `every` steps apart, or at `times` if given.
    """
    below_hi, below_lo = np.flatnonzero(curve <= hi), np.flatnonzero(curve <= lo)
    if len(below_hi) == 0 or len(below_lo) == 0 or below_lo[0] <= below_hi[0]:
        raise ValueError(f"the curve does not fall from {hi:g} to {lo:g} in resolved steps")
    i, j = int(below_hi[0]), int(below_lo[0])
    span = (j - i) * every if times is None else float(times[j] - times[i])
    return float((curve[j] / curve[i]) ** (1 / span))


def settled_floor(net: PCN, s_in: Tensor, s_out: Tensor, tol: float, gamma: float = 1.0) -> float:
    """The relative error a settled start cannot beat: `max_l tol·max(1, max|y^l|)·√(B n_l)·ρ^l / ‖δ^l‖`.

    `settle` leaves errors up to `tol` times the activity in every node; after the output is clamped
    that residue evolves for `l` steps at rate `γ` (growing at most by the linear factor `ρ = max|1 − γλ|`
    of the free network's Hessian per step) before the wave reads layer `l`, whose delta it then
    perturbs. Layers with `δ^l = 0` are skipped (nothing to compare).
    """
    with torch.no_grad():
        y = net.feedforward(s_in)
        d = deltas(net, y, s_out)
    lo, hi = relaxation_spectrum(net, s_in)
    rho = max(1.0, linear_rate(lo, hi, gamma))
    ratios = [tol * activity_scale(y[l]) * math.sqrt(d[l].numel()) * rho**l / float(d[l].norm())
              for l in range(net.l_max) if float(d[l].norm()) > 0]
    return max(ratios, default=0.0)


@dataclass
class Firing:
    """Which error node passed its error through `Φ`, when, and what it passed.

    `step[l]` has shape `(batch, n_l)`: the inference step at which node `(l, i)` fired, `-1` if
    it never did; `value[l]` the error it passed (0 if none); `count[l]` how many times it fired
    (a one-shot gate: 0 or 1); `delta[l]` BP's `δ^l` for comparison.
    """

    step: list[Tensor]
    value: list[Tensor]
    count: list[Tensor]
    delta: list[Tensor]
    steps: int

    def late(self) -> int:
        """Firings at a step other than the node's own `t = l`."""
        return sum(int(((s >= 0) & (s != l)).sum()) for l, s in enumerate(self.step))

    def on_time(self) -> int:
        """Firings at the node's own step `t = l`."""
        return sum(int((s == l).sum()) for l, s in enumerate(self.step))

    def missed(self, tau: float) -> int:
        """Nodes with `|δ| > τ` that never fired."""
        return sum(int(((s < 0) & (d.abs() > tau)).sum()) for s, d in zip(self.step, self.delta))

    def silent_small(self, tau: float) -> int:
        """Nodes with `|δ| ≤ τ` (e.g. an inactive ReLU, `δ = 0`) that never fired."""
        return sum(int(((s < 0) & (d.abs() <= tau)).sum()) for s, d in zip(self.step, self.delta))

    def value_error(self) -> float:
        """`max |value − δ| / max |δ|` over the nodes that fired (0 if none fired)."""
        worst = 0.0
        for v, s, d in zip(self.value, self.step, self.delta):
            fired = s >= 0
            if fired.any():
                worst = max(worst, float((v - d)[fired].abs().max() / d.abs().max()))
        return worst


def firing_record(net: PCN, s_in: Tensor, s_out: Tensor, rule: FaZIL) -> tuple[Firing, Trace, Updates]:
    """Run `rule` (weights left unchanged) with a `Trace` and replay its gate `phi_gate` on it.

    The replay uses the rule's own `phi` and thresholds and, at `t = 0`, the predictions of the
    free network just before the output was clamped; they equal the traced `μ_0`, since no
    prediction reads the output layer. What drives a value node (`gated_feedback`) is replayed
    from the firings of the step before. Returns the firing record, the trace and the updates.
    """
    trace = Trace()
    updates = rule(net, s_in, s_out, apply=False, trace=trace)
    L, first = net.l_max, trace.eps[0]
    tau = rule.thresholds(trace.mu[0])
    armed = [torch.ones_like(e, dtype=torch.bool) for e in first]
    step = [torch.full(e.shape, -1, dtype=torch.long) for e in first]
    value = [torch.zeros_like(e) for e in first]
    count = [torch.zeros(e.shape, dtype=torch.long) for e in first]
    driven = [torch.ones_like(armed[0])] + [torch.zeros_like(a) for a in armed[1:]]
    mu_prev = trace.mu[0]
    for t in range(trace.steps):
        gated_now = []
        for l in range(L):
            was = armed[l]
            gated, armed[l] = phi_gate(trace.eps[t][l], trace.mu[t][l], mu_prev[l], was, tau[l], rule.phi, driven[l])
            fired = was & ~armed[l] & (gated != 0)
            step[l] = torch.where(fired, torch.full_like(step[l], t), step[l])
            value[l] = torch.where(fired, gated, value[l])
            count[l] = count[l] + fired.long()
            gated_now.append(gated)
        driven = [torch.zeros_like(armed[0])] + [
            driven_mask(trace.x[t][l], gated_feedback(net, l, trace.x[t][l], gated_now[l - 1])) for l in range(1, L)
        ]
        mu_prev = trace.mu[t]
    with torch.no_grad():
        delta = deltas(net, net.feedforward(s_in), s_out)
    return Firing(step, value, count, delta, trace.steps), trace, updates


def replay_updates(net: PCN, firing: Firing, trace: Trace, alpha: float) -> Updates:
    """The updates Fa-Z-IL's Hebbian rule makes from a firing record: `Σ_t α Φ(ε^l_t) f(x^{l+1}_t)ᵀ`,
    each node contributing its one passed value with the presynaptic activity at its firing step."""
    out = Updates()
    for l in range(net.l_max):
        total = torch.zeros_like(net.theta[l + 1])
        for t in range(trace.steps):
            now = torch.where(firing.step[l] == t, firing.value[l], torch.zeros_like(firing.value[l]))
            total = total + (alpha / now.shape[0]) * (now.T @ net.f(trace.x[t][l + 1]))
        out.add(l + 1, total)
    return out


def thresholded_bp(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float, tau: float) -> Updates:
    """BP's updates with every delta `|δ^l_i| ≤ τ` dropped (the wave itself unchanged).

    What Fa-Z-IL computes if every node with `|δ| > τ` fires once at `t = l` with `δ` and no
    other node ever fires: the prediction the threshold `τ` is checked against.
    """
    with torch.no_grad():
        y = net.feedforward(s_in)
        out = Updates()
        for l, d in enumerate(deltas(net, y, s_out)):
            kept = torch.where(d.abs() > tau, d, torch.zeros_like(d))
            _learn_like_bp(net, out, l, kept, y[l + 1], alpha)
    return out


def _learn_like_bp(net: PCN, out: Updates, l: int, delta: Tensor, y_pre: Tensor, alpha: float) -> None:
    """`Δθ^{l+1} = (α/B) δ^lᵀ f(y^{l+1})` and `Δb^{l+1} = α mean δ^l`, written out (an oracle, not `hebbian`)."""
    d_b = alpha * delta.mean(dim=0) if net.has_bias else None
    out.add(l + 1, (alpha / delta.shape[0]) * (delta.T @ net.f(y_pre)), d_b)


def thresholded_wave_bp(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float, tau: float) -> Updates:
    """BP whose wave itself is thresholded: each `δ^l` loses its entries `|δ^l_i| ≤ τ` before it
    is sent on to layer `l + 1` and before it learns. What `FaZILQuiet` computes, whose silent error
    nodes send nothing on (unlike `FaZIL`, which sends every error: `thresholded_bp`)."""
    with torch.no_grad():
        y, out = net.feedforward(s_in), Updates()
        d = s_out - y[0]
        for l in range(net.l_max):
            d = torch.where(d.abs() > tau, d, torch.zeros_like(d))
            _learn_like_bp(net, out, l, d, y[l + 1], alpha)
            if l + 1 < net.l_max:
                d = net.df(y[l + 1]) * (d @ net.theta[l + 1])
    return out


def missed_delta_bound(net: PCN, s_in: Tensor, alpha: float, tau: float) -> float:
    """An upper bound on `‖Δ_BP − Δ_τ‖` (Frobenius, all weights), `Δ_τ` being `thresholded_bp`.

    The dropped part of `Δθ^{l+1}` is `(α/B) Σ_b m_b f(y^{l+1}_b)ᵀ` with every `|m_{b,i}| ≤ τ`, so
    its norm is at most `α τ √n_l max_b ‖f(y^{l+1}_b)‖`; the layers add in quadrature.
    """
    with torch.no_grad():
        y = net.feedforward(s_in)
        total = 0.0
        for l in range(net.l_max):
            f_norm = float(net.f(y[l + 1]).norm(dim=1).max())
            total += (alpha * tau * math.sqrt(net.sizes[l]) * f_norm) ** 2
    return math.sqrt(total)


def wave_cut(net: PCN, s_in: Tensor, s_out: Tensor) -> Tensor:
    """For each sample, whether BP's error wave is cut: some `δ^l` (`l < l_max`) is exactly 0 everywhere.

    Then every deeper delta is 0 too (a ReLU layer whose units are all inactive for that sample
    does it): the layers below receive no wave, and their error nodes carry only what the start
    left in them (exactly 0 from the feedforward pass, rounding residue after `settle`).
    """
    with torch.no_grad():
        d = deltas(net, net.feedforward(s_in), s_out)
    return torch.stack([(x == 0).all(dim=1) for x in d], dim=1).any(dim=1)
