"""Feedback weights: Z-IL and IL with separate matrices `B^l` in place of the transported `(θ^l)ᵀ`.

The PCN's inference step feeds the error of layer `l − 1` back to layer `l` as `(θ^l)ᵀ ε^{l−1}`:
the same weights as the forward prediction `μ^{l−1} = θ^l f(x^l)` (weight transport, the symmetry
the reviewers criticise). Here the feedback goes through a separate matrix `B^l`, shape
`(n_l, n_{l−1})` (that of `(θ^l)ᵀ`):

    x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ B^l ε^{l−1}).

A `Feedback` holds `B^1 … B^{l_max}` and says how they learn (`mode`):

- `"transport"`: `B^l = (θ^l)ᵀ` always (nothing stored): today's PCN.
- `"copy"`: `B^l` starts as `(θ^l)ᵀ` or as given, and learns by the local rule derived below.
- `"kolen-pollack"`: as `"copy"`, plus the same weight decay `λ` on both copies (Kolen & Pollack 1994).
- `"fixed"`: `B^l` random (or given) and never learned: feedback alignment (Lillicrap et al. 2016).

The local rule for `B` [derived]. The forward synapse `θ^{l+1}_{ij}` (from value node `x^{l+1}_j` to
error node `ε^l_i`) learns `Δθ^{l+1}_{ij} = α ε^l_i f(x^{l+1}_j)`. Its feedback twin `B^{l+1}_{ji}`
carries `ε^l_i` to value node `x^{l+1}_j`: its presynaptic quantity is `ε^l_i` and its
postsynaptic neuron's activity is `f(x^{l+1}_j)`, the same two numbers. So the Hebbian product of
its own pre- and postsynaptic quantities is

    ΔB^{l+1}_{ji} = α f(x^{l+1}_j) ε^l_i = Δθ^{l+1}_{ij},  i.e.  ΔB^{l+1} = α f(x^{l+1}) (ε^l)ᵀ = (Δθ^{l+1})ᵀ

(batch-averaged like `Δθ`), at the same step and from the same state as `Δθ^{l+1}`. Because the two
synapses form the same product of the same two numbers, the code takes `ΔB` as the transpose of the
one tensor `Δθ`: bit for bit the same update (a separately computed `f(x)ᵀ ε` could round differently
in the batch sum). Without decay, `B − θᵀ` then never changes: a mismatched copy keeps its offset.
Kolen–Pollack adds the decay to both: `θ ← (1 − λ)θ + Δθ`, `B ← (1 − λ)B + Δθᵀ`, hence
`B − θᵀ ← (1 − λ)(B − θᵀ)` at every update, exactly in real arithmetic.

`B` learns only when the rule applies its updates (`apply=True`), at the moment `θ` does. The
decay acts on weights only (biases have no feedback twin) and at each learning event of the
weight (once per presentation under C2 and in IL). `fa_updates` is the direct feedback-alignment
computation, independent of the PC code: the oracle that Z-IL with `"fixed"` feedback must equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from pcbp.checks import check_finite_weights
from pcbp.network import PCN
from pcbp.pcn import errors, feedforward_state, perturb_hidden, predictions
from pcbp.rules.il import IL, prediction
from pcbp.rules.zil import ZIL
from pcbp.updates import Trace, Updates

Tensor = torch.Tensor

MODES = ("transport", "copy", "kolen-pollack", "fixed")
_ALIASES = {"kp": "kolen-pollack", "kolenpollack": "kolen-pollack", "fa": "fixed", "feedback-alignment": "fixed"}
FEEDBACK_SEED_OFFSET = 1_000_003  # random B draws from seed + this, apart from PCN's stream for θ (seed)


def check_mode(mode: object) -> str:
    """`mode` as one of `MODES` (any case; `_` or space for `-`; `"kp"`, `"fa"` accepted), else an error."""
    if not isinstance(mode, str):
        raise ValueError(f"feedback mode {mode!r}: give one of {', '.join(map(repr, MODES))}")
    key = mode.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in MODES:
        raise ValueError(
            f"unknown feedback mode {mode!r}: use one of {', '.join(map(repr, MODES))} "
            "('transport' = today's (θ^l)ᵀ, 'copy' = learned B, 'kolen-pollack' = learned B with decay, "
            "'fixed' = random B, feedback alignment)"
        )
    return key


def check_decay(mode: str, decay: object) -> float:
    """The weight decay `λ`: a finite `0 ≤ λ < 1` for Kolen–Pollack, exactly 0 for every other mode."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not math.isfinite(decay):
        raise ValueError(f"decay (the weight decay λ) must be a finite number, got {decay!r}")
    if mode != "kolen-pollack":
        if decay != 0:
            raise ValueError(
                f"decay={decay!r} with mode={mode!r}: weight decay belongs to Kolen–Pollack; "
                "use Feedback(net, 'kolen-pollack', decay=λ), or drop decay"
            )
        return 0.0
    if not 0 <= decay < 1:
        raise ValueError(
            f"decay (the weight decay λ) must satisfy 0 ≤ λ < 1, got {decay!r}: each update scales θ and B "
            "by 1 − λ, so λ < 0 grows the offset B − θᵀ and λ ≥ 1 wipes or flips the weights "
            "(typical λ: 1e-3 … 1e-1; λ = 0 is mode 'copy')"
        )
    return float(decay)


