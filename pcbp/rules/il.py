"""IL: inference learning, the original way to train a PCN (Whittington & Bogacz 2017)."""

from __future__ import annotations

import torch

from pcbp.checks import check_positive, check_steps
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, inference_step, perturb_hidden, predictions
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


class IL(Rule):
    """Clamp input and output, relax `T` steps at rate `γ`, then update every weight once.

    The update uses the relaxed state: `Δθ^{l+1} = α ε^l_T f(x^{l+1}_T)ᵀ`. The relaxation starts
    from the feedforward pass (plus `init_noise`, if given), as in Whittington & Bogacz.
    """

    name = "IL"

    def __init__(
        self, alpha: float, *, gamma: float = 0.1, T: int = 20, init_noise: float = 0.0, seed: int = 0
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)
        self.T = check_steps("T", T)
        self.init_noise = float(init_noise)
        self.seed = seed

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        x = perturb_hidden(feedforward_state(net, s_in, s_out), self.init_noise, self.seed)
        for t in range(self.T + 1):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            if t < self.T:
                x = inference_step(net, x, eps, self.gamma, clamp_output=True)
        return self.learn_every_layer(net, eps, x, apply=apply)
