"""Z-IL in continuous time: inference as the gradient flow `dx/dt = −∂F/∂x`, Euler-integrated.

The flow, for hidden `l`: `dx^l/dt = −ε^l + f'(x^l) ⊙ (θ^l)ᵀ ε^{l−1}`, input and output clamped.
`pcbp.pcn.inference_step` at rate `h` is one Euler step of size `h`, so the paper's inference
step at rate `γ` is one Euler step of length `h = γ` time units.

The clock. Z-IL's C2 says `θ^{l+1}` learns at step `t = l`, i.e. at time `t_l = l γ`. Here that
time is kept and each interval `[lγ, (l+1)γ]` is split into `substeps = n` Euler steps of size
`h = γ / n`: `θ^{l+1}` learns from the state after `l·n` Euler steps, all at `t_l = lγ`, over a
total time `(l_max − 1) γ` in `(l_max − 1) n` steps. `n = 1` is `ZIL(α, gamma=γ)` (the same code,
bit for bit); `n → ∞` is the exact flow sampled at the same times.

What it shows. The one-step map at `h = 1` is dead-beat: `x^l + (−ε^l + …)` drops the node's own
error in one step, and the error moves exactly one layer per step, so it reaches layer `l` at step
`l` and nowhere earlier. The flow has neither property (`ε^l(t)` leaves 0 at once, as `t^l`, and
decays as `e^{−t}` while it grows), so finer integration of the same schedule converges to
something that is not BP: exactness belongs to the Euler map with `γ = 1`, not to the ODE.
Near `γ = 1` (`n = 1`) the `γ^l` law (`pcbp.conditions.gamma_scaled`) gives the divergence
`≈ |1 − γ| c`, `c = sqrt(Σ_l l² ‖Δθ^{l+1}‖²) / ‖Δθ‖` (`gamma_slope`). Unlike `γ ≠ 1`, which only
rescales `δ^l`, the flow's error at `t_l` is not parallel to `δ^l` (`wave_alignment`): no per-layer
rate repairs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pcbp.checks import check_non_negative, check_positive, check_steps
from pcbp.conditions import gamma_scaled
from pcbp.experiments import error_vs_autograd
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.rules import ZIL, Rule, autograd_updates, deltas
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def time_schedule(l_max: int, substeps: int) -> dict[int, tuple[int, ...]]:
    """`θ^{l+1}` learns at Euler step `l · substeps`, i.e. at time `t_l = l γ`."""
    return {l: (l * substeps,) for l in range(l_max)}


class ContinuousZIL(Rule):
    """Z-IL on the time axis: `θ^{l+1}` learns at `t_l = lγ`, inference Euler-integrated with `h = γ / substeps`.

    `substeps = 1` runs `ZIL(alpha, gamma=γ)` itself (so γ = 1 is exact BP); `init_noise` and `seed`
    break C1 as in `ZIL`. With `apply=True` each update lands at its own time, as in `ZIL`.
    """

    name = "Z-IL (continuous time)"

    def __init__(
        self, alpha: float, *, gamma: float = 1.0, substeps: int = 1, init_noise: float = 0.0, seed: int = 0
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the time between two layers' updates, γ)", gamma)
        self.substeps = check_steps("substeps (Euler steps per interval γ)", substeps)
        self.init_noise = check_non_negative("init_noise (the C1 perturbation σ)", init_noise)
        self.seed = seed

    @property
    def h(self) -> float:
        """The Euler step `h = γ / substeps`."""
        return self.gamma / self.substeps

    def euler(self, l_max: int) -> ZIL:
        """The discrete rule this one runs: `ZIL` at rate `h` with C2 stretched to steps `l · substeps`."""
        schedule = time_schedule(l_max, self.substeps)
        return ZIL(self.alpha, gamma=self.h, schedule=schedule, init_noise=self.init_noise, seed=self.seed)

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        return self.euler(net.l_max).run(net, s_in, s_out, apply=apply, trace=trace)


def zil_continuous(
    net: PCN, s_in: Tensor, s_out: Tensor, gamma: float = 1.0, substeps: int = 1, *, alpha: float = 0.1
) -> Updates:
    """The updates of `ContinuousZIL(alpha, gamma=γ, substeps=n)` for one mini-batch; `net` is left unchanged."""
    return ContinuousZIL(alpha, gamma=gamma, substeps=substeps)(net, s_in, s_out, apply=False)


def gamma_sweep(
    net: PCN, s_in: Tensor, s_out: Tensor, gammas: Sequence[float], *, substeps: int = 1, alpha: float = 0.1,
    apply: bool = False,
) -> np.ndarray:
    """Relative error of `ContinuousZIL`'s updates against autograd BP for each `γ` in `gammas`."""
    return np.array([
        error_vs_autograd(ContinuousZIL(alpha, gamma=float(g), substeps=substeps), net, s_in, s_out, apply=apply)
        for g in gammas
    ])