def _feedback_layout(b: Tensor, like: Tensor) -> Tensor:
    """A new tensor equal to `b` (shape of `likeᵀ`) held in `like`'s memory layout, transposed.

    `B^l` is stored so that `B^l.T` is a contiguous `(n_{l−1}, n_l)` tensor, like `θ^l`: with
    `B^l = (θ^l)ᵀ` the feedback product `ε^{l−1} @ B^l.T` is then the very operation of weight
    transport, `ε^{l−1} @ θ^l`, and rounds the same way (bit for bit).
    """
    return b.detach().T.to(dtype=like.dtype, device=like.device).clone(memory_format=torch.contiguous_format).T


def check_matrices(net: PCN, B: object, what: str = "B") -> dict[int, Tensor]:
    """`B` as `{l: B^l}` for `l = 1 … l_max`, each a finite tensor of shape `(n_l, n_{l−1})`, else an error."""
    if not isinstance(B, Mapping):
        raise TypeError(
            f"{what} must be a mapping {{l: B^l}} for l = 1 … {net.l_max} (B^l of shape (n_l, n_{{l−1}}), "
            f"that of (θ^l)ᵀ), got {type(B).__name__}; e.g. {{l: t.T.clone() for l, t in net.theta.items()}}"
        )
    layers = set(range(1, net.l_max + 1))
    if set(B) != layers:
        raise ValueError(
            f"{what} has layers {sorted(B, key=str)}, but {net!r} needs exactly l = 1 … {net.l_max} "
            "(B^l carries ε^{l−1} back to layer l)"
        )
    out = {}
    for l in sorted(layers):
        b, want = B[l], (net.sizes[l], net.sizes[l - 1])
        if not isinstance(b, Tensor) or not b.is_floating_point():
            raise TypeError(f"{what}[{l}] must be a floating-point torch.Tensor of shape {want}, got {b!r:.60}")
        if tuple(b.shape) != want:
            hint = " (that is θ^l's own shape: pass its transpose, B^l.T)" if tuple(b.shape) == want[::-1] else ""
            raise ValueError(
                f"{what}[{l}] has shape {tuple(b.shape)}, expected {want} = (n_{l}, n_{l - 1}), the shape of "
                f"(θ^{l})ᵀ: B^l carries layer {l - 1}'s error back to layer {l}{hint}"
            )
        if not bool(torch.isfinite(b).all()):
            raise ValueError(f"{what}[{l}] holds a NaN or infinite value: give finite feedback weights")
        out[l] = b
    return out


def random_feedback(net: PCN, seed: int = 0) -> dict[int, Tensor]:
    """Random `B^l_{ji} ~ N(0, 1/n_{l−1})` (scaled by the width it reads from, as `θ^l` is by its own).

    Drawn in float64 from a generator seeded with `seed + FEEDBACK_SEED_OFFSET`, so that the draws do
    not repeat the network's own weights (`PCN` draws `θ` from `seed`), then cast to the network's dtype.
    """
    gen = torch.Generator().manual_seed(seed + FEEDBACK_SEED_OFFSET)
    out = {}
    for l in range(1, net.l_max + 1):
        b = torch.randn(net.sizes[l], net.sizes[l - 1], generator=gen, dtype=torch.float64)
        out[l] = (b / net.sizes[l - 1] ** 0.5).to(dtype=net.dtype, device=net.device)
    return out


