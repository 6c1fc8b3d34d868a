"""Weight transport and feedback alignment, measured: the experiments behind the reviewers' doubts (§8).

Three helpers, each answering one question a reviewer raised about the transported `(θ^l)ᵀ`:

* **training** (`train_feedback_runs`) — from one initial network and one batch order, BP and Z-IL
  with every kind of feedback `pcbp.feedback` offers (transport, a learned copy that starts equal,
  one that starts off by `δ`, Kolen–Pollack decay `λ`, a copy whose updates are noisy (`σ`), fixed
  random `B`), IL with random `B`, and feedback alignment written directly (`fa_updates`, the
  oracle of Z-IL with random `B`). Per run: the divergence of `θ` from BP's, the offset
  `‖B − θᵀ‖/‖θ‖`, and test accuracy;
* **Kolen–Pollack's rate** (`kp_rate`) — the fitted per-update contraction of `‖B − θᵀ‖` in a real run
  against the predicted `1 − λ`, with the tolerance that rounding allows;
* **the free equilibrium** (`free_equilibrium`, `feedback_step_jacobian_radius`) — with `B ≠ θᵀ` the
  inference step is no longer gradient descent on `F`, so nothing guarantees that the free network
  settles. Derivation [derived]: at the feedforward pass every `ε^l = 0`, so the step
  `x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ B^l ε^{l−1})` leaves every node where it is, whatever `B`: the
  pass is still a fixed point. Whether it attracts is linear algebra: with `z` the free nodes
  `x^0 … x^{l_max−1}` and `J = ∂ε/∂z` (identity blocks, `−θ^{l+1} diag f'(y^{l+1})` beside them),
  the term `f''(x^l) ⊙ (B^l ε^{l−1})` vanishes at `ε = 0`, and the step's Jacobian is
  `I − γ G J`, where `G` has identity blocks and `−diag f'(y^l) B^l` below them. With `B^l = (θ^l)ᵀ`,
  `G = Jᵀ` and `GJ = JᵀJ`, the Hessian of `F` (`pcbp.autonomy.relaxation_spectrum`). The pass attracts
  iff the spectral radius of `I − γGJ` is below 1: for some small `γ` iff every eigenvalue `μ` of `GJ`
  has `Re μ > 0`, namely for `γ < min 2 Re μ / |μ|²` (`stable_gamma_limit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pcbp.autonomy import distance_to_feedforward
from pcbp.checks import check_non_negative, check_positive, check_steps
from pcbp.compare import batch_seed, chance_accuracy, learned_accuracy
from pcbp.data import batches
from pcbp.feedback import (
    Feedback,
    FeedbackIL,
    FeedbackZIL,
    check_matrices,
    fa_updates,
    feedback_step,
    offset_norm,
    random_feedback,
)
from pcbp.metrics import accuracy, divergence, loss
from pcbp.network import PCN
from pcbp.pcn import errors, predictions, rest_state
from pcbp.rules.base import Rule
from pcbp.rules.bp import AutogradSGD
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

BP_RUN = "BP"
TRANSPORT = "Z-IL (transport)"
IDENTICAL = "Z-IL (copy, identical)"
MISMATCHED = "Z-IL (copy, mismatched δ)"
KOLEN_POLLACK = "Z-IL (Kolen-Pollack λ)"
NOISY = "Z-IL (copy, noisy updates σ)"
RANDOM = "Z-IL (random B)"
IL_RANDOM = "IL (random B)"
FA_DIRECT = "FA (direct)"
RUN_NAMES = (BP_RUN, TRANSPORT, IDENTICAL, MISMATCHED, KOLEN_POLLACK, NOISY, RANDOM, IL_RANDOM, FA_DIRECT)

MISMATCH_SEED_OFFSET = 2_000_003  # the mismatch D draws from seed + this: apart from θ's and random B's streams
NOISE_SEED_OFFSET = 3_000_017  # the noisy copy's update noise draws from seed + this


# --- feedback variants and the direct FA rule ---------------------------------------------------------------

def mismatched_copy(net: PCN, delta: float, seed: int = 0) -> dict[int, Tensor]:
    """`B^l = (θ^l)ᵀ + D^l` with `‖D^l‖ = δ‖θ^l‖` in every layer: a copy that starts off by a relative `δ`.

    `D^l` is Gaussian, drawn in float64 from `seed + MISMATCH_SEED_OFFSET` and scaled to its norm, so the
    starting offset `‖B − θᵀ‖/‖θ‖` is `δ` (to rounding) whatever the layer widths.
    """
    check_non_negative("delta (the copy's relative mismatch δ)", delta)
    gen = torch.Generator().manual_seed(seed + MISMATCH_SEED_OFFSET)
    out = {}
    for l, t in net.theta.items():
        d = torch.randn(t.T.shape, generator=gen, dtype=torch.float64)
        d = d * (delta * float(t.double().norm()) / float(d.norm()))
        out[l] = t.T + d.to(dtype=t.dtype, device=t.device)
    return out


class NoisyCopy(Feedback):
    """A learned copy whose every synapse takes its forward twin's update times `1 + σξ`, `ξ ~ N(0, 1)`.

    `ΔB^l = (Δθ^l)ᵀ ⊙ (1 + σξ)`: the local rule of `"copy"` with multiplicative noise in each plastic
    event, a fresh `ξ` per synapse and update. Noise enters `B`'s update only, so an identical start
    drifts: the offset after `K` updates is `Σ_k σ (Δθ_k)ᵀ ⊙ ξ_k`, a martingale, whose expected square is
    `Σ_synapses σ² Σ_k (Δθ_k)²` (`variance`, accumulated as training goes). `σ = 0` is `"copy"` bit for bit.
    """

    def __init__(self, net: PCN, sigma: float, *, B: Mapping[int, Tensor] | None = None, seed: int = 0) -> None:
        super().__init__(net, "copy", B=B)
        self.sigma = check_non_negative("sigma (the relative noise σ of B's updates)", sigma)
        self.generator = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
        self.variance = {l: torch.zeros_like(b, dtype=torch.float64) for l, b in self.B.items()}

    def learn(self, hebb: Updates) -> None:
        """`B^l ← B^l + (Δθ^l)ᵀ + σ (Δθ^l)ᵀ ⊙ ξ`; the noise variance `σ²(Δθ^l)²` adds to `variance`."""
        if self.sigma == 0:
            return super().learn(hebb)
        for l, d in hebb.theta.items():
            xi = torch.randn(d.T.shape, generator=self.generator, dtype=torch.float64)
            self.B[l].add_(d.T + self.sigma * d.T * xi.to(dtype=d.dtype, device=d.device))
            self.variance[l] += self.sigma**2 * d.T.double() ** 2

    def expected_offset_sq(self, layer: int | None = None) -> tuple[float, float]:
        """Mean and standard deviation of `‖B − θᵀ‖²` (of `B^layer` alone if given) that the noise so far predicts,
        from an identical start.

        Given the updates, each synapse's offset is Gaussian with variance `v` (`variance`): `‖off‖²` has
        mean `Σ v` and standard deviation `√(2 Σ v²)` (a sum of scaled χ²₁).
        """
        chosen = self.variance.values() if layer is None else [self.variance[layer]]
        v = torch.cat([x.flatten() for x in chosen])
        return float(v.sum()), float(2 * v.pow(2).sum()) ** 0.5

    def clone(self) -> NoisyCopy:
        twin = object.__new__(NoisyCopy)
        base = Feedback.clone(self)
        twin.__dict__.update(base.__dict__)
        twin.sigma = self.sigma
        twin.generator = torch.Generator()
        twin.generator.set_state(self.generator.get_state())
        twin.variance = {l: v.clone() for l, v in self.variance.items()}
        return twin

    def __repr__(self) -> str:
        return f"NoisyCopy(sigma={self.sigma!r}, sizes={self.sizes})"


class DirectFA(Rule):
    """Feedback alignment as an ANN runs it: forward pass, deltas through `B^l`, SGD (`fa_updates`).

    Shares no inference code with `FeedbackZIL`: the reference that Z-IL with the same fixed `B` must equal.
    """

    name = "FA (direct)"

    def __init__(self, alpha: float, feedback: Feedback) -> None:
        super().__init__(alpha)
        if not isinstance(feedback, Feedback) or feedback.B is None:
            raise TypeError(f"feedback={feedback!r}: DirectFA needs a Feedback that stores B, e.g. Feedback(net, "
                            "'fixed', seed=0)")
        self.feedback = feedback

    def run(self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None) -> Updates:
        self.feedback.check(net)
        now, total = fa_updates(net, self.feedback, s_in, s_out, self.alpha), Updates()
        self.commit(net, now, total, apply=apply)
        return total


# --- training every kind of feedback side by side -----------------------------------------------------------

@dataclass
class FeedbackRun:
    """One run of `train_feedback_runs`.

    At `iterations[k]` updates (0 = the start): `divergence[k]`, the relative distance of all weights and
    biases from BP's (as `pcbp.compare`); `fa_divergence[k]`, the same from the "FA (direct)" run (`nan` if
    it was not trained); `offset[k] = ‖B − θᵀ‖/‖θ‖` (weights only; `nan` where no `B` is
    stored: BP, transport). For learned `B` also after every update `u = 0 … U`: `offset_steps[u] = ‖B − θᵀ‖`
    and, for the deterministic rules ("copy", Kolen–Pollack), `offset_rounding[u − 1]`, the bound
    `‖1.001 eps (|θ_u| + |θ_{u+1}| + |B_u| + |B_{u+1}|)‖` on what rounding adds to the offset in update `u`
    (see `kp_rate`). `norms[k]` is the norm of all weights and biases at `iterations[k]`, `update_norms[u]`
    that of update `u` (what a rounding budget for the divergence needs). Test loss and accuracy at
    the start and the end; `seconds` spent in the rule.
    """

    name: str
    rule: str
    feedback: Feedback | None
    iterations: list[int] = field(default_factory=list)
    divergence: list[float] = field(default_factory=list)
    offset: list[float] = field(default_factory=list)
    fa_divergence: list[float] = field(default_factory=list)
    norms: list[float] = field(default_factory=list)
    offset_steps: list[float] = field(default_factory=list)
    offset_rounding: list[float] = field(default_factory=list)
    update_norms: list[float] = field(default_factory=list)
    loss_start: float = math.nan
    loss: float = math.nan
    accuracy_start: float = math.nan
    accuracy: float = math.nan
    seconds: float = 0.0
    net: PCN | None = None

    @property
    def final_divergence(self) -> float:
        return self.divergence[-1] if self.divergence else math.nan

    @property
    def final_offset(self) -> float:
        return self.offset[-1] if self.offset else math.nan


@dataclass
class FeedbackRuns:
    """Every run of one `train_feedback_runs` call, BP first, and the settings they share.

    `records()` gives the tidy rows a plot needs (one per run and recorded iteration), `summary()` one row
    per run; `chance` and `learned` are `pcbp.compare`'s chance accuracy and the 5-sd bar to beat.
    """

    runs: dict[str, FeedbackRun]
    sizes: tuple[int, ...]
    alpha: float
    epochs: int
    batch_size: int
    seed: int
    settings: dict[str, float]
    n_train: int
    n_test: int
    chance: float = math.nan
    learned: float = math.nan
    seconds: float = 0.0

    def __getitem__(self, name: str) -> FeedbackRun:
        return self.runs[name]

    def records(self) -> list[dict[str, object]]:
        """`{"run", "iteration", "divergence", "fa_divergence", "offset"}` per run and recorded iteration."""
        return [{"run": name, "iteration": it, "divergence": d, "fa_divergence": f, "offset": o}
                for name, run in self.runs.items()
                for it, d, f, o in zip(run.iterations, run.divergence, run.fa_divergence, run.offset)]

    def summary(self) -> list[dict[str, object]]:
        """Per run: its rule, final divergence, offsets at start and end, accuracies, loss and time."""
        return [{"run": name, "rule": run.rule, "divergence": run.final_divergence,
                 "fa_divergence": run.fa_divergence[-1] if run.fa_divergence else math.nan,
                 "offset_start": run.offset[0] if run.offset else math.nan, "offset": run.final_offset,
                 "accuracy_start": run.accuracy_start, "accuracy": run.accuracy, "loss": run.loss,
                 "seconds": run.seconds} for name, run in self.runs.items()]


def random_fixed(net: PCN, seed: int, scale: float = 1.0) -> Feedback:
    """Fixed random feedback `scale · B`, `B = random_feedback(net, seed)` (`N(0, 1/n_{l−1})` entries)."""
    if scale == 1.0:
        return Feedback(net, "fixed", seed=seed)
    check_positive("b_scale (the scale of random B)", scale)
    return Feedback(net, "fixed", B={l: scale * b for l, b in random_feedback(net, seed).items()})


def _make_run(
    name: str, net: PCN, alpha: float, seed: int, delta: float, decay: float, sigma: float, gamma: float, T: int,
    b_scale: float,
) -> tuple[Rule, Feedback | None]:
    """The rule (and its feedback, which lives beside `net`) of one named run."""
    if name == BP_RUN:
        return AutogradSGD(alpha), None
    if name == FA_DIRECT:
        fb = random_fixed(net, seed, b_scale)
        return DirectFA(alpha, fb), fb
    if name == IL_RANDOM:
        fb = random_fixed(net, seed, b_scale)
        return FeedbackIL(alpha, gamma=gamma, T=T, feedback=fb), fb
    fb = {
        TRANSPORT: lambda: Feedback(net, "transport"),
        IDENTICAL: lambda: Feedback(net, "copy"),
        MISMATCHED: lambda: Feedback(net, "copy", B=mismatched_copy(net, delta, seed)),
        KOLEN_POLLACK: lambda: Feedback(net, "kolen-pollack", B=mismatched_copy(net, delta, seed), decay=decay),
        NOISY: lambda: NoisyCopy(net, sigma, seed=seed),
        RANDOM: lambda: random_fixed(net, seed, b_scale),
    }[name]()
    return FeedbackZIL(alpha, feedback=fb), fb


def _check_names(runs: Sequence[str]) -> list[str]:
    """The runs asked for, BP first (always trained: it is the reference); unknown names are an error."""
    names = [runs] if isinstance(runs, str) else list(runs)
    bad = [n for n in names if n not in RUN_NAMES]
    if bad:
        raise ValueError(f"unknown run(s) {bad}: choose from {list(RUN_NAMES)}")
    return [BP_RUN] + [n for n in RUN_NAMES if n in names and n != BP_RUN]


def weight_norm(net: PCN) -> float:
    """`‖θ‖`: the Frobenius norm of all weights together (no biases), in float64."""
    return sum(float(t.double().pow(2).sum()) for t in net.theta.values()) ** 0.5


def relative_offset(net: PCN, fb: Feedback | None) -> float:
    """`‖B − θᵀ‖/‖θ‖`, or `nan` where no `B` is stored (BP, transport)."""
    if fb is None or fb.B is None:
        return math.nan
    return offset_norm(net, fb) / weight_norm(net)


def offset_rounding_bound(before: tuple[dict, dict], net: PCN, fb: Feedback) -> float:
    """`‖1.001 eps (|θ_u| + |θ_{u+1}| + |B_u| + |B_{u+1}|)‖`: what rounding can add to `B − θᵀ` in one update.

    Each copy's update is `w ← fl(w + fl(Δ − fl(λw)))` (Kolen–Pollack; "copy": `λ = 0`), the same `Δ` in
    both; the three roundings add at most `(eps/2)(λ|w| + |Δ − λw| + |w'|)(1 + O(eps)) ≤ 1.001 eps (|w| + |w'|)`
    per weight, the two copies adding their bounds.
    """
    eps = torch.finfo(net.dtype).eps
    theta0, B0 = before
    total = 0.0
    for l, b in fb.B.items():
        e = 1.001 * eps * (theta0[l].T.abs() + net.theta[l].T.abs() + B0[l].abs() + b.abs())
        total += float(e.double().pow(2).sum())
    return total**0.5


def train_feedback_runs(
    sizes: Sequence[int],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor, Tensor] | None = None,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    alpha: float = 0.05,
    seed: int = 0,
    runs: Sequence[str] = RUN_NAMES,
    activation: str = "tanh",
    bias: bool = False,
    delta: float = 0.5,
    decay: float = 0.02,
    sigma: float = 0.1,
    gamma: float = 0.1,
    T: int = 20,
    b_scale: float = 1.0,
    eval_every: int = 1,
    dtype: torch.dtype = torch.float64,
    keep_nets: bool = True,
) -> FeedbackRuns:
    """Train `PCN(sizes, activation, seed=seed)` with BP and every named run, on the same mini-batches.

    `runs` picks from `RUN_NAMES` (BP is always trained, as the reference). The mismatched copy and
    Kolen–Pollack start from `B = θᵀ + D`, `‖D^l‖ = δ‖θ^l‖` (`mismatched_copy`); Kolen–Pollack decays both
    copies by `λ = decay` per update; the noisy copy starts identical and learns with relative noise `σ`
    (`NoisyCopy`); random `B` (`Feedback(net, "fixed", seed=seed)`, times `b_scale`) is one draw shared by
    Z-IL, IL (rate `γ`, `T` steps) and direct FA. Where training diverges (FA can, at a rate BP survives:
    too large a `B` or `α`), the weights grow without bound and the records say so; nothing is stopped.
    Epoch `e` visits `train = (s_in, s_out)` in the order `batches(..., seed=batch_seed(seed, e))`, as
    `compare_rules` does. Divergence and offsets are recorded at the start, every `eval_every` updates and
    after the last; `test = (s_in, s_out, labels)` adds test loss and accuracy at the start and the end.
    Kolen–Pollack's `λ` decays `θ` too: with `λ = 0.05` and ~60 updates the weights shrink twentyfold and
    learning suffers, so the default is 0.02.
    """
    check_steps("epochs", epochs)
    check_steps("eval_every", eval_every)
    check_positive("alpha (the learning rate α)", alpha)
    names = _check_names(runs)
    start = time.perf_counter()
    s_in, s_out = (v.to(dtype) for v in train)
    if test is not None:
        test = (test[0].to(dtype), test[1].to(dtype), test[2])
    init = PCN(sizes, activation, bias=bias, dtype=dtype, seed=seed)
    nets, steppers, out = {}, {}, {}
    for name in names:
        nets[name] = init.clone()
        rule, fb = _make_run(name, nets[name], alpha, seed, delta, decay, sigma, gamma, T, b_scale)
        steppers[name] = rule
        out[name] = FeedbackRun(name, rule.name, fb)

    def record(it: int) -> None:
        for name, run in out.items():
            run.iterations.append(it)
            run.divergence.append(divergence(nets[name], nets[BP_RUN]))
            run.offset.append(relative_offset(nets[name], run.feedback))
            run.fa_divergence.append(divergence(nets[name], nets[FA_DIRECT]) if FA_DIRECT in nets else math.nan)
            run.norms.append(sum(float(p.double().pow(2).sum()) for p in nets[name].parameters()) ** 0.5)

    def evaluate(final: bool) -> None:
        if test is None:
            return
        for name, run in out.items():
            l, a = loss(nets[name], test[0], test[1]), accuracy(nets[name], test[0], test[2])
            if final:
                run.loss, run.accuracy = l, a
            else:
                run.loss_start, run.accuracy_start = l, a

    evaluate(final=False)
    record(0)
    for run in out.values():
        if run.feedback is not None and run.feedback.learns:
            run.offset_steps.append(offset_norm(nets[run.name], run.feedback))
    total = epochs * -(-len(s_in) // batch_size)
    it = 0
    for epoch in range(epochs):
        for x, y in batches(s_in, s_out, batch_size, seed=batch_seed(seed, epoch)):
            for name, rule in steppers.items():
                run, net = out[name], nets[name]
                fb = run.feedback
                learned = fb is not None and fb.learns
                exact = learned and not isinstance(fb, NoisyCopy)
                before = ({l: t.clone() for l, t in net.theta.items()}, {l: b.clone() for l, b in fb.B.items()}) \
                    if exact else None
                t0 = time.perf_counter()
                upd = rule(net, x, y)
                run.seconds += time.perf_counter() - t0
                run.update_norms.append(sum(float(d.double().pow(2).sum()) for d in upd.tensors(net)) ** 0.5)
                if learned:
                    run.offset_steps.append(offset_norm(net, fb))
                if exact:
                    run.offset_rounding.append(offset_rounding_bound(before, net, fb))
            it += 1
            if it % eval_every == 0 or it == total:
                record(it)
    evaluate(final=True)
    for name, run in out.items():
        run.net = nets[name] if keep_nets else None
    chance = learned_acc = math.nan
    if test is not None:
        chance, learned_acc = chance_accuracy(test[2], init.sizes[0]), learned_accuracy(test[2], init.sizes[0])
    return FeedbackRuns(
        runs=out, sizes=init.sizes, alpha=alpha, epochs=epochs, batch_size=batch_size, seed=seed,
        settings={"delta": delta, "decay": decay, "sigma": sigma, "gamma": gamma, "T": T, "b_scale": b_scale},
        n_train=len(s_in), n_test=0 if test is None else len(test[0]), chance=chance, learned=learned_acc,
        seconds=time.perf_counter() - start,
    )


# --- Kolen–Pollack's contraction rate ---------------------------------------------------------------------

@dataclass
class RateFit:
    """`fitted = exp(slope)` of a least-squares line through `log ‖B − θᵀ‖` against the update count,
    the `predicted` `1 − λ`, and `tolerance`, the most rounding can move the fit (`nan` without bounds).
    `ratios[u] = ‖off_{u+1}‖/‖off_u‖`, `taus[u]` their rounding tolerances."""

    fitted: float
    predicted: float
    tolerance: float
    ratios: np.ndarray
    taus: np.ndarray

    @property
    def error(self) -> float:
        """`|fitted − predicted|`."""
        return abs(self.fitted - self.predicted)

    @property
    def updates(self) -> int:
        return len(self.ratios)


def kp_rate(
    run: FeedbackRun | Sequence[float], decay: float, *, rounding: Sequence[float] | None = None,
    entries: int | None = None, dtype: torch.dtype = torch.float64,
) -> RateFit:
    """The fitted per-update contraction of `‖B − θᵀ‖` against the predicted `1 − λ` (`λ = decay`).

    Exactly, under the local rule, `off_{u+1} = (1 − λ) off_u + e_u`, `e_u` the rounding of update `u`
    (bounded by `offset_rounding[u]`); measuring a norm `‖fl(B − θᵀ)‖` adds a relative error
    `ρ ≤ (N + 2) eps` (`N` entries). Hence each measured ratio `r_u` lies within
    `τ_u = 3ρ(1 − λ) + 1.01 ‖e_u‖/‖off_u‖` of `1 − λ`. With equally spaced points the least-squares slope is
    a weighted mean of the `log r_u` (positive weights summing to 1), so
    `|slope − log(1 − λ)| ≤ max_u τ_u/(1 − λ − τ_u) + 64 eps`, which bounds `|fitted − (1 − λ)|` by
    `(1 − λ) expm1(that)`: the `tolerance`. Give a `FeedbackRun` (its `offset_steps` and
    `offset_rounding`, `entries` from its feedback), or the norms themselves (then `rounding` and
    `entries` for a tolerance).
    """
    norms = run
    if isinstance(run, FeedbackRun):
        norms = run.offset_steps
        rounding = run.offset_rounding if rounding is None else rounding
        if entries is None and run.feedback is not None and run.feedback.B is not None:
            entries = sum(b.numel() for b in run.feedback.B.values())
            dtype = run.feedback.B[1].dtype
    norms = np.asarray(norms, dtype=np.float64)
    if len(norms) < 3 or not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        raise ValueError(f"kp_rate needs ≥ 3 finite positive offset norms (one per update), got {len(norms)}: "
                         "train a run with learned B from a mismatched copy")
    lam = check_non_negative("decay (the weight decay λ)", decay)
    ratios = norms[1:] / norms[:-1]
    slope = float(np.polyfit(np.arange(len(norms), dtype=np.float64), np.log(norms), 1)[0])
    predicted = 1.0 - lam
    taus, tolerance = np.full(len(ratios), math.nan), math.nan
    if rounding is not None and len(rounding) and entries is not None:
        if len(rounding) != len(ratios):
            raise ValueError(f"rounding has {len(rounding)} bounds for {len(ratios)} updates: give one per update")
        eps = torch.finfo(dtype).eps
        rho = (entries + 2) * eps
        taus = 3 * rho * predicted + 1.01 * np.asarray(rounding, dtype=np.float64) / norms[:-1]
        if np.all(taus < predicted):
            tolerance = predicted * math.expm1(float(np.max(taus / (predicted - taus))) + 64 * eps)
        else:
            tolerance = math.inf
    return RateFit(math.exp(slope), predicted, tolerance, ratios, taus)


# --- the free equilibrium with feedback weights ------------------------------------------------------------

def as_feedback(net: PCN, B: Feedback | Mapping[int, Tensor] | None) -> Feedback:
    """`B` as a `Feedback` of `net`: itself, `"fixed"` with the matrices given, or transport for `None`."""
    if B is None:
        return Feedback(net, "transport")
    if isinstance(B, Feedback):
        B.check(net)
        return B
    return Feedback(net, "fixed", B=B)


def free_equilibrium(
    net: PCN,
    B: Feedback | Mapping[int, Tensor] | None,
    s_in: Tensor,
    gamma: float,
    steps: int,
    *,
    every: int = 1,
    x0: list[Tensor] | None = None,
) -> np.ndarray:
    """Distance to the feedforward pass while the free network relaxes with feedback through `B`.

    Input clamped, output free, from rest (or `x0`): `steps` of `pcbp.feedback.feedback_step` at rate `γ`
    (with `B = None`, or `B^l = (θ^l)ᵀ`, that is `pcbp.pcn.settle`'s step bit for bit). Returns
    `distance_to_feedforward` at `t = 0, every, …, steps`; `inf` once the state blows up. The feedforward
    pass is a fixed point for every `B` (module docstring); `feedback_step_jacobian_radius` says whether
    it attracts.
    """
    check_steps("every", every)
    if steps < 0:
        raise ValueError(f"steps={steps}: give steps ≥ 0")
    check_positive("gamma (the inference rate γ)", gamma)
    fb = as_feedback(net, B)
    with torch.no_grad():
        y = net.feedforward(s_in)
        x = rest_state(net, s_in) if x0 is None else list(x0)
        out = [distance_to_feedforward(net, x, y)]
        for t in range(1, steps + 1):
            if not math.isfinite(out[-1]):
                out.extend([math.inf] * (steps // every + 1 - len(out)))
                break
            x = feedback_step(net, fb, x, errors(x, predictions(net, x)), gamma, clamp_output=False)
            if t % every == 0:
                d = distance_to_feedforward(net, x, y)
                out.append(d if math.isfinite(d) else math.inf)
    return np.array(out)


def _offsets(net: PCN) -> list[int]:
    """Start index of each free layer `0 … l_max − 1` in the stacked free state `z`, and its length last."""
    return np.concatenate([[0], np.cumsum(net.sizes[: net.l_max])]).astype(int).tolist()


def relaxation_operator(net: PCN, B: Feedback | Mapping[int, Tensor] | None, s_in: Tensor) -> Tensor:
    """`GJ` at the feedforward pass of one sample `s_in` (shape `(1, n_in)`), in float64.

    `J = ∂ε/∂z`: identity, with `−θ^{l+1} diag f'(y^{l+1})` at block `(l, l+1)`; `G`: identity, with
    `−diag f'(y^l) B^l` at block `(l, l−1)`. The step's Jacobian there is `I − γ GJ`.
    """
    if s_in.shape[0] != 1:
        raise ValueError(f"relaxation_operator takes one sample, shape (1, n_in), got {tuple(s_in.shape)}")
    mats = as_feedback(net, B).matrices(net)
    with torch.no_grad():
        y = net.feedforward(s_in)
        off = _offsets(net)
        n = off[-1]
        J, G = torch.eye(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
        for l in range(net.l_max - 1):
            J[off[l] : off[l + 1], off[l + 1] : off[l + 2]] = -(net.theta[l + 1].double()
                                                               * net.df(y[l + 1][0]).double()[None, :])
            G[off[l + 1] : off[l + 2], off[l] : off[l + 1]] = -(net.df(y[l + 1][0]).double()[:, None]
                                                               * mats[l + 1].double())
        return G @ J


def feedback_step_jacobian(
    net: PCN, B: Feedback | Mapping[int, Tensor] | None, s_in: Tensor, gamma: float
) -> Tensor:
    """`I − γ GJ`: the Jacobian of one free `feedback_step` at the feedforward pass of one sample."""
    K = relaxation_operator(net, B, s_in)
    return torch.eye(K.shape[0], dtype=K.dtype) - gamma * K


def feedback_spectrum(net: PCN, B: Feedback | Mapping[int, Tensor] | None, s_in: Tensor) -> np.ndarray:
    """Eigenvalues `μ` of `GJ` for every sample of the batch: a complex array `(batch, Σ_{l<l_max} n_l)`.

    With `B = θᵀ` they are real and equal the Hessian's (`relaxation_spectrum`); with other `B` they may
    be complex, and an eigenvalue with `Re μ ≤ 0` makes the feedforward pass repel at every rate `γ`.
    """
    check_matrices(net, as_feedback(net, B).matrices(net))
    return np.stack([np.linalg.eigvals(relaxation_operator(net, B, s_in[b : b + 1]).numpy())
                     for b in range(s_in.shape[0])])


def feedback_step_jacobian_radius(
    net: PCN, B: Feedback | Mapping[int, Tensor] | None, s_in: Tensor, gamma: float
) -> float:
    """The largest spectral radius over the batch of the step's Jacobian `I − γGJ` at the feedforward pass.

    Below 1: the pass attracts (linearly, each sample on its own), the distance falling eventually by
    this factor per step; above 1: it repels. With `B = θᵀ` it is `linear_rate(*relaxation_spectrum(...), γ)`.
    """
    check_positive("gamma (the inference rate γ)", gamma)
    return float(np.abs(1 - gamma * feedback_spectrum(net, B, s_in)).max())


def stable_gamma_limit(net: PCN, B: Feedback | Mapping[int, Tensor] | None, s_in: Tensor) -> float:
    """The largest `γ` at which the feedforward pass still attracts: `min 2 Re μ / |μ|²` over the batch.

    `|1 − γμ| < 1` iff `0 < γ < 2 Re μ/|μ|²`; 0 if some `Re μ ≤ 0` (no rate settles: the pass repels).
    With `B = θᵀ` it is `2/λ_max` of the Hessian.
    """
    mu = feedback_spectrum(net, B, s_in)
    if np.any(mu.real <= 0):
        return 0.0
    return float((2 * mu.real / np.abs(mu) ** 2).min())


__all__ = [
    "BP_RUN", "FA_DIRECT", "IDENTICAL", "IL_RANDOM", "KOLEN_POLLACK", "MISMATCHED", "NOISY", "RANDOM", "RUN_NAMES",
    "TRANSPORT", "DirectFA", "FeedbackRun", "FeedbackRuns", "NoisyCopy", "RateFit", "as_feedback",
    "feedback_spectrum", "feedback_step_jacobian", "feedback_step_jacobian_radius", "free_equilibrium", "kp_rate",
    "mismatched_copy", "offset_rounding_bound", "random_fixed", "relative_offset", "relaxation_operator",
    "stable_gamma_limit", "train_feedback_runs", "weight_norm",
]
