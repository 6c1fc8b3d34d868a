"""Z-IL: zero-divergence inference learning, exact backprop under conditions C1–C3."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import torch

from pcbp.checks import check_non_negative, check_positive
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, inference_step, perturb_hidden, predictions
from pcbp.rules.base import Rule
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

Schedule = Mapping[int, int | Iterable[int]]


class ZIL(Rule):
    """Z-IL: C1 start at the feedforward pass, C2 `θ^{l+1}` learns at step `t = l`, C3 `γ = 1`.

    Each condition can be broken on purpose: `init_noise` perturbs the hidden nodes at `t = 0`
    (C1), `schedule` maps every layer `l` to the step(s) at which `θ^{l+1}` learns (C2), `gamma`
    sets the inference rate (C3). `frozen` names layers `l` whose weight `θ^{l+1}` never learns
    (a schedule must name every other layer: a forgotten layer is an error, not a freeze).
    With `apply=True` each update is applied at its own step, during inference, while that
    step's value update still uses the weights from its start.
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
        frozen: Iterable[int] = (),
    ) -> None:
        super().__init__(alpha)
        self.gamma = check_positive("gamma (the inference rate γ)", gamma)
        self.schedule = None if schedule is None else {_layer(l): s for l, s in schedule.items()}
        self.init_noise = check_non_negative("init_noise (the C1 perturbation σ)", init_noise)
        self.seed = seed
        self.frozen = frozenset(_layer(l) for l in frozen)

    def steps_of(self, l_max: int) -> dict[int, tuple[int, ...]]:
        """For each layer `l` not frozen, the steps at which `θ^{l+1}` learns (C2: just `(l,)`)."""
        layers = set(range(l_max))
        for what, named in (("schedule", set(self.schedule or ())), ("frozen", self.frozen)):
            bad = sorted(named - layers)
            if bad:
                raise ValueError(
                    f"{what} names layer(s) {bad}, but this network's layers that own a weight are "
                    f"l = 0 … {l_max - 1} (θ^{{l+1}} learns at the step given for l)"
                )
        if self.schedule is None:
            return {l: (l,) for l in sorted(layers - self.frozen)}
        both, missing = sorted(set(self.schedule) & self.frozen), sorted(layers - set(self.schedule) - self.frozen)
        if both:
            raise ValueError(f"layer(s) {both} are both scheduled and frozen: drop them from one of the two")
        if missing:
            raise ValueError(
                f"schedule gives no step for layer(s) {missing}: give every layer its step(s) "
                f"(C2 is {{l: l}}), or freeze a layer on purpose with frozen={set(missing)}"
            )
        return {l: _as_steps(l, s) for l, s in sorted(self.schedule.items())}

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
                self.commit(net, now, updates, apply=True)
            if t < T - 1:
                x = inference_step(net, x, eps, self.gamma, clamp_output=True)
            if not self.weights_first:
                self.commit(net, now, updates, apply=apply)
        return updates


def _layer(l: object) -> int:
    """A layer index given as a whole number (not a bool or a float), else an error."""
    if isinstance(l, bool) or not isinstance(l, numbers.Integral):
        raise ValueError(f"layer index {l!r}: give a whole number l (θ^{{l+1}} is the weight layer l learns)")
    return int(l)


def _as_steps(l: int, steps: int | Iterable[int]) -> tuple[int, ...]:
    out = (steps,) if not isinstance(steps, Iterable) else tuple(steps)
    if not out or any(isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in out):
        raise ValueError(f"schedule[{l}] = {steps!r}: give one step or a list of steps, each an int ≥ 0")
    return out