class Feedback:
    """The feedback matrices `B^l` of one network and how they learn (`mode`, see the module docstring).

    `Feedback(net, "fixed", seed=1)` draws a random `B`; `Feedback(net, "copy")` starts `B^l = (θ^l)ᵀ`
    (a copy, not a view); `B={l: B^l}` gives the start yourself ("copy", "kolen-pollack", "fixed").
    `B` is state, like `net.theta`: it belongs to one network and changes when that network learns.
    """

    def __init__(
        self, net: PCN, mode: str = "transport", *, B: Mapping[int, Tensor] | None = None,
        decay: float = 0.0, seed: int = 0,
    ) -> None:
        self.mode = check_mode(mode)
        self.decay = check_decay(self.mode, decay)
        self.sizes = net.sizes
        self.B: dict[int, Tensor] | None = None
        if self.mode == "transport":
            if B is not None:
                raise ValueError("mode 'transport' uses (θ^l)ᵀ itself and stores no B: drop B, or pick "
                                 "mode 'copy', 'kolen-pollack' or 'fixed' to start from the B given")
            return
        if B is None:
            B = random_feedback(net, seed) if self.mode == "fixed" else {l: t.T for l, t in net.theta.items()}
        self.B = {l: _feedback_layout(b, net.theta[l]) for l, b in check_matrices(net, B).items()}

    @property
    def learns(self) -> bool:
        """True for the modes whose `B` learns (`"copy"`, `"kolen-pollack"`)."""
        return self.mode in ("copy", "kolen-pollack")

    def check(self, net: PCN) -> None:
        """Raise unless this feedback fits `net`: the same layer widths, dtype and device."""
        if net.sizes != self.sizes:
            raise ValueError(f"this Feedback was built for sizes {self.sizes}, not {net.sizes}: "
                             "build one for this network, Feedback(net, mode, ...)")
        if self.B is not None and (self.B[1].dtype != net.dtype or self.B[1].device != net.device):
            raise ValueError(f"the feedback B is {self.B[1].dtype} on {self.B[1].device} but the network is "
                             f"{net.dtype} on {net.device}: build the Feedback from the converted network")

    def matrix(self, net: PCN, l: int) -> Tensor:
        """The `(n_{l−1}, n_l)` matrix `M` with `ε^{l−1} @ M = (B^l ε^{l−1})` batch-first: `θ^l` or `B^l.T`."""
        return net.theta[l] if self.B is None else self.B[l].T

    def matrices(self, net: PCN) -> dict[int, Tensor]:
        """`{l: B^l}` as used now (for `"transport"`: the views `(θ^l)ᵀ`)."""
        return {l: net.theta[l].T for l in net.theta} if self.B is None else dict(self.B)

    def weight_updates(self, net: PCN, hebb: Updates) -> Updates:
        """The weights' change for Hebbian updates `hebb`: `Δθ − λθ` under Kolen–Pollack, else `hebb` itself."""
        if not self.decay:
            return hebb
        return Updates(theta={l: d - self.decay * net.theta[l] for l, d in hebb.theta.items()}, b=dict(hebb.b))

    def learn(self, hebb: Updates) -> None:
        """`B^l ← B^l + (Δθ^l)ᵀ − λB^l` for every weight in `hebb` ("copy": λ = 0); other modes: nothing.

        The same operations, elementwise, as `θ ← θ + (Δθ − λθ)`: equal copies stay equal bit for bit.
        """
        if not self.learns:
            return
        for l, d in hebb.theta.items():
            self.B[l].add_(d.T - self.decay * self.B[l] if self.decay else d.T)

    def clone(self) -> Feedback:
        """An independent copy (new tensors, same layout): the feedback of a cloned network."""
        twin = object.__new__(Feedback)
        twin.mode, twin.decay, twin.sizes = self.mode, self.decay, self.sizes
        twin.B = None if self.B is None else {l: _feedback_layout(b, b.T) for l, b in self.B.items()}
        return twin

    def __repr__(self) -> str:
        decay = f", decay={self.decay!r}" if self.mode == "kolen-pollack" else ""
        return f"Feedback(mode={self.mode!r}, sizes={self.sizes}{decay})"


