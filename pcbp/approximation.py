"""How well inference learning (IL) approximates backprop, and why it stops improving.

Measurements the chapter on PCNs and IL shares with the tests: the distance of a relaxed state
from the feedforward pass, the angle and the gap between two sets of updates, and two
small-error predictions (linearised around the feedforward pass):

- `absorbed_output_error`: at IL's equilibrium the output error is `ε^0* = C^{-1} δ^0` with
  `C = Σ_{l=0}^{l_max−1} P_l P_lᵀ`, `P_0 = I`, `P_l = J_0 ⋯ J_{l−1}`, `J_l = θ^{l+1} diag f'(y^{l+1})`,
  per sample: the hidden layers absorb part of BP's output error `δ^0`;
- `critical_gamma`: inference is gradient descent on `F`; near the feedforward pass `F` is
  quadratic in the hidden nodes with Hessian `H = AᵀA`, and the Euler steps are stable only
  for `γ < 2 / λ_max(H)`.
"""

from __future__ import annotations

import torch

from pcbp.network import PCN
from pcbp.rules import IL, autograd_updates
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def flatten(updates: Updates, net: PCN) -> Tensor:
    """Every update of `net`'s parameters as one float64 vector (a weight never updated counts as 0)."""
    return torch.cat([t.reshape(-1).double() for t in updates.tensors(net)])


def cosine_similarity(updates_a: Updates, updates_b: Updates, net: PCN) -> float:
    """`⟨a, b⟩ / (‖a‖‖b‖)` over all weights and biases together: 1 means the same direction."""
    a, b = flatten(updates_a, net), flatten(updates_b, net)
    denom = float(a.norm() * b.norm())
    if denom == 0:
        raise ValueError("cosine similarity of a zero update is undefined")
    return float(a @ b) / denom


