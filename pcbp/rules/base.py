"""The one interface every learning rule shares: a network and a mini-batch in, updates out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from pcbp.checks import check_batch, check_finite_updates, check_finite_weights, check_positive
from pcbp.network import PCN
from pcbp.pcn import hebbian, hebbian_bias
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor


class Rule(ABC):
    """A learning rule with learning rate `α`.

    `rule(net, s_in, s_out)` returns the weight updates for one mini-batch and, unless
    `apply=False`, applies them to `net`. Pass a `Trace` to record `x`, `μ`, `ε` at every step.
    """

    name: str = "rule"
    faithful: str | None = None  # set by a rule that skips still nodes: the rule that can trace them

    def __init__(self, alpha: float) -> None:
        self.alpha = check_positive("alpha (the learning rate α)", alpha)

    def __call__(
        self,
        net: PCN,
        s_in: Tensor,
        s_out: Tensor,
        *,
        apply: bool = True,
        trace: Trace | None = None,
    ) -> Updates:
        if trace is not None and self.faithful is not None:
            raise ValueError(f"{self.name} skips nodes that cannot change and so cannot trace; "
                             f"trace with {self.faithful}(..., trace=...), which computes the same updates")
        check_batch(net, s_in, s_out)
        check_finite_weights(net)
        with torch.no_grad():
            return self.run(net, s_in, s_out, apply=apply, trace=trace)

    @abstractmethod
    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        """Compute (and apply, if asked) the updates; inputs are already checked."""

    def learn(self, net: PCN, updates: Updates, l: int, eps_post: Tensor, x_pre: Tensor) -> None:
        """Add the local update of `θ^{l+1}` (and `b^{l+1}`) from `ε^l` and `x^{l+1}` to `updates`."""
        d_b = hebbian_bias(self.alpha, eps_post) if net.has_bias else None
        updates.add(l + 1, hebbian(self.alpha, eps_post, net.f(x_pre)), d_b)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"

    def learn_every_layer(
        self, net: PCN, errors: list[Tensor], values: list[Tensor], *, apply: bool
    ) -> Updates:
        """Every weight learns once, `Δθ^{l+1}` from `errors[l]` and `values[l + 1]`."""
        now, updates = Updates(), Updates()
        for l in range(net.l_max):
            self.learn(net, now, l, errors[l], values[l + 1])
        self.commit(net, now, updates, apply=apply)
        return updates

    def commit(self, net: PCN, now: Updates, total: Updates, *, apply: bool) -> None:
        """Check one step's updates are finite, apply them to `net` if asked, add them to `total`.

        A non-finite update raises before it reaches the weights, naming the weight and the fix.
        """
        check_finite_updates(now, self.name, total if apply else None)
        if apply:
            now.apply(net)
        total.merge(now)
