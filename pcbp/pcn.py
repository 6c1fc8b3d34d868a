"""Predictive coding dynamics: value nodes `x`, predictions `μ`, errors `ε`, energy `F`.

State is a list `x[0..l_max]` of value nodes (batch-first). `x[l_max] = s_in` is always
clamped; `x[0] = s_out` is clamped while learning and free while the input alone is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pcbp.network import PCN

if TYPE_CHECKING:  # updates.py imports this module
    from pcbp.updates import Trace

Tensor = torch.Tensor


def feedforward_state(net: PCN, s_in: Tensor, s_out: Tensor | None = None) -> list[Tensor]:
    """Condition C1: every hidden `x^l_0 = y^l`; the output is clamped to `s_out` if given."""
    x = net.feedforward(s_in)
    if s_out is not None:
        x[0] = s_out
    return x


def predictions(net: PCN, x: list[Tensor]) -> list[Tensor]:
    """`μ^l = θ^{l+1} f(x^{l+1})` for `l = 0 … l_max − 1`."""
    return [net.predict(l, x[l + 1]) for l in range(net.l_max)]


def errors(x: list[Tensor], mu: list[Tensor]) -> list[Tensor]:
    """`ε^l = x^l − μ^l` for `l = 0 … l_max − 1`."""
    return [x_l - mu_l for x_l, mu_l in zip(x, mu)]


def energy(eps: list[Tensor]) -> Tensor:
    """`F = Σ_l ½‖ε^l‖²`, averaged over the mini-batch (one value per batch, a 0-d tensor)."""
    return sum(0.5 * (e * e).sum() for e in eps) / eps[0].shape[0]


def inference_step(
    net: PCN, x: list[Tensor], eps: list[Tensor], gamma: float, *, clamp_output: bool
) -> list[Tensor]:
    """One Euler step of gradient descent on `F` with rate `γ`, from the state at the start of the step.

    Hidden layers: `x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ (θ^l)ᵀ ε^{l−1})`; the free output:
    `x^0 ← x^0 − γ ε^0`; the input (and a clamped output) stay put.
    """
    new = list(x)
    if not clamp_output:
        new[0] = x[0] - gamma * eps[0]
    for l in range(1, net.l_max):
        feedback = net.df(x[l]) * (eps[l - 1] @ net.theta[l])
        new[l] = x[l] + gamma * (feedback - eps[l])
    return new


def hebbian(alpha: float, eps_post: Tensor, f_pre: Tensor) -> Tensor:
    """The local weight rule `Δθ^{l+1} = α ε^l f(x^{l+1})ᵀ`, averaged over the batch.

    It reads only the post-synaptic error `ε^l` and the pre-synaptic activity `f(x^{l+1})`.
    """
    return (alpha / eps_post.shape[0]) * (eps_post.T @ f_pre)


def hebbian_bias(alpha: float, eps_post: Tensor) -> Tensor:
    """`Δb^{l+1} = α ε^l` (a bias is a weight from a unit fixed at 1), averaged over the batch."""
    return alpha * eps_post.mean(dim=0)


def perturb_hidden(x: list[Tensor], sigma: float, seed: int = 0) -> list[Tensor]:
    """Add `N(0, σ²)` noise to every hidden value node: the way to break condition C1."""
    if sigma == 0:
        return x
    gen = torch.Generator(device=x[0].device).manual_seed(seed)
    noisy = list(x)
    for l in range(1, len(x) - 1):
        noise = torch.randn(x[l].shape, generator=gen, dtype=x[l].dtype, device=x[l].device)
        noisy[l] = x[l] + sigma * noise
    return noisy


def rest_state(net: PCN, s_in: Tensor) -> list[Tensor]:
    """Every node at 0 except the clamped input: a network before anything has been shown."""
    x = [torch.zeros(s_in.shape[0], n, dtype=s_in.dtype, device=s_in.device) for n in net.sizes]
    x[net.l_max] = s_in
    return x


SETTLE_RTOL_EPS = 64  # settle's default tolerance, in machine epsilons relative to the activity


def activity_scale(mu_l: Tensor) -> float:
    """`max(1, max|μ^l|)`: the size that a layer's rounding residue is relative to.

    An error `ε = x − μ` of a settled node is rounding of `μ`, so it grows with the activity;
    below 1 the residue is rounding of the weights and inputs instead, hence the floor.
    """
    return max(1.0, float(mu_l.abs().max()))


def settle_tolerance(dtype: torch.dtype, tol: float | None = None) -> float:
    """The relative tolerance `settle` uses: `tol`, or 64 machine epsilons of `dtype` by default."""
    return SETTLE_RTOL_EPS * torch.finfo(dtype).eps if tol is None else tol


def is_settled(mu: list[Tensor], eps: list[Tensor], tol: float) -> bool:
    """Every `max|ε^l| ≤ tol · max(1, max|μ^l|)`: the errors are rounding-sized for their activity."""
    return all(float(e.abs().max()) <= tol * activity_scale(m) for e, m in zip(eps, mu))


def settle(
    net: PCN,
    s_in: Tensor,
    *,
    gamma: float = 0.1,
    max_steps: int = 20_000,
    tol: float | None = None,
    x0: list[Tensor] | None = None,
    trace: Trace | None = None,
) -> tuple[list[Tensor], int]:
    """Relax with only the input clamped and the output free until every error is rounding-sized.

    The free network's energy minimum `F = 0` is the feedforward pass, so this is how the
    network reaches C1 by itself ("exact asymptotically"). Starts from `x0` or from rest.
    It stops when `max|ε^l| ≤ tol · max(1, max|μ^l|)` in every layer (`is_settled`): `tol` is
    relative to the activity and defaults to 64 machine epsilons. Returns the state and the
    number of steps taken; if `tol` was not reached, the number is `max_steps` and the caller
    must decide. A `Trace` records `x`, `μ`, `ε` at the start of every step.
    """
    tol = settle_tolerance(s_in.dtype, tol)
    x = rest_state(net, s_in) if x0 is None else list(x0)
    for t in range(max_steps):
        mu = predictions(net, x)
        eps = errors(x, mu)
        if trace is not None:
            trace.record(x, mu, eps)
        if is_settled(mu, eps, tol):
            return x, t
        x = inference_step(net, x, eps, gamma, clamp_output=False)
    return x, max_steps