def substeps_sweep(
    net: PCN, s_in: Tensor, s_out: Tensor, substeps: Sequence[int], *, gamma: float = 1.0, alpha: float = 0.1,
    apply: bool = False,
) -> np.ndarray:
    """Relative error against autograd BP for each `substeps` at fixed `γ`: the same times, finer Euler steps."""
    return np.array([
        error_vs_autograd(ContinuousZIL(alpha, gamma=gamma, substeps=int(n)), net, s_in, s_out, apply=apply)
        for n in substeps
    ])


def gamma_law_sweep(net: PCN, s_in: Tensor, s_out: Tensor, gammas: Sequence[float]) -> np.ndarray:
    """The divergence the `γ^l` law predicts (`substeps = 1`): `‖γ^l Δ^{l+1} − Δ^{l+1}‖ / ‖Δ‖`, `Δ` BP's update."""
    with torch.enable_grad():
        bp = autograd_updates(net, s_in, s_out, 1.0)
    return np.array([update_error(net, gamma_scaled(bp, float(g)), bp) for g in gammas])


def gamma_slope(net: PCN, s_in: Tensor, s_out: Tensor) -> float:
    """`c = sqrt(Σ_l l² ‖Δ^{l+1}‖²) / ‖Δ‖` (weights and biases): the law's divergence is `|1 − γ| c + O((1 − γ)²)`."""
    with torch.enable_grad():
        bp = autograd_updates(net, s_in, s_out, 1.0)
    weighted = sum((k - 1) ** 2 * float(d.pow(2).sum()) for part in (bp.theta, bp.b) for k, d in part.items())
    total = sum(float(d.pow(2).sum()) for d in bp.tensors(net))
    return (weighted / total) ** 0.5


def wave_alignment(
    net: PCN, s_in: Tensor, s_out: Tensor, *, gamma: float = 1.0, substeps: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer `l`, the error `ε^l` at its learning time `t_l = lγ` against BP's `δ^l`: the best scale
    `c_l = ⟨ε^l, δ^l⟩ / ‖δ^l‖²` and the residual `‖ε^l − c_l δ^l‖ / ‖δ^l‖` (`nan` where `δ^l = 0`).

    A residual at rounding means a per-layer rate `α / c_l` would restore BP (as for `γ ≠ 1`, `c_l = γ^l`);
    a larger one means `ε^l` points elsewhere and no rate can.
    """
    trace = Trace()
    ContinuousZIL(1.0, gamma=gamma, substeps=substeps)(net, s_in, s_out, apply=False, trace=trace)
    delta = deltas(net, net.feedforward(s_in), s_out)
    scale, residual = np.full(net.l_max, np.nan), np.full(net.l_max, np.nan)
    for l, d in enumerate(delta):
        norm2 = float(d.pow(2).sum())
        if norm2 > 0:
            e = trace.eps[l * substeps][l]
            scale[l] = float((e * d).sum()) / norm2
            residual[l] = float((e - scale[l] * d).norm()) / norm2**0.5
    return scale, residual
