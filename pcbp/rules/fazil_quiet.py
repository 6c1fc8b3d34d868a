"""Fa-Z-IL whose error nodes transmit only what they learn from: BP's cost, still no clock."""

from __future__ import annotations

import torch

from pcbp.network import PCN
from pcbp.rules.fazil import FaZIL, driven_mask, gated_feedback, phi_gate
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


class FaZILQuiet(FaZIL):
    """Fa-Z-IL in which an error node sends on `Φ(ε)`, the signal it learns from, not `ε`.

    Each error node therefore speaks once, when its gate fires, and is silent otherwise; a
    layer whose gates have all closed has nothing left to do and is no longer computed, and
    a node is recomputed only when one of its inputs changed. Behind the error wave the network
    falls quiet, so a presentation costs about one BP sweep, and the run ends by itself when
    nothing moves (or after `steps`). At the wave front `Φ(ε) = ε`, so the front, and with it
    every update, is the one `FaZIL` computes. No clock, and every rule stays local.

    With a threshold `τ > 0` an error node below `τ` stays silent instead of sending its small
    error on, so the wave itself is thresholded (`pcbp.autonomy.thresholded_wave_bp`), whereas
    `FaZIL` thresholds only the updates (`thresholded_bp`); the two differ by O(τ). Only the
    exact gate is offered: `phi="departure"` is `FaZIL`'s alone.
    """

    name = "Fa-Z-IL (quiet)"
    faithful = "FaZIL"

    def __init__(self, alpha: float, **options: object) -> None:
        super().__init__(alpha, **options)  # type: ignore[arg-type]
        if self.phi != "feedback":
            raise ValueError(
                f"FaZILQuiet(phi={self.phi!r}): the quiet rule computes FaZIL's updates only for the exact gate "
                "phi='feedback'; run FaZIL(phi='departure') to see the naive reading"
            )

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        L = net.l_max
        x = self.initial_state(net, s_in)
        mu = self.free_predictions(net, x)
        tau = self.thresholds(mu)
        x[0] = s_out
        armed = [torch.ones_like(m, dtype=torch.bool) for m in mu]
        listening = [True] * L  # does layer l still have an armed error node?
        moved = [l == 0 for l in range(L + 1)]  # which value nodes changed in the last step
        driven: list[Tensor | bool] = [True] + [False] * (L - 1)  # moved by the wave (x^0: by the target)
        updates = Updates()
        for _ in range(self.steps or 2 * L):
            now, phi = Updates(), [None] * L
            for l in range(L):
                if not listening[l] or not (moved[l] or moved[l + 1]):
                    continue  # gates all closed, or nothing it reads has changed
                mu_l, mu_prev = (net.predict(l, x[l + 1]), mu[l]) if moved[l + 1] else (mu[l], None)
                phi[l], armed[l] = phi_gate(x[l] - mu_l, mu_l, mu_prev, armed[l], tau[l], self.phi, driven[l])
                mu[l], listening[l] = mu_l, bool(armed[l].any())
                if listening[l] and self.phi == "feedback":
                    armed[l] &= self.reachable(net, x, l)
                    listening[l] = bool(armed[l].any())
                if bool(phi[l].any()):
                    self.learn(net, now, l, phi[l], x[l + 1])
                else:
                    phi[l] = None  # silent
            moved, driven = self._relax(net, x, phi, listening)
            self.commit(net, now, updates, apply=apply)
            if not any(moved):
                break  # the network is quiet: learning for this presentation is over
        return updates

    @staticmethod
    def reachable(net: PCN, x: list[Tensor], l: int) -> Tensor:
        """Error nodes that feedback can still move: none in the clamped output, and in a hidden
        layer those whose gain `f'(x)` is nonzero. The others can only ever depart because their
        prediction moved, so their gates would never fire: they close now, and save a product."""
        return torch.zeros_like(x[0], dtype=torch.bool) if l == 0 else net.df(x[l]) != 0

    def _relax(
        self, net: PCN, x: list[Tensor], phi: list[Tensor | None], listening: list[bool]
    ) -> tuple[list[bool], list[Tensor | bool]]:
        """`x^l += γ(−Φ^l + f'(x^l) ⊙ (θ^l)ᵀ Φ^{l−1})` where a neighbouring node spoke.

        Returns which value nodes moved, and per layer where the wave's feedback drove them (what
        Φ's feedback check reads). A value node that no listening error node will ever read again
        (its own layer's and the one above are done) is left as it is: nothing depends on it.
        """
        moved = [False] * (net.l_max + 1)
        driven: list[Tensor | bool] = [False] * net.l_max
        for l in range(1, net.l_max):
            if (phi[l] is None and phi[l - 1] is None) or not (listening[l] or listening[l - 1]):
                continue
            drive = None if phi[l] is None else -phi[l]
            if phi[l - 1] is not None:
                feedback = gated_feedback(net, l, x[l], phi[l - 1])
                driven[l] = driven_mask(x[l], feedback)
                drive = feedback if drive is None else feedback + drive
            x[l] = x[l] + (drive if self.gamma == 1 else self.gamma * drive)
            moved[l] = True
        return moved, driven
