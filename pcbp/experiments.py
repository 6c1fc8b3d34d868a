"""Small experiments that tests, chapters and `pcbp verify` share: each returns a number."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pcbp.data import batches, teacher_student
from pcbp.metrics import divergence, relative_error, update_error
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, inference_step, perturb_hidden, predictions
from pcbp.rules import ZIL, Rule, autograd_updates, deltas
from pcbp.rules.bp import AutogradSGD, sgd_step
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def random_problem(
    sizes: Sequence[int],
    activation: str = "tanh",
    *,
    bias: bool = False,
    batch: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[PCN, Tensor, Tensor]:
    """A random network (random biases too, if any) and a random mini-batch `(s_in, s_out)`."""
    net = PCN(sizes, activation, bias=bias, dtype=dtype, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for b in net.b.values():
        b.copy_(0.3 * torch.randn(b.shape, generator=gen, dtype=torch.float64))
    s_in = torch.randn(batch, net.sizes[-1], generator=gen, dtype=torch.float64).to(dtype)
    s_out = torch.randn(batch, net.sizes[0], generator=gen, dtype=torch.float64).to(dtype)
    return net, s_in, s_out


MODES = (True, False)  # `apply=`: training applies updates during inference; `False` only reports them


def relu_sweep(n: int, seed: int = 0):
    """Small random ReLU networks, narrow enough that whole samples often have zero deltas."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        depth, width = int(rng.choice((2, 3, 4, 5, 6, 8))), int(rng.integers(2, 9))
        sizes = (int(rng.integers(1, 6)),) + (width,) * (depth - 1) + (int(rng.integers(1, 8)),)
        yield random_problem(sizes, "relu", bias=bool(rng.integers(2)), batch=int(rng.integers(1, 9)), seed=i)


def error_vs_autograd(rule: Rule, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool = False) -> float:
    """Relative error of one mini-batch's updates from `rule` against autograd BP; `net` is unchanged.

    With `apply=True`, the mode training uses, the rule trains a copy, so updates applied during
    inference act on its later steps; the result is then the larger of two errors: the returned
    updates against autograd's, and the weight change against one `torch.optim.SGD` step's.
    """
    reference = autograd_updates(net, s_in, s_out, rule.alpha)
    if not apply:
        return update_error(net, rule(net, s_in, s_out, apply=False), reference)
    trained = net.clone()
    returned = update_error(net, rule(trained, s_in, s_out, apply=True), reference)
    return max(returned, step_error(net, trained, sgd_step(net, s_in, s_out, rule.alpha)))


def step_error(before: PCN, after: PCN, reference: PCN) -> float:
    """`‖(after − before) − (reference − before)‖ / ‖reference − before‖`: two training steps compared."""
    start = before.parameters()
    return relative_error(
        [a - p for a, p in zip(after.parameters(), start)], [r - p for r, p in zip(reference.parameters(), start)]
    )


def rounding_floor(net: PCN, s_in: Tensor, s_out: Tensor) -> float:
    """`eps · max_l ‖y^l‖ / ‖δ^l‖`: the relative error Z-IL's `δ^l = (y^l + δ^l) − y^l` cannot beat.

    Z-IL forms each delta as a difference of value nodes, so where `|δ| ≪ |y|` (a long chain of
    small slopes) its error is rounding of `y`, not of `δ`: the paper's own rounding argument.
    """
    y = net.feedforward(s_in)
    delta = deltas(net, y, s_out)
    ratios = [float(y[l].norm() / d.norm()) for l, d in enumerate(delta) if l > 0 and d.norm() > 0]
    return torch.finfo(net.dtype).eps * max(ratios, default=1.0)


def twin_divergence(
    rule: Rule, net: PCN, s_in: Tensor, s_out: Tensor, *, steps: int, batch_size: int, seed: int = 0
) -> list[float]:
    """Train a copy of `net` with `rule` and another by autograd + SGD (`AutogradSGD`) on the same
    batches, `steps` updates; return the divergence between the two after each update."""
    a, b, bp, out = net.clone(), net.clone(), AutogradSGD(rule.alpha), []
    epoch = 0
    while len(out) < steps:
        for x, y in batches(s_in, s_out, batch_size, seed=seed + epoch):
            rule(a, x, y)
            bp(b, x, y)
            out.append(divergence(a, b))
            if len(out) == steps:
                break
        epoch += 1
    return out


