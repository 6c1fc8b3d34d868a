"""How well inference learning (IL) approximates backprop, and why it stops improving.

Measurements the chapter on PCNs and IL shares with the tests: the distance of a relaxed state
from the feedforward pass, the angle and the gap between two sets of updates, and two
small-error predictions (linearised around the feedforward pass):

- `absorbed_output_error`: at IL's equilibrium the output error is `ε^0* = C^{-1} δ^0` with
  `C = Σ_{l=0}^{l_max−1} P_l P_lᵀ`, `P_0 = I`, `P_l = J_0 ⋯ J_{l−1}`, `J_l = θ^{l+1} diag f'(y^{l+1})`,
  per sample: the hidden layers absorb part of BP's output error `δ^0`;
- `critical_gamma`: inference is gradient descent on `F`; near the feedforward pass `F` is
  quadratic in the hidden nodes with Hessian `H = AᵀA`, and the Euler steps are stable only
  for `γ < 2 / λ_max(H)`;
- `contraction_factor`: the same steps shrink the distance to the minimum by at most
  `max |1 − γλ(H)|` per step, the asymptotic rate of `settle` (output free) and of IL's relaxation.
"""

from __future__ import annotations

import torch

from pcbp.metrics import update_error
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
    rtol: float = 1e-9, trace: Trace | None = None, limit: bool = False,
) -> dict[str, float]:
    """One mini-batch: IL's updates (rate `γ`, `T` steps) against autograd BP's (`net` unchanged).

    Returns `rel_err = ‖Δ_IL − Δ_BP‖/‖Δ_BP‖`, `abs_err = ‖Δ_IL − Δ_BP‖`, `cos` (cosine
    similarity), `norm_ratio = ‖Δ_IL‖/‖Δ_BP‖`, `bp_norm`, the energy at the first and last
    relaxation step (`energy_start`, `energy_end`) and `monotone` (1.0 if the energy never rose
    during relaxation by more than `rtol` relative, else 0.0). The slack covers rounding: an
    error `ε = x − μ` of size `s` carries a relative rounding error of about `1e-16 · |x| / s`, so
    `F` of a small output error wobbles by far more than one machine epsilon at equilibrium.
    With `limit=True` it adds `lim_err`, the relative error against `il_limit_updates` (the
    small-error equilibrium prediction), from the same run. The relaxation is recorded in `trace`
    if one is given (to look at the states, e.g. `kink_crossings`), else in a fresh one.
    """
    trace = Trace() if trace is None else trace
    il = IL(alpha, gamma=gamma, T=T)(net, s_in, s_out, apply=False, trace=trace)
    bp = autograd_updates(net, s_in, s_out, alpha)
    a, b = flatten(il, net), flatten(bp, net)
    F = trace.energies()
    diff, ref = float((a - b).norm()), float(b.norm())
    extra = {"lim_err": update_error(net, il, il_limit_updates(net, s_in, s_out, alpha))} if limit else {}
    return {
        "rel_err": diff / ref,
        "abs_err": diff,
        "cos": float(a @ b) / float(a.norm() * b.norm()),
        "norm_ratio": float(a.norm()) / ref,
        "bp_norm": ref,
        "energy_start": float(F[0]),
        "energy_end": float(F[-1]),
        "monotone": float(bool((F[1:] <= F[:-1] * (1 + rtol)).all())),
        **extra,
    }


def il_updates_without_relaxation(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float) -> Updates:
    """IL's update after `T = 0` relaxation steps: BP's update of `θ^1` (and `b^1`), nothing else.

    At the clamped feedforward start `ε^0 = s_out − y^0 = δ^0` and every hidden error is 0, so
    only the output weights learn: the baseline that relaxation has to improve on.
    """
    bp = autograd_updates(net, s_in, s_out, alpha)
    return Updates(theta={1: bp.theta[1]}, b={1: bp.b[1]} if 1 in bp.b else {})


