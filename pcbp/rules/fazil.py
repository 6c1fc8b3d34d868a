"""Fa-Z-IL: fully autonomous Z-IL. No clock: every weight is plastic at every step, gated by Φ."""

from __future__ import annotations

import torch

from pcbp.checks import check_non_negative, check_positive, check_steps
from pcbp.network import PCN
from pcbp.pcn import (
    activity_scale,
    errors,
    feedforward_state,
    inference_step,
    predictions,
    settle,
    settle_tolerance,
)
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

PHIS = ("feedback", "still", "departure")  # the exact gate first; the other two are readings that fail
INITS = ("feedforward", "settle")


def phi_gate(
    eps: Tensor,
    mu: Tensor,
    mu_prev: Tensor | None,
    armed: Tensor,
    tau: float,
    phi: str,
    driven: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """`Φ(ε)` for one layer: `ε` where the gate fires now, else 0; also the gates still armed.

    Every error node starts armed when the output is clamped and disarms the first time its
    error departs from 0 (`|ε| > τ`). With `phi="feedback"` (exact) it fires only if the departure
    was caused by the error wave's feedback: its own prediction `μ` did not move in the last step,
    and its value node was `driven` in the last step by feedback from error nodes that fired (for
    the output layer: by the target). `phi="still"` checks only the prediction, `phi="departure"`
    nothing: both fail on some networks (the Fa-Z-IL chapter shows where). Everything it reads is
    its own or arrives on its own synapses. `mu_prev=None` says the prediction was not recomputed,
    so it cannot have moved; `driven=None` skips that check.
    """
    departed = armed & ((eps != 0) if tau == 0 else (eps.abs() > tau))
    fires = departed
    if phi in ("feedback", "still") and mu_prev is not None:
        fires = fires & ((mu - mu_prev).abs() <= tau)
    if phi == "feedback" and driven is not None:
        fires = fires & driven
    return eps * fires, armed ^ departed


def gated_feedback(net: PCN, l: int, x_l: Tensor, phi_above: Tensor | None) -> Tensor | None:
    """`f'(x^l) ⊙ (θ^l)ᵀ Φ(ε^{l−1})`: the part of layer `l`'s feedback sent by error nodes that fired.

    Each feedback synapse already carries `Φ(ε^{l−1})`, the signal its own plasticity reads;
    where this is nonzero, the value node is being moved by the error wave itself and not by an
    error that arose from a moving prediction. `None` when no node above fired (nothing drives).
    """
    if phi_above is None or not bool(phi_above.any()):
        return None
    return net.df(x_l) * (phi_above @ net.theta[l])


def driven_mask(like: Tensor, feedback: Tensor | None) -> Tensor:
    """Where a value node was moved by the wave (`feedback` nonzero); all False if nothing drove it."""
    return torch.zeros_like(like, dtype=torch.bool) if feedback is None else feedback != 0


class FaZIL(Rule):
    """Fa-Z-IL: settle with the input alone (C1), clamp the output, learn at every step through Φ.

    `init="settle"` lets the free network relax to its energy minimum (the feedforward pass,
    reached asymptotically, to `settle_tol` relative to the activity); `init="feedforward"`
    starts at that limit directly. Then `steps` inference steps at rate `γ` run with the output
    clamped; every weight `θ^{l+1}` gets `α Φ(ε^l_t) f(x^{l+1}_t)ᵀ` at every step `t`; no layer
    is told when to learn. `tau` is the largest error a node still counts as 0: by default 0
    from the feedforward limit (errors start exactly at 0) and, after a real settle,
    `TAU_FACTOR` times the settling tolerance, relative to each layer's activity.
    """

    name = "Fa-Z-IL"
    TAU_FACTOR = 16  # the default τ after a settle, in units of the settling tolerance

    def __init__(
        self,
        alpha: float,
        *,
        gamma: float = 1.0,
        steps: int | None = None,
        init: str = "feedforward",
        settle_gamma: float = 0.1,
        settle_steps: int = 20_000,
        settle_tol: float | None = None,
        phi: str = "feedback",
        tau: float | None = None,
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)
        self.steps = None if steps is None else check_steps("steps", steps)
        self.init = _choice("init", init, INITS)
        self.settle_gamma = check_positive("settle_gamma", settle_gamma)
        self.settle_steps = check_steps("settle_steps", settle_steps)
        self.settle_tol = None if settle_tol is None else check_positive("settle_tol", settle_tol)
        self.phi = _choice("phi", phi, PHIS)
        self.tau = None if tau is None else check_non_negative("tau", tau)

    def free_predictions(self, net: PCN, x: list[Tensor]) -> list[Tensor]:
        """`μ` of the free state: from the feedforward limit these are the values themselves."""
        return list(x[: net.l_max]) if self.init == "feedforward" else predictions(net, x)

    def initial_state(self, net: PCN, s_in: Tensor) -> list[Tensor]:
        """The free network's state once the input alone has been shown (C1, reached or assumed)."""
        if self.init == "feedforward":
            return feedforward_state(net, s_in)
        x, n = settle(
            net, s_in, gamma=self.settle_gamma, max_steps=self.settle_steps, tol=self.settle_tol
        )
        if n == self.settle_steps:
            raise RuntimeError(
                f"Fa-Z-IL: the free network did not settle to a relative tolerance of "
                f"{settle_tolerance(s_in.dtype, self.settle_tol):.1e} in {n} steps (γ = {self.settle_gamma}):"
                " raise settle_steps, lower settle_gamma if the energy grew, raise settle_tol (τ follows"
                " it), or use init='feedforward' to start at the settled limit"
            )
        return x

    def thresholds(self, mu_free: list[Tensor]) -> list[float]:
        """`τ^l` per layer: `tau` if set; 0 from the feedforward limit; else `TAU_FACTOR · settle_tol ·
        max(1, max|μ^l|)`, above the residue a settle leaves (which scales with the activity). A
        `settle_tol` below the default (64 ε) still gets the default's τ: rounding leaves that much
        residue in every error node, and a γ = 1 wave grows it, so a lower τ would fire on rounding."""
        if self.tau is not None:
            return [self.tau] * len(mu_free)
        if self.init == "feedforward":
            return [0.0] * len(mu_free)
        dtype = mu_free[0].dtype
        tol = self.TAU_FACTOR * max(settle_tolerance(dtype, self.settle_tol), settle_tolerance(dtype))
        return [tol * activity_scale(m) for m in mu_free]

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        L = net.l_max
        x = self.initial_state(net, s_in)
        mu_prev = self.free_predictions(net, x)
        tau = self.thresholds(mu_prev)
        x[0] = s_out
        armed = [torch.ones_like(m, dtype=torch.bool) for m in mu_prev]
        driven = [torch.ones_like(armed[0])] + [torch.zeros_like(a) for a in armed[1:]]  # the target drives x^0
        updates = Updates()
        for t in range(self.steps or 2 * L):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            now, phi = Updates(), []
            for l in range(L):
                gated, armed[l] = phi_gate(eps[l], mu[l], mu_prev[l], armed[l], tau[l], self.phi, driven[l])
                self.learn(net, now, l, gated, x[l + 1])
                phi.append(gated)
            driven = [torch.zeros_like(armed[0])] + [
                driven_mask(x[l], gated_feedback(net, l, x[l], phi[l - 1])) for l in range(1, L)
            ]
            x = inference_step(net, x, eps, self.gamma, clamp_output=True)
            self.commit(net, now, updates, apply=apply)
            mu_prev = mu
        return updates


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(map(repr, options))}")
    return value
