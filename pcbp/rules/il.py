"""IL: inference learning, the original way to train a PCN (Whittington & Bogacz 2017)."""

from __future__ import annotations

import torch

from pcbp.checks import check_non_negative, check_positive, check_steps
from pcbp.network import PCN
from pcbp.pcn import errors, perturb_hidden
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


class IL(Rule):
    """Clamp input and output, relax `T` steps at rate `γ`, then update every weight once.

    The update uses the relaxed state: `Δθ^{l+1} = α ε^l_T f(x^{l+1}_T)ᵀ`. The relaxation starts
    from the feedforward pass (plus `init_noise`, if given), as in Whittington & Bogacz.
    Each step is `pcbp.pcn.inference_step`, done in place, with the work that does not change
    during relaxation done once per update: the clamped input's prediction and `(θ^l)ᵀ`; `f(x^l)`
    is evaluated once per step. tests/test_il.py checks it against the plain loop to 1e-13.
    """

    name = "IL"

    def __init__(
        self, alpha: float, *, gamma: float = 0.1, T: int = 20, init_noise: float = 0.0, seed: int = 0
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)
        self.T = check_steps("T", T)
        self.init_noise = check_non_negative("init_noise (the start perturbation σ)", init_noise)
        self.seed = seed

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        top, hidden = net.l_max - 1, range(1, net.l_max)
        y = net.feedforward(s_in)  # the start (C1); the nodes are copies, as they move in place
        x = perturb_hidden([s_out, *(y[l].clone() for l in hidden), s_in], self.init_noise, self.seed)
        mu_top = y[top]  # μ^{l_max−1} = θ^{l_max} f(s_in) = y^{l_max−1}: the input never moves
        theta_t = {l: net.theta[l].T.contiguous() for l in range(1, top + 1)}  # (θ^l)ᵀ, laid out once
        fx = {l: net.f(x[l]) for l in hidden}  # f(x^l) of the hidden nodes, kept up to date
        for t in range(self.T + 1):
            mu = [prediction(net, l, fx[l + 1], theta_t[l + 1]) for l in range(top)] + [mu_top]
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            if t < self.T:
                for l in hidden:  # x^l ← x^l + γ f'(x^l) ⊙ (θ^l)ᵀ ε^{l−1} − γ ε^l, in place
                    x[l].addcmul_(net.activation.derivative(x[l], fx[l]), eps[l - 1] @ net.theta[l], value=self.gamma)
                    x[l].sub_(eps[l], alpha=self.gamma)
                    fx[l] = net.f(x[l])
        return self.learn_every_layer(net, eps, x, apply=apply)


def prediction(net: PCN, l: int, f_above: Tensor, theta_t: Tensor) -> Tensor:
    """`μ^l = θ^{l+1} f(x^{l+1}) (+ b^{l+1})` from `f(x^{l+1})` and `theta_t = (θ^{l+1})ᵀ` at hand."""
    mu = f_above @ theta_t
    if net.has_bias:
        mu += net.b[l + 1]
    return mu