def kink_crossings(net: PCN, s_in: Tensor, trace: Trace) -> int:
    """How many hidden nodes (sample, unit) were on the other side of 0 from `y^l` at some recorded step.

    0 is the kink of ReLU and leaky ReLU: a relaxation in which no node crosses it stays in one
    linear piece of `f`, where `F` is exactly quadratic with the Hessian `H` of the feedforward
    pass, so the linearisation (`critical_gamma`, `absorbed_output_error`) holds without error.
    """
    y = net.feedforward(s_in)
    crossed = 0
    for l in range(1, net.l_max):
        side = y[l] > 0
        flipped = torch.zeros_like(side)
        for x_t in trace.x:
            flipped |= (x_t[l] > 0) != side
        crossed += int(flipped.sum())
    return crossed


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


def energy_hessian(net: PCN, s_in: Tensor, b: int = 0, *, clamp_output: bool = True) -> Tensor:
    """Hessian of sample `b`'s energy in its free nodes at the feedforward pass: the hidden nodes
    `x^1 … x^{l_max−1}`, and with `clamp_output=False` the output `x^0` too (first).

    Linearised, the errors are `ε = d − A u` (`u` the free nodes' displacements) with
    `ε^0 = δ^0 − J_0 u^1` (clamped) or `ε^0 = u^0 − J_0 u^1` (free) and `ε^l = u^l − J_l u^{l+1}`;
    the terms with `f''` multiply `ε`, which vanishes at small errors (and is 0 at the free
    network's minimum, where this Hessian is exact), so `H = AᵀA`. Shape `(Σ free widths,)*2`.
    """
    y = net.feedforward(s_in)
    Js = _jacobians(net, y, b)
    first = 1 if clamp_output else 0  # the first free layer
    rows, cols = net.sizes[: net.l_max], net.sizes[first : net.l_max]
    r0 = [sum(rows[:i]) for i in range(len(rows))]
    c0 = [sum(cols[:i]) for i in range(len(cols))]
    A = torch.zeros(sum(rows), sum(cols), dtype=s_in.dtype, device=s_in.device)
    for l in range(net.l_max):  # the block row of ε^l
        if l >= first:  # + u^l (free layer l is column block l − first)
            c = c0[l - first]
            A[r0[l] : r0[l] + rows[l], c : c + rows[l]] = torch.eye(rows[l], dtype=A.dtype)
        if l + 1 <= net.l_max - 1:  # − J_l u^{l+1}
            c = c0[l + 1 - first]
            A[r0[l] : r0[l] + rows[l], c : c + rows[l + 1]] = -Js[l]
    return A.T @ A


def _eigenvalues(net: PCN, s_in: Tensor, clamp_output: bool) -> list[Tensor]:
    """The eigenvalues of `H` (`energy_hessian`) for every sample of the batch."""
    return [torch.linalg.eigvalsh(energy_hessian(net, s_in, b, clamp_output=clamp_output))
            for b in range(s_in.shape[0])]


def critical_gamma(net: PCN, s_in: Tensor, *, clamp_output: bool = True) -> float:
    """`2 / λ_max`, `λ_max` the largest eigenvalue of `H` over the batch: for `γ` above it,
    inference near the feedforward pass oscillates with growing amplitude (Euler steps on a
    quadratic). `inf` for a clamped network without hidden layers (nothing relaxes)."""
    if clamp_output and net.l_max < 2:
        return float("inf")
    return 2.0 / max(float(lam.max()) for lam in _eigenvalues(net, s_in, clamp_output))


def contraction_factor(net: PCN, s_in: Tensor, gamma: float, *, clamp_output: bool = True) -> float:
    """`ρ = max |1 − γλ|` over the eigenvalues `λ` of `H` and the batch: near the feedforward pass one
    inference step `u ← u − γ(Hu − g)` shrinks the distance to the relaxation's fixed point by at
    most `ρ`, and by `ρ` exactly in the slowest mode, so `ρ^t` is the asymptotic rate (`< 1` iff
    `γ < critical_gamma`). With `clamp_output=False`, the rate at which `settle` reaches the
    feedforward pass. `0.0` for a clamped network without hidden layers (nothing relaxes)."""
    if clamp_output and net.l_max < 2:
        return 0.0
    return max(float((1 - gamma * lam).abs().max()) for lam in _eigenvalues(net, s_in, clamp_output))
