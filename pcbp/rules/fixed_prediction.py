"""Fixed-prediction PC (Millidge, Tschantz & Buckley 2020/2022; Rosenbaum 2022): errors relax, predictions stay put.

Derivation, in the paper's notation. With `F = Σ_l ½‖ε^l‖²`, `ε^l = x^l − μ^l` and `μ^{l−1} = θ^l f(x^l)`,
`−∂F/∂x^l = −ε^l + f'(x^l) ⊙ (θ^l)ᵀ ε^{l−1}`. The fixed-prediction assumption holds every prediction at
its feedforward value, `μ^l = y^l`, and so evaluates `∂μ^{l−1}/∂x^l` there too: `f'(x^l) → f'(y^l)`.
Since `μ^l` does not move, a step of size `η` on `x^l` moves `ε^l` by the same amount:

    ε^l_{t+1} = ε^l_t + η(−ε^l_t + f'(y^l) ⊙ (θ^l)ᵀ ε^{l−1}_t),   l = 1 … l_max − 1,

from `ε^l_0 = 0` (C1), with `ε^0 = s_out − y^0` clamped. Write `J^l v = f'(y^l) ⊙ (θ^l)ᵀ v`, so BP is
`δ^l = J^l δ^{l−1}`: the fixed point is `ε^l = δ^l`. The gap `e^l_t = ε^l_t − δ^l` obeys
`e_{t+1} = ((1 − η) I + η N) e_t`, `N` the nilpotent shift `e^{l−1} ↦ J^l e^{l−1}` (`e^0 = 0`). Expanding
the binomial and using `J^l ⋯ J^{l−k+1} δ^{l−k} = δ^l`,

    ε^l_T = g_l(T) δ^l,   g_l(T) = 1 − Σ_{k=0}^{l−1} C(T, k) η^k (1 − η)^{T−k} = P(Binomial(T, η) ≥ l):

an exact per-layer rescaling of BP (`binomial_gain`). With `η = 1`, `g_l(T) = 1` once `T ≥ l`, so
`l_max − 1` steps already give BP exactly (Rosenbaum 2022: step 1, depth-many steps). For
`0 < η < 2` every eigenvalue of the step is `1 − η`, so `1 − g_l(T) = O(T^{l−1} |1 − η|^T)`:
geometric convergence to BP. At `η ≥ 2` it never settles.
"""

from __future__ import annotations

import math
import numbers

import torch

from pcbp.checks import check_positive
from pcbp.network import PCN
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def check_eta(eta: float) -> float:
    """`η` as a float in `(0, 2)`, else an error: the step's eigenvalue `1 − η` must lie inside the unit circle."""
    eta = check_positive("eta (the error-relaxation rate η)", eta)
    if eta >= 2:
        raise ValueError(
            f"eta (the error-relaxation rate η) must be < 2, got {eta!r}: each step multiplies the gap to BP "
            "by 1 − η, which at |1 − η| ≥ 1 never shrinks (η = 1 reaches BP in l_max − 1 steps)"
        )
    return eta


def check_fp_steps(steps: int | None) -> int | None:
    """`steps` as an integer ≥ 1, or `None` (then `l_max`), else an error."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(
            f"steps must be an integer ≥ 1 (the number of error-relaxation steps) or None for l_max, got {steps!r}"
        )
    return int(steps)


def binomial_gap(l: int, steps: int, eta: float) -> float:
    """`1 − g_l(T) = Σ_{k<l} C(T, k) η^k (1 − η)^{T−k}`: layer `l`'s relative gap to BP, summed directly.

    Summing the tail (not `1 − g`) keeps its relative precision where the gap is far below 1.
    """
    return math.fsum(math.comb(steps, k) * eta**k * (1.0 - eta) ** (steps - k) for k in range(min(l, steps + 1)))


def binomial_gain(l: int, steps: int, eta: float) -> float:
    """`g_l(T) = P(Binomial(T, η) ≥ l)`: the factor by which `T` steps at rate `η` scale `δ^l` (exact, module doc)."""
    return 1.0 - binomial_gap(l, steps, eta)


def binomial_scaled(updates: Updates, eta: float, steps: int) -> Updates:
    """What the law predicts from BP's updates: `θ^{l+1}` and `b^{l+1}` scaled by `g_l(T)`."""
    return Updates(
        theta={k: binomial_gain(k - 1, steps, eta) * d for k, d in updates.theta.items()},
        b={k: binomial_gain(k - 1, steps, eta) * d for k, d in updates.b.items()},
    )


class FixedPrediction(Rule):
    """Fixed-prediction PC: `μ^l = y^l` held, errors relax `steps` times at rate `η`, then one Hebbian update.

    The update after the last step is `Δθ^{l+1} = α ε^l_T f(y^{l+1})ᵀ` (`Δb^{l+1} = α ε^l_T`), batch-averaged
    as `BP`'s. `steps=None` means `l_max`. With `η = 1` and `steps ≥ l_max − 1` the errors are BP's deltas
    computed in BP's own arithmetic, so the updates equal `BP`'s; otherwise `ε^l_T = g_l(T) δ^l` (module doc).
    Weights do not change during the relaxation, so `apply=True` and `apply=False` return the same updates.
    """

    name = "fixed-prediction PC"

    def __init__(self, alpha: float, eta: float = 1.0, steps: int | None = None) -> None:
        super().__init__(alpha)
        self.eta = check_eta(eta)
        self.steps = check_fp_steps(steps)

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        y = net.feedforward(s_in)
        mu = y[:-1]  # the predictions μ^l = y^l, fixed for the whole relaxation
        slope = {l: net.df(y[l]) for l in range(1, net.l_max)}  # f'(y^l), evaluated once
        eps = [s_out - y[0]] + [torch.zeros_like(y[l]) for l in range(1, net.l_max)]
        T = net.l_max if self.steps is None else self.steps
        for t in range(T + 1):
            if trace is not None:
                trace.record([s_out, *(m + e for m, e in zip(mu[1:], eps[1:])), s_in], mu, eps)
            if t < T:
                eps = [eps[0]] + [self.relax(eps, l, slope[l], net.theta[l]) for l in range(1, net.l_max)]
        return self.learn_every_layer(net, eps, y, apply=apply)

    def relax(self, eps: list[Tensor], l: int, slope: Tensor, theta: Tensor) -> Tensor:
        """`ε^l + η(−ε^l + f'(y^l) ⊙ (θ^l)ᵀ ε^{l−1})`, from the errors at the start of the step."""
        return eps[l] + self.eta * (slope * (eps[l - 1] @ theta) - eps[l])