def offsets(net: PCN, feedback: Feedback) -> dict[int, Tensor]:
    """`B^l − (θ^l)ᵀ` for every layer: what "copy" keeps and Kolen–Pollack shrinks by `1 − λ` per update."""
    return {l: b - net.theta[l].T for l, b in feedback.matrices(net).items()}


def offset_norm(net: PCN, feedback: Feedback) -> float:
    """`‖B − θᵀ‖`: the Frobenius norm over all layers of `B^l − (θ^l)ᵀ`, in float64."""
    return sum(float(d.double().pow(2).sum()) for d in offsets(net, feedback).values()) ** 0.5


def feedback_step(
    net: PCN, feedback: Feedback, x: list[Tensor], eps: list[Tensor], gamma: float, *, clamp_output: bool = True
) -> list[Tensor]:
    """`pcbp.pcn.inference_step` with the feedback through `B^l`: `x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ B^l ε^{l−1})`.

    The same expression, term for term, as `inference_step`; with `"transport"` it is that step bit for bit.
    """
    new = list(x)
    if not clamp_output:
        new[0] = x[0] - gamma * eps[0]
    for l in range(1, net.l_max):
        back = net.df(x[l]) * (eps[l - 1] @ feedback.matrix(net, l))
        new[l] = x[l] + gamma * (back - eps[l])
    return new


def _check_feedback(feedback: object) -> Feedback | None:
    """`feedback` if it is a `Feedback` or None (plain weight transport), else an error naming the fix."""
    if feedback is None or isinstance(feedback, Feedback):
        return feedback
    raise TypeError(
        f"feedback={feedback!r}: pass a Feedback built for the network, e.g. "
        "feedback=Feedback(net, 'fixed', seed=0), or None for weight transport"
    )


class FeedbackZIL(ZIL):
    """Z-IL with feedback weights: `ZIL(alpha, **options)` whose inference step uses `feedback`'s `B^l`.

    `feedback=None` is `ZIL` itself (its own `run`). Otherwise each step is `ZIL.run`'s, with
    `feedback_step` for the values, `Feedback.weight_updates` for the weights (decay under Kolen–Pollack)
    and `Feedback.learn` for `B`, applied after the value update, at the same step as `θ`.
    With `"fixed"` feedback, C1–C3 make every update equal the feedback-alignment update `fa_updates`.
    """

    def __init__(self, alpha: float, *, feedback: Feedback | None = None, **options: object) -> None:
        super().__init__(alpha, **options)  # type: ignore[arg-type]
        self.feedback = _check_feedback(feedback)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "Z-IL" if self.feedback is None else f"Z-IL ({self.feedback.mode} feedback)"

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        fb = self.feedback
        if fb is None:
            return super().run(net, s_in, s_out, apply=apply, trace=trace)
        fb.check(net)
        plan = self.steps_of(net.l_max)
        T = 1 + max((t for steps in plan.values() for t in steps), default=0)
        x = perturb_hidden(feedforward_state(net, s_in, s_out), self.init_noise, self.seed)
        updates = Updates()
        for t in range(T):
            mu = predictions(net, x)
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            hebb = Updates()
            for l, steps in plan.items():
                if t in steps:
                    self.learn(net, hebb, l, eps[l], x[l + 1])
            now = fb.weight_updates(net, hebb)
            if self.weights_first:  # the wrong order, kept for the ablation (as in ZIL)
                self.commit(net, now, updates, apply=True)
                fb.learn(hebb)
            if t < T - 1:
                x = feedback_step(net, fb, x, eps, self.gamma)
            if not self.weights_first:
                self.commit(net, now, updates, apply=apply)
                if apply:
                    fb.learn(hebb)
        return updates