def targets_near_output(net: PCN, s_in: Tensor, scale: float, *, seed: int = 0) -> Tensor:
    """Targets `y^0 + scale · ξ`, `ξ ~ N(0, 1)` fixed by `seed`: BP's output error is `δ^0 = scale · ξ`."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(s_in.shape[0], net.sizes[0], generator=gen, dtype=torch.float64)
    return net(s_in) + scale * noise.to(dtype=s_in.dtype, device=s_in.device)


def il_vs_bp(
    net: PCN, s_in: Tensor, s_out: Tensor, *, gamma: float = 0.1, T: int = 20, alpha: float = 0.1,
    rtol: float = 1e-9,
) -> dict[str, float]:
    """One mini-batch: IL's updates (rate `γ`, `T` steps) against autograd BP's (`net` unchanged).

    Returns `rel_err = ‖Δ_IL − Δ_BP‖/‖Δ_BP‖`, `abs_err = ‖Δ_IL − Δ_BP‖`, `cos` (cosine
    similarity), `norm_ratio = ‖Δ_IL‖/‖Δ_BP‖`, `bp_norm`, the energy at the first and last
    relaxation step (`energy_start`, `energy_end`) and `monotone` (1.0 if the energy never rose
    during relaxation by more than `rtol` relative, else 0.0). The slack covers rounding: an
    error `ε = x − μ` of size `s` carries a relative rounding error of about `1e-16 · |x| / s`, so
    `F` of a small output error wobbles by far more than one machine epsilon at equilibrium.
    """
    trace = Trace()
    il = IL(alpha, gamma=gamma, T=T)(net, s_in, s_out, apply=False, trace=trace)
    bp = autograd_updates(net, s_in, s_out, alpha)
    a, b = flatten(il, net), flatten(bp, net)
    F = trace.energies()
    diff, ref = float((a - b).norm()), float(b.norm())
    return {
        "rel_err": diff / ref,
        "abs_err": diff,
        "cos": float(a @ b) / float(a.norm() * b.norm()),
        "norm_ratio": float(a.norm()) / ref,
        "bp_norm": ref,
        "energy_start": float(F[0]),
        "energy_end": float(F[-1]),
        "monotone": float(bool((F[1:] <= F[:-1] * (1 + rtol)).all())),
    }


def max_distance_to_feedforward(net: PCN, s_in: Tensor, x: list[Tensor]) -> float:
    """`max_l max|x^l − y^l| / max|y^l|` over the non-input layers: 0 at the feedforward pass `y`."""
    y = net.feedforward(s_in)
    return max(float((x[l] - y[l]).abs().max() / y[l].abs().max()) for l in range(net.l_max))


def _jacobians(net: PCN, y: list[Tensor], b: int) -> list[Tensor]:
    """`J_l = θ^{l+1} diag f'(y^{l+1})` of sample `b`, for `l = 0 … l_max − 2` (hidden presynapses)."""
    return [net.theta[l + 1] * net.df(y[l + 1][b]) for l in range(net.l_max - 1)]


def absorbed_output_error(net: PCN, s_in: Tensor, delta0: Tensor) -> Tensor:
    """The output error at IL's equilibrium, to first order in `δ^0`: `ε^0* = C^{-1} δ^0` per sample.

    `C = Σ_l P_l P_lᵀ ⪰ I` (see the module's docstring), so `‖ε^0*‖ ≤ ‖δ^0‖`. Exact for a
    linear network; for a nonlinear one it is the limit of small output errors.
    """
    y = net.feedforward(s_in)
    out = torch.empty_like(delta0)
    eye = torch.eye(net.sizes[0], dtype=delta0.dtype, device=delta0.device)
    for b in range(delta0.shape[0]):
        P, C = eye, eye.clone()
        for J in _jacobians(net, y, b):
            P = P @ J
            C = C + P @ P.T
        out[b] = torch.linalg.solve(C, delta0[b])
    return out


def il_limit_updates(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float) -> Updates:
    """What IL converges to for long relaxation and small errors: BP's update for `ε^0*`.

    At equilibrium the hidden errors obey BP's recursion started from the absorbed output
    error `ε^0*` instead of `δ^0`; near the feedforward pass that is BP with targets `y^0 + ε^0*`.
    """
    y0 = net(s_in)
    return autograd_updates(net, s_in, y0 + absorbed_output_error(net, s_in, s_out - y0), alpha)


def energy_hessian(net: PCN, s_in: Tensor, b: int = 0) -> Tensor:
    """Hessian of sample `b`'s energy in its hidden nodes `x^1 … x^{l_max−1}` at the feedforward pass.

    Linearised, the errors are `ε = d − A u` (`u` the hidden displacements) with
    `ε^0 = δ^0 − J_0 u^1` and `ε^l = u^l − J_l u^{l+1}`; the terms with `f''` multiply `ε`,
    which vanishes at small errors, so `H = AᵀA`. Shape `(Σ hidden widths,)*2`.
    """
    y = net.feedforward(s_in)
    Js = _jacobians(net, y, b)
    rows, cols = net.sizes[: net.l_max], net.sizes[1 : net.l_max]
    r0 = [sum(rows[:i]) for i in range(len(rows))]
    c0 = [sum(cols[:i]) for i in range(len(cols))]
    A = torch.zeros(sum(rows), sum(cols), dtype=s_in.dtype, device=s_in.device)
    for l in range(net.l_max):  # the block row of ε^l
        if l >= 1:  # + u^l (hidden layer l is column block l − 1)
            A[r0[l] : r0[l] + rows[l], c0[l - 1] : c0[l - 1] + cols[l - 1]] = torch.eye(rows[l], dtype=A.dtype)
        if l + 1 <= net.l_max - 1:  # − J_l u^{l+1}
            A[r0[l] : r0[l] + rows[l], c0[l] : c0[l] + cols[l]] = -Js[l]
    return A.T @ A


def critical_gamma(net: PCN, s_in: Tensor) -> float:
    """`2 / λ_max`, `λ_max` the largest eigenvalue of `H` over the batch: for `γ` above it,
    inference near the feedforward pass oscillates with growing amplitude (Euler steps on a
    quadratic). `inf` for a network without hidden layers (nothing relaxes)."""
    if net.l_max < 2:
        return float("inf")
    lam = max(float(torch.linalg.eigvalsh(energy_hessian(net, s_in, b)).max()) for b in range(s_in.shape[0]))
    return 2.0 / lam
