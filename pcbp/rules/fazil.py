"""Fa-Z-IL: fully autonomous Z-IL. No clock: every weight is plastic at every step, gated by Φ."""

from __future__ import annotations

import torch

from pcbp.checks import check_positive, check_steps
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, inference_step, predictions, settle
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

PHIS = ("feedback", "departure")
INITS = ("feedforward", "settle")


def phi_gate(
    eps: Tensor, mu: Tensor, mu_prev: Tensor | None, armed: Tensor, tau: float, phi: str
) -> tuple[Tensor, Tensor]:
    """`Φ(ε)` for one layer: `ε` where the gate fires now, else 0; also the gates still armed.

    Every error node starts armed when the output is clamped and disarms the first time its
    error departs from 0 (`|ε| > τ`). It fires at that moment, passing `ε` on, if
    `phi="departure"`; with `phi="feedback"` only if its prediction `μ` did not move in the
    last step, i.e. the departure was caused by feedback. Everything it reads is its own.
    `mu_prev=None` says the prediction was not recomputed, so it cannot have moved.
    """
    departed = armed & ((eps != 0) if tau == 0 else (eps.abs() > tau))
    check_cause = phi == "feedback" and mu_prev is not None
    fires = departed & ((mu - mu_prev).abs() <= tau) if check_cause else departed
    return eps * fires, armed ^ departed


class FaZIL(Rule):
    """Fa-Z-IL: settle with the input alone (C1), clamp the output, learn at every step through Φ.

    `init="settle"` lets the free network relax to its energy minimum (the feedforward pass,
    reached asymptotically, to `settle_tol`); `init="feedforward"` starts at that limit
    directly. Then `steps` inference steps at rate `γ` run with the output clamped; every weight
    `θ^{l+1}` gets `α Φ(ε^l_t) f(x^{l+1}_t)ᵀ` at every step `t`; no layer is told when to learn.
    `tau` is the largest error a node still counts as 0: by default 0 from the feedforward
    limit (errors start exactly at 0) and 1000 machine epsilons after a real settle.
    """

    name = "Fa-Z-IL"

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
        self.settle_tol = settle_tol
        self.phi = _choice("phi", phi, PHIS)
        self.tau = tau

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
                f"Fa-Z-IL: the free network did not settle in {n} steps (γ = {self.settle_gamma}):"
                " raise settle_steps, lower settle_gamma if the energy grew, or use"
                " init='feedforward' to start at the settled limit"
            )
        return x

    def threshold(self, dtype: torch.dtype) -> float:
        """`τ`: exact zeros from the feedforward limit, rounding-sized residuals after a settle."""
        if self.tau is not None:
            return self.tau
        return 0.0 if self.init == "feedforward" else 1000 * torch.finfo(dtype).eps

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        x = self.initial_state(net, s_in)
        mu_prev = self.free_predictions(net, x)
        x[0] = s_out
        tau = self.threshold(s_in.dtype)
        armed = [torch.ones_like(m, dtype=torch.bool) for m in mu_prev]
        updates = Updates()
        for t in range(self.steps or 2 * net.l_max):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            now = Updates()
            for l in range(net.l_max):
                gated, armed[l] = phi_gate(eps[l], mu[l], mu_prev[l], armed[l], tau, self.phi)
                self.learn(net, now, l, gated, x[l + 1])
            x = inference_step(net, x, eps, self.gamma, clamp_output=True)
            if apply:
                now.apply(net)
            updates.merge(now)
            mu_prev = mu
        return updates


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(map(repr, options))}")
    return value
