"""Z-IL computed only where the error wave is: the same updates as `ZIL`, at BP's cost."""

from __future__ import annotations

import torch

from pcbp.network import PCN
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


class ZILWave(Rule):
    """Z-IL under C1–C3, simulating only the layer the error wave is passing through.

    By the lemma, at step `t` only layer `t` moves: `x^t_t = y^t + f'(y^t) ⊙ (θ^t)ᵀ ε^{t−1}_{t−1}`
    while its prediction is still `μ^t_t = y^t`, so `ε^t_t = x^t_t − μ^t_t`. Every other node is
    provably still, so recomputing it (as `ZIL` does, like a brain would) changes no bit of the
    result. This rule computes exactly those quantities in the same arithmetic, so its updates
    equal `ZIL`'s bit for bit; it has no options to break C1–C3 (use `ZIL` for that).
    A `Trace` is not supported: the still nodes are never formed.
    """

    name = "Z-IL (wave)"
    faithful = "ZIL"

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        y = net.feedforward(s_in)
        updates = Updates()
        eps = s_out - y[0]  # ε^0_0: the clamped output against its prediction
        for t in range(net.l_max):
            now = Updates()
            self.learn(net, now, t, eps, y[t + 1])  # θ^{t+1} learns at step t (C2)
            if t + 1 < net.l_max:  # the wave moves one layer deeper (γ = 1, C3)
                x_next = y[t + 1] + net.df(y[t + 1]) * (eps @ net.theta[t + 1])
                eps = x_next - y[t + 1]
            self.commit(net, now, updates, apply=apply)
        return updates
