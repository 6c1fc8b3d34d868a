"""Backprop in the paper's notation, and `torch.autograd` as its independent oracle."""

from __future__ import annotations

import torch

from pcbp.network import PCN
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


def deltas(net: PCN, y: list[Tensor], s_out: Tensor) -> list[Tensor]:
    """`δ^0 = s_out − y^0`, `δ^l = f'(y^l) ⊙ (θ^l)ᵀ δ^{l−1}` for `l = 1 … l_max − 1`."""
    delta = [s_out - y[0]]
    for l in range(1, net.l_max):
        delta.append(net.df(y[l]) * (delta[l - 1] @ net.theta[l]))
    return delta


class BP(Rule):
    """Backprop with explicit deltas: `Δw^{l+1} = α δ^l f(y^{l+1})ᵀ`, averaged over the batch.

    This is SGD with rate `α` on `E = ½‖s_out − y^0‖²` averaged over the mini-batch.
    """

    name = "BP"

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        y = net.feedforward(s_in)
        return self.learn_every_layer(net, deltas(net, y, s_out), y, apply=apply)


def autograd_updates(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float) -> Updates:
    """The BP update by `torch.autograd`: `−α ∂E/∂θ` with `E = ½‖s_out − y^0‖²` batch-averaged.

    It shares nothing with the explicit rules but the forward pass, so it is their oracle.
    """
    params = {l: p.detach().clone().requires_grad_(True) for l, p in net.theta.items()}
    biases = {l: p.detach().clone().requires_grad_(True) for l, p in net.b.items()}
    h = s_in
    for l in range(net.l_max, 0, -1):
        h = net.f(h) @ params[l].T + (biases[l] if biases else 0)
    loss = 0.5 * ((s_out - h) ** 2).sum() / s_in.shape[0]
    grads = torch.autograd.grad(loss, list(params.values()) + list(biases.values()))
    n = len(params)
    return Updates(
        theta={l: -alpha * g for l, g in zip(params, grads[:n])},
        b={l: -alpha * g for l, g in zip(biases, grads[n:])},
    )


def sgd_step(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float) -> PCN:
    """A copy of `net` after one `torch.optim.SGD` step (rate `α`) on `E` by `loss.backward()`.

    What a PyTorch user would run instead of a rule: it shares neither the update path
    (`Updates.apply`) nor the deltas with pcbp, so it is the oracle for `apply=True`.
    """
    twin = net.clone()
    params = twin.parameters()
    with torch.enable_grad():
        for p in params:
            p.requires_grad_(True)
        h = s_in
        for l in range(twin.l_max, 0, -1):
            h = twin.f(h) @ twin.theta[l].T + (twin.b[l] if twin.b else 0)
        loss = 0.5 * ((s_out - h) ** 2).sum() / s_in.shape[0]
        optimizer = torch.optim.SGD(params, lr=alpha)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in params:
        p.requires_grad_(False)
        p.grad = None
    return twin


class AutogradSGD(Rule):
    """BP as a PyTorch user runs it: `loss.backward()` and `torch.optim.SGD.step()` (see `sgd_step`).

    The reference twin of every divergence measurement: a fault in pcbp's own update path cannot
    cancel out against it.
    """

    name = "BP (autograd + SGD)"

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        twin = sgd_step(net, s_in, s_out, self.alpha)
        updates = Updates(
            theta={l: twin.theta[l] - p for l, p in net.theta.items()},
            b={l: twin.b[l] - p for l, p in net.b.items()},
        )
        if apply:
            for mine, new in zip(net.parameters(), twin.parameters()):
                mine.copy_(new)
        return updates
