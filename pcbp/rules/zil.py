"""Z-IL: zero-divergence inference learning, exact backprop under conditions C1–C3."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from pcbp.checks import check_positive
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, inference_step, perturb_hidden, predictions
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

Schedule = Mapping[int, int | Iterable[int]]


class ZIL(Rule):
    """Z-IL: C1 start at the feedforward pass, C2 `θ^{l+1}` learns at step `t = l`, C3 `γ = 1`.

    Each condition can be broken on purpose: `init_noise` perturbs the hidden nodes at `t = 0`
    (C1), `schedule` maps a layer `l` to the step(s) at which `θ^{l+1}` learns (C2), `gamma`
    sets the inference rate (C3). With `apply=True` each update is applied at its own step,
    during inference, while that step's value update still uses the weights from its start.
    """

    name = "Z-IL"
    weights_first = False  # True: a step's weight update lands before its value update (wrong)

    def __init__(
        self,
        alpha: float,
        *,
        gamma: float = 1.0,
        schedule: Schedule | None = None,
        init_noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)
        self.schedule = None if schedule is None else {int(l): s for l, s in schedule.items()}
        self.init_noise = float(init_noise)
        self.seed = seed

    def steps_of(self, l_max: int) -> dict[int, tuple[int, ...]]:
        """For each layer `l`, the inference steps at which `θ^{l+1}` learns (C2: just `(l,)`)."""
        if self.schedule is None:
            return {l: (l,) for l in range(l_max)}
        bad = sorted(set(self.schedule) - set(range(l_max)))
        if bad:
            raise ValueError(
                f"schedule names layer(s) {bad}, but this network's layers that own a weight are "
                f"l = 0 … {l_max - 1} (θ^{{l+1}} learns at the step given for l)"
            )
        steps = {l: _as_steps(l, s) for l, s in self.schedule.items()}
        return steps

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        plan = self.steps_of(net.l_max)
        T = 1 + max((t for steps in plan.values() for t in steps), default=0)
        x = perturb_hidden(feedforward_state(net, s_in, s_out), self.init_noise, self.seed)
        updates = Updates()
        for t in range(T):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            now = Updates()
            for l, steps in plan.items():
                if t in steps:
                    self.learn(net, now, l, eps[l], x[l + 1])
            if self.weights_first:  # the wrong order, kept for the ablation
                now.apply(net)
            if t < T - 1:
                x = inference_step(net, x, eps, self.gamma, clamp_output=True)
            if apply and not self.weights_first:
                now.apply(net)
            updates.merge(now)
        return updates


def _as_steps(l: int, steps: int | Iterable[int]) -> tuple[int, ...]:
    out = (steps,) if not isinstance(steps, Iterable) else tuple(steps)
    if not out or any(not isinstance(t, int) or t < 0 for t in out):
        raise ValueError(f"schedule[{l}] = {steps!r}: give one step or a list of steps, each an int ≥ 0")
    return out