def error_wave(net: PCN, s_in: Tensor, s_out: Tensor, gamma: float = 1.0) -> tuple[Trace, list[Tensor]]:
    """Run Z-IL (weights left unchanged) with a trace; return the trace and BP's deltas `δ^l`."""
    trace = Trace()
    ZIL(1.0, gamma=gamma)(net, s_in, s_out, apply=False, trace=trace)
    return trace, deltas(net, net.feedforward(s_in), s_out)


def lemma_errors(net: PCN, s_in: Tensor, s_out: Tensor) -> tuple[float, float]:
    """The lemma under C1 and C3: returns `max_{t<l} |ε^l_t|` and `max_l ‖ε^l_l − δ^l‖/‖δ^l‖`."""
    trace, delta = error_wave(net, s_in, s_out)
    before = max(
        (float(trace.eps[t][l].abs().max()) for l in range(net.l_max) for t in range(l)), default=0.0
    )
    at = max(_relative(trace.eps[l][l], delta[l]) for l in range(net.l_max))
    return before, at


def _relative(a: Tensor, b: Tensor) -> float:
    """`‖a − b‖ / ‖b‖`, or `‖a − b‖` where `b = 0` (a dead ReLU layer has `δ = 0`)."""
    diff, ref = float((a - b).norm()), float(b.norm())
    return diff / ref if ref > 0 else diff


def gamma_law_error(net: PCN, s_in: Tensor, s_out: Tensor, *, gamma: float) -> float:
    """With only C3 broken: `max_l ‖ε^l_l − γ^l δ^l‖ / ‖γ^l δ^l‖` (0 up to rounding if the law holds)."""
    trace, delta = error_wave(net, s_in, s_out, gamma)
    return max(_relative(trace.eps[l][l], gamma**l * delta[l]) for l in range(net.l_max))


def dtype_divergence(
    make_rule: Callable[[], Rule], dtype: torch.dtype, *, sizes: Sequence[int] = (4, 16, 16, 8),
    n: int = 256, steps: int = 100, batch_size: int = 16, seed: int = 0,
) -> float:
    """Final divergence of a rule from BP after `steps` SGD updates on teacher-student data in `dtype`."""
    s_in, s_out = teacher_student(n, sizes, seed=seed, dtype=dtype)
    net = PCN(sizes, dtype=dtype, seed=seed)
    return twin_divergence(make_rule(), net, s_in, s_out, steps=steps, batch_size=batch_size)[-1]


def il_reference(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float, gamma: float, T: int,
                 init_noise: float = 0.0, seed: int = 0, trace: Trace | None = None) -> Updates:
    """IL written out step by step with `pcbp.pcn` (no in-place tricks): the oracle for the fast `IL.run`."""
    x = perturb_hidden(feedforward_state(net, s_in, s_out), init_noise, seed)
    for t in range(T + 1):
        mu = predictions(net, x)
        eps = errors(x, mu)
        if trace is not None:
            trace.record(x, mu, eps)
        if t < T:
            x = inference_step(net, x, eps, gamma, clamp_output=True)
    updates = Updates()
    for l in range(net.l_max):
        d_b = alpha * eps[l].mean(dim=0) if net.has_bias else None
        updates.add(l + 1, alpha * eps[l].T @ net.f(x[l + 1]) / s_in.shape[0], d_b)
    return updates


def step_floor(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float) -> float:
    """`eps · ‖θ + Δθ‖ / ‖Δθ‖` (`Δθ`: autograd's BP update): the relative error an applied step cannot beat.

    Applying an update rounds every `θ + Δθ` once, by up to half an ulp, so two trainers whose updates
    agree to rounding can still disagree by `eps · |θ + Δθ|` per weight: `error_vs_autograd(apply=True)`
    compares such weight changes and cannot resolve less, however exact the rule.
    """
    update = autograd_updates(net, s_in, s_out, alpha).tensors(net)
    after = [p.double() + d.double() for p, d in zip(net.parameters(), update)]
    return torch.finfo(net.dtype).eps * _norm(after) / _norm(update)


def _norm(tensors: Sequence[Tensor]) -> float:
    """Frobenius norm of all `tensors` together, in float64."""
    return sum(float(t.double().pow(2).sum()) for t in tensors) ** 0.5