class FeedbackIL(IL):
    """IL with feedback weights: `IL(alpha, **options)` whose relaxation feeds errors back through `B^l`.

    `feedback=None` is `IL` itself. Otherwise the relaxation is `IL.run`'s in-place loop with `B^l`
    in place of `(θ^l)ᵀ`, then every weight learns once (decay under Kolen–Pollack) and, if applied, `B`
    with it. Note: with `B ≠ θᵀ` the relaxation is no longer gradient descent on `F`.
    """

    def __init__(self, alpha: float, *, feedback: Feedback | None = None, **options: object) -> None:
        super().__init__(alpha, **options)  # type: ignore[arg-type]
        self.feedback = _check_feedback(feedback)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "IL" if self.feedback is None else f"IL ({self.feedback.mode} feedback)"

    def run(
        self, net: PCN, s_in: Tensor, s_out: Tensor, *, apply: bool, trace: Trace | None
    ) -> Updates:
        fb = self.feedback
        if fb is None:
            return super().run(net, s_in, s_out, apply=apply, trace=trace)
        fb.check(net)
        top, hidden = net.l_max - 1, range(1, net.l_max)
        y = net.feedforward(s_in)
        x = perturb_hidden([s_out, *(y[l].clone() for l in hidden), s_in], self.init_noise, self.seed)
        mu_top = y[top]
        theta_t = {l: net.theta[l].T.contiguous() for l in range(1, top + 1)}
        back = {l: fb.matrix(net, l) for l in hidden}  # B^l (batch-first), fixed during relaxation
        fx = {l: net.f(x[l]) for l in hidden}
        for t in range(self.T + 1):
            mu = [prediction(net, l, fx[l + 1], theta_t[l + 1]) for l in range(top)] + [mu_top]
            eps = errors(x, mu)
            if trace is not None:
                trace.record(x, mu, eps)
            if t < self.T:
                for l in hidden:  # x^l ← x^l + γ f'(x^l) ⊙ B^l ε^{l−1} − γ ε^l, in place
                    x[l].addcmul_(net.activation.derivative(x[l], fx[l]), eps[l - 1] @ back[l], value=self.gamma)
                    x[l].sub_(eps[l], alpha=self.gamma)
                    fx[l] = net.f(x[l])
        hebb, updates = Updates(), Updates()
        for l in range(net.l_max):
            self.learn(net, hebb, l, eps[l], x[l + 1])
        self.commit(net, fb.weight_updates(net, hebb), updates, apply=apply)
        if apply:
            fb.learn(hebb)
        return updates


def fa_deltas(net: PCN, B: Mapping[int, Tensor] | Feedback, s_in: Tensor, s_out: Tensor) -> tuple[list, list]:
    """Feedback alignment's forward values `y^l` and deltas `δ^0 = s_out − y^0`, `δ^l = f'(y^l) ⊙ (B^l δ^{l−1})`.

    Its own forward pass (no `pcbp.pcn`, no `PCN.feedforward`): the oracle shares only the weights.
    """
    mats = check_matrices(net, B.matrices(net) if isinstance(B, Feedback) else B)
    y = [s_in] * (net.l_max + 1)
    for l in range(net.l_max, 0, -1):
        y[l - 1] = net.f(y[l]) @ net.theta[l].T + (net.b[l] if net.b else 0)
    delta = [s_out - y[0]]
    for l in range(1, net.l_max):
        delta.append(net.df(y[l]) * (delta[l - 1] @ mats[l].T))
    return y, delta


def fa_updates(
    net: PCN, B: Mapping[int, Tensor] | Feedback, s_in: Tensor, s_out: Tensor, alpha: float
) -> Updates:
    """The feedback-alignment updates `Δθ^{l+1} = α δ^l f(y^{l+1})ᵀ` (and `Δb^{l+1} = α δ^l`), batch-averaged.

    As `BP`, with `B^l` in place of `(θ^l)ᵀ` in the deltas (`fa_deltas`); with `B^l = (θ^l)ᵀ` it is BP.
    `B` is `{l: B^l}` or a `Feedback`; `net` is not changed.
    """
    check_finite_weights(net)
    with torch.no_grad():
        y, delta = fa_deltas(net, B, s_in, s_out)
        n = s_in.shape[0]
        out = Updates()
        for l in range(net.l_max):
            out.add(l + 1, alpha * (delta[l].T @ net.f(y[l + 1])) / n, alpha * delta[l].mean(dim=0) if net.b else None)
        return out


__all__ = [
    "MODES", "Feedback", "FeedbackIL", "FeedbackZIL", "check_decay", "check_matrices", "check_mode", "fa_deltas",
    "fa_updates", "feedback_step", "offset_norm", "offsets", "random_feedback",
]
