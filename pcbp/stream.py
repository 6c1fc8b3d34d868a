"""Fa-Z-IL on a continuous stream: self-arming gates, no reset, no clock, no shared signal.

`FaZIL` re-arms every gate when the output is clamped, and starts every presentation from a
freshly settled state: two events shared by all nodes (`phi_inputs("fazil")`). Here samples
follow one another with nothing reset. For each sample the input alone is clamped for `N` steps
(the output is free and the network settles from wherever the last sample left it), then input
and target together for `M` steps. Every error node arms itself from its own history and fires
once, when the error wave reaches it (`self_arming_gate`); every weight is plastic at every step.

Dynamics. An error node sends on `Φ(ε)`, the signal its own plasticity reads, as in
`FaZILQuiet`, while each value node still leaks toward its prediction by its own error:
`x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ (θ^l)ᵀ Φ(ε^{l−1}))`, free output `x^0 ← x^0 − γε^0`. Why: with the
full feedback `(θ^l)ᵀ ε^{l−1}` the free network is gradient descent on `F`, unstable at `γ = 1`
wherever the Hessian's largest eigenvalue exceeds 2 (`relaxation_spectrum`; about 4–6 for
small tanh nets), while C3 needs `γ = 1` once the target is on; a rate switched at clamping
would be one more shared signal. With gated feedback no gate fires while the output is free
(below), so the free step is `x^l ← μ^l`: the feedforward sweep, which reaches `F = 0` in exactly
`l_max` steps at `γ = 1` from any state (dead-beat; `settled_at`). The wave front is Z-IL's:
ahead of it every error is 0, so the leak term does not touch it and `ε^l_l = γ^l δ^l`.

Why nothing fires while the output is free. A hidden node fires only if it is `driven`: its
value node was moved in the last step by gated feedback, i.e. by a node of layer `l − 1` that
fired. An output node is driven only in the step its target arrives (the teacher moved its value
node). So every firing sits on a chain back to a target onset, one layer per step: layer `l` can
fire only `l` steps after an onset. With `M ≥ l_max` every such step lies inside the clamped
phase; the errors that change when the target is released and the next input arrives are not
driven, and are also caused by moving predictions, so they never pass Φ.

Requirements (γ = 1): the output settles `l_max` steps after an input change and arms `k_arm`
steps later, so `N ≥ l_max + k_arm`; layer `l` fires `l` steps after the onset, so `M ≥ l_max`.
With `k_arm ≥ l_max − 1`, an armed output certifies C1 locally: after an input change that moves
its prediction by more than `τ`, the output is still for at most `l_max − 2` steps before the change
reaches it (at step `l_max − 1`), so `k_arm` still steps can only come after the network settled.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from pcbp.checks import check_batch, check_non_negative, check_positive, check_steps
from pcbp.metrics import divergence
from pcbp.network import PCN
from pcbp.pcn import errors, hebbian, hebbian_bias, is_settled, predictions, rest_state, settle_tolerance
from pcbp.rules.bp import sgd_step
from pcbp.rules.fazil import FaZIL, driven_mask, gated_feedback
from pcbp.updates import Updates

Tensor = torch.Tensor

GATES = ("fazil", "stream")
PHIS = ("feedback", "still", "driven", "departure")  # the exact gate first; the others drop checks
LIPSCHITZ = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "leaky_relu": 1.0, "linear": 1.0}  # max |f'|

_COLUMNS = ("quantity", "symbol", "argument", "when", "scope", "source")
_FAZIL = (
    ("own error", "ε^l_i,t", "eps", "now (step t)", "per node", "phi_gate"),
    ("own prediction", "μ^l_i,t", "mu", "now (step t)", "per node", "phi_gate"),
    ("own prediction one step ago", "μ^l_i,t−1", "mu_prev", "step t − 1", "per node", "phi_gate"),
    ("own arming bit", "a^l_i,t", "armed", "kept since the output was clamped", "per node", "phi_gate"),
    ("driven bit: feedback from layer l−1's gated errors moved x^l_i (x^0: set at the clamp onset)", "d^l_i,t",
     "driven", "step t − 1", "per node (own feedback synapses)", "gated_feedback, driven_mask"),
    ("zero threshold τ^l: 0 from the feedforward limit, else 16·settle_tol·max(1, max_i|μ^l_i|)", "τ^l", "tau",
     "fixed per presentation", "per layer (max over the layer's free predictions)", "FaZIL.thresholds"),
    ("re-arm of every gate when the output is clamped", "a^l_i ← 1 for all l, i", "—", "clamp onset",
     "shared (all nodes, one event per presentation)", "FaZIL.run"),
    ("reset of every node to the settled (or feedforward) state; the state is dropped after `steps`",
     "x ← settle(net, s_in)", "—", "each presentation", "shared (all nodes)", "FaZIL.initial_state, FaZIL.run"),
)
_STREAM = (
    ("own error", "ε^l_i,t", "eps", "now (step t)", "per node", "self_arming_gate"),
    ("own prediction", "μ^l_i,t", "mu", "now (step t)", "per node", "self_arming_gate"),
    ("own prediction one step ago", "μ^l_i,t−1", "mu_prev", "step t − 1", "per node", "self_arming_gate"),
    ("own arming bit", "a^l_i,t", "armed", "own history", "per node", "self_arming_gate"),
    ("own count of consecutive quiet steps (|ε| ≤ τ and |Δμ| ≤ τ)", "q^l_i,t", "quiet", "own history",
     "per node", "self_arming_gate"),
    ("driven bit: feedback from layer l−1's gated errors moved x^l_i (x^0: its own target input moved it)",
     "d^l_i,t", "driven", "step t − 1", "per node (own feedback synapses / own teacher input)",
     "gated_feedback, driven_mask, run_stream"),
    ("zero threshold τ_i = rel·max(1, |μ^l_i|) + abs", "τ^l_i", "tau", "now (own μ)", "per node", "node_tau"),
    ("arming delay", "k_arm", "k_arm", "constant", "per node (a constant of every node)", "self_arming_gate"),
)


def phi_inputs(gate: str = "stream") -> list[dict[str, str]]:
    """What Φ reads at one synapse, when, and whether it is the node's own or shared by all nodes.

    `gate="fazil"`: today's `phi_gate` inside `FaZIL.run` (its re-arm at clamping and its reset of
    the state are shared events); `gate="stream"`: `self_arming_gate` inside `run_stream` (nothing
    shared). One dict per input, keys `quantity, symbol, argument, when, scope, source`, ready for
    `pandas.DataFrame`; `argument` names the gate function's parameter ("—" if none).
    """
    if gate not in GATES:
        raise ValueError(f"gate={gate!r}: use one of {', '.join(map(repr, GATES))}")
    return [dict(zip(_COLUMNS, row)) for row in (_FAZIL if gate == "fazil" else _STREAM)]


def shared_inputs(gate: str = "stream") -> list[str]:
    """The quantities of `phi_inputs(gate)` that are shared by all nodes (global signals)."""
    return [row["quantity"] for row in phi_inputs(gate) if row["scope"].startswith("shared")]


def node_tau(mu: Tensor, rel: float, abs_tol: float = 0.0) -> Tensor:
    """`τ_i = rel·max(1, |μ_i|) + abs`: the error a node still counts as 0, from its own prediction.

    `rel` covers rounding (an error `x − μ` of a settled node is rounding of `μ`), `abs` a known
    noise floor; both are constants of the node, not signals.
    """
    return rel * mu.abs().clamp(min=1.0) + abs_tol


def self_arming_gate(
    eps: Tensor,
    mu: Tensor,
    mu_prev: Tensor,
    armed: Tensor,
    quiet: Tensor,
    tau: Tensor,
    driven: Tensor,
    k_arm: int,
    phi: str = "feedback",
) -> tuple[Tensor, Tensor, Tensor]:
    """`Φ(ε)` for one layer of the stream, and the gate's next `(armed, quiet)`.

    A node is quiet in a step when `|ε| ≤ τ` and `|μ − μ_prev| ≤ τ`; after `k_arm` consecutive quiet
    steps it arms. An armed node departs when `|ε| > τ`; it fires (passes `ε`) if it departed while
    its prediction was still and its value node was driven (`phi="feedback"`, the exact gate;
    `"still"` drops the driven check, `"driven"` the stillness check, `"departure"` both), and any
    departure disarms it. Everything read is the node's own or arrives on its own synapses.
    """
    small = eps.abs() <= tau
    still = (mu - mu_prev).abs() <= tau
    departed = armed & ~small
    fires = departed
    if phi in ("feedback", "still"):
        fires = fires & still
    if phi in ("feedback", "driven"):
        fires = fires & driven
    quiet = torch.where(small & still, quiet + 1, torch.zeros_like(quiet))
    armed = (armed & ~departed) | (quiet >= k_arm)
    return eps * fires, armed, quiet


@dataclass
class StreamState:
    """Everything the network carries from one step to the next (no reset between samples).

    `x` holds the value nodes per layer; the gate's memory is kept flat over the error nodes of
    layers `0 … l_max − 1` in order (`layers` splits it): `mu_prev`, `armed`, `quiet`, `driven`.
    `clamped`: was the output held by its target in the last step (the output's own input line).
    """

    x: list[Tensor]
    mu_prev: Tensor
    armed: Tensor
    quiet: Tensor
    driven: Tensor
    clamped: bool = False

    @classmethod
    def rest(cls, net: PCN, s_in: Tensor) -> StreamState:
        """A network before anything was shown: every node at 0, every gate disarmed."""
        x = rest_state(net, s_in)
        mu = torch.cat(predictions(net, x), dim=1)
        off = torch.zeros_like(mu, dtype=torch.bool)
        return cls(x, mu, off, torch.zeros_like(mu, dtype=torch.long), off.clone())

    @staticmethod
    def layers(net: PCN, flat: Tensor) -> list[Tensor]:
        """A flat per-node tensor split into layers `0 … l_max − 1`."""
        return list(torch.split(flat, list(net.sizes[: net.l_max]), dim=1))


@dataclass
class StreamStep:
    """One step of `run_stream`, kept when asked (`record=`): what every gate saw and did, for plots.

    `sample` and `step` (within its phase) place it; `clamped`: the target was on. Flat over the error
    nodes of layers `0 … l_max − 1` (`StreamState.layers` splits them): `eps` the errors, `armed`
    the arming bits at the start of the step (before the gate ran), `fired` the gates that passed `ε`.
    """

    sample: int
    step: int
    clamped: bool
    eps: Tensor
    armed: Tensor
    fired: Tensor


@dataclass
class StreamResult:
    """The trained network and what every error node did, sample by sample.

    A firing belongs to the sample whose target arrived last (the wave it rides on). For layer `l`,
    `fire_step[l]` `(samples, n_l)` is the step after that onset at which the node first fired
    (`-1`: never), `fire_count[l]` how often it fired, `armed_at_onset[l]` whether it was armed when
    the target arrived. Per sample: `free_firings` (firings while the output was free),
    `free_departures` (armed nodes whose error departed while the output was free, blocked by Φ),
    `settled_at` (first free step with every `|ε| ≤ tol·max(1, max|μ|)`, `-1`: not within `N`).
    """

    net: PCN
    state: StreamState
    N: int
    M: int
    fire_step: list[Tensor]
    fire_count: list[Tensor]
    armed_at_onset: list[Tensor]
    free_firings: Tensor
    free_departures: Tensor
    settled_at: Tensor
    update_steps: int = 0  # steps at which some gate fired and the weights changed
    orphan_firings: int = 0  # firings before any target arrived
    tau_rel: float = 0.0  # the zero threshold used: `node_tau(μ, tau_rel, tau_abs)`
    tau_abs: float = 0.0

    @property
    def samples(self) -> int:
        return int(self.settled_at.numel())

    def fired_once(self) -> Tensor:
        """Per sample: did every error node fire exactly once on that sample's wave."""
        return torch.stack([(c == 1).all(dim=1) for c in self.fire_count], dim=1).all(dim=1)

    def on_time(self) -> Tensor:
        """Per sample: did every node of every layer `l` fire exactly once, `l` steps after the onset."""
        ok = [(c == 1) & (s == l) for l, (c, s) in enumerate(zip(self.fire_count, self.fire_step))]
        return torch.stack([o.all(dim=1) for o in ok], dim=1).all(dim=1)

    def never_fired(self) -> list[int]:
        """Per layer: (sample, node) pairs that never fired."""
        return [int((c == 0).sum()) for c in self.fire_count]

    def layers_never_learned(self) -> list[int]:
        """Layers `l` whose weight `θ^{l+1}` no gate ever opened for, over the whole stream."""
        return [l for l, c in enumerate(self.fire_count) if int(c.sum()) == 0]

    def late(self) -> int:
        """Firings at a step other than the node's own `t = l` after its sample's onset."""
        return sum(int(((s >= 0) & (s != l)).sum()) for l, s in enumerate(self.fire_step))


def _as_samples(net: PCN, samples: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """`(s_in, s_out)` of shapes `(n, n_in)`, `(n, n_out)`, checked against `net`."""
    s_in, s_out = samples
    check_batch(net, s_in, s_out)
    return s_in, s_out


def stream_step(
    net: PCN, x: list[Tensor], eps: list[Tensor], feedback: list[Tensor | None], gamma: float, *, clamped: bool
) -> list[Tensor]:
    """`x^l ← x^l + γ(−ε^l + f'(x^l) ⊙ (θ^l)ᵀ Φ(ε^{l−1}))`; a free output `x^0 ← x^0 − γε^0`.

    `feedback[l]` is `gated_feedback` (None where no node of layer `l − 1` fired). A clamped output
    and the input stay put. Computed from the state at the start of the step (the weights too).
    """
    new = list(x)
    if not clamped:
        new[0] = x[0] - gamma * eps[0]
    for l in range(1, net.l_max):
        drive = -eps[l] if feedback[l] is None else feedback[l] - eps[l]
        new[l] = x[l] + gamma * drive
    return new


def noise_tau(net: PCN, input_noise: float, margin: float = 2.0) -> float:
    """A zero threshold above the jitter uniform input noise `±σ` causes in a settled stream.

    At `γ = 1` a settled free node follows its prediction one step late (`x^l_t = μ^l_{t−1}`), so
    `|ε^l_t| = |μ^l_t − μ^l_{t−1}|`; the input moves by at most `2σ` per step, and each layer passes a
    change on at most scaled by `L_f ‖θ^k‖_∞` (`L_f = max|f'|`). Hence both `|ε^l|` and `|Δμ^l|` stay
    below `B_l = 2σ Π_{k>l} L_f ‖θ^k‖_∞`; `margin` covers the growth of the weights while learning.
    """
    lip = LIPSCHITZ.get(net.activation.name)
    if lip is None:
        raise ValueError(f"no Lipschitz constant for activation {net.activation.name!r}: set tau yourself")
    bound, worst = 2.0 * input_noise, 0.0
    for k in range(net.l_max, 0, -1):  # B_{k−1}
        bound *= lip * float(net.theta[k].abs().sum(dim=1).max())
        worst = max(worst, bound)
    return margin * worst


def run_stream(
    net: PCN,
    samples: tuple[Tensor, Tensor],
    *,
    N: int,
    M: int,
    alpha: float,
    gamma: float = 1.0,
    k_arm: int,
    input_noise: float = 0.0,
    tau: float | None = None,
    tau_rel: float | None = None,
    phi: str = "feedback",
    seed: int = 0,
    state: StreamState | None = None,
    record: list[StreamStep] | None = None,
) -> StreamResult:
    """Train a copy of `net` on a stream: each sample's input alone for `N` steps, then with its target for `M`.

    Nothing is reset between samples and no signal is shared: every error node gates its own
    plasticity with `self_arming_gate`, and `θ^{l+1}` gets `α Φ(ε^l) f(x^{l+1})ᵀ` (bias: `α Φ(ε^l)`)
    at every step where a gate of layer `l` fires, applied at once (after the step's inference,
    which reads the weights at the start of the step). `input_noise = σ` adds fresh uniform noise
    in `[−σ, σ]` to the clamped input at every step; then the zero threshold gains `tau` (default
    `noise_tau`). `tau_rel` (default `FaZIL.TAU_FACTOR` × `settle_tolerance`) covers rounding.
    `state` continues an earlier stream (returned as `result.state`); default: the rest state.
    `net` and `state` themselves are left unchanged. `record`, a list, gets one `StreamStep` per step
    (an observer: the run is the same with or without it).
    """
    N, M, k_arm = check_steps("N", N), check_steps("M", M), check_steps("k_arm", k_arm)
    alpha, gamma = check_positive("alpha", alpha), check_positive("gamma", gamma)
    input_noise = check_non_negative("input_noise", input_noise)
    if phi not in PHIS:
        raise ValueError(f"phi={phi!r}: use one of {', '.join(map(repr, PHIS))}")
    s_in, s_out = _as_samples(net, samples)
    net = net.clone()
    L, n, sizes = net.l_max, s_in.shape[0], list(net.sizes[: net.l_max])
    tol = settle_tolerance(net.dtype)
    rel = FaZIL.TAU_FACTOR * tol if tau_rel is None else check_non_negative("tau_rel", tau_rel)
    if tau is None:
        abs_tol = noise_tau(net, input_noise) if input_noise > 0 else 0.0
    else:
        abs_tol = check_non_negative("tau", tau)
    st = StreamState.rest(net, s_in[:1]) if state is None else copy.deepcopy(state)
    gen = torch.Generator().manual_seed(seed)
    no_teacher = torch.zeros(1, sizes[0], dtype=torch.bool)

    total = sum(sizes)
    fire_step = torch.full((n, total), -1, dtype=torch.long)
    fire_count = torch.zeros((n, total), dtype=torch.long)
    armed_at_onset = torch.zeros((n, total), dtype=torch.bool)
    free_firings = torch.zeros(n, dtype=torch.long)
    free_departures = torch.zeros(n, dtype=torch.long)
    settled_at = torch.full((n,), -1, dtype=torch.long)
    owner, since, update_steps, orphans = -1, 0, 0, 0

    with torch.no_grad():
        for i in range(n):
            for clamped, steps in ((False, N), (True, M)):
                for s in range(steps):
                    x = list(st.x)
                    x[L] = s_in[i : i + 1]
                    if input_noise > 0:
                        x[L] = x[L] + input_noise * (2 * torch.rand(x[L].shape, generator=gen, dtype=x[L].dtype) - 1)
                    teacher = no_teacher
                    if clamped:
                        target = s_out[i : i + 1]
                        if not st.clamped:  # the target arrives: it moves the output's value node
                            teacher = target != x[0]
                            owner, since = i, 0
                            armed_at_onset[i] = st.armed[0]
                        x[0] = target
                    mu_l = predictions(net, x)
                    eps_l = errors(x, mu_l)
                    if not clamped and settled_at[i] < 0 and is_settled(mu_l, eps_l, tol):
                        settled_at[i] = s
                    mu, eps = torch.cat(mu_l, dim=1), torch.cat(eps_l, dim=1)
                    driven = torch.cat([teacher, st.driven[:, sizes[0] :]], dim=1)
                    was = st.armed
                    g, st.armed, st.quiet = self_arming_gate(
                        eps, mu, st.mu_prev, was, st.quiet, node_tau(mu, rel, abs_tol), driven, k_arm, phi
                    )
                    fired = g != 0
                    if record is not None:
                        record.append(StreamStep(i, s, clamped, eps, was, fired))
                    if not clamped:
                        free_departures[i] += (was & ~st.armed & ~fired).sum()
                    gated = StreamState.layers(net, g)
                    now = Updates()
                    if bool(fired.any()):
                        row = fired[0]
                        if owner < 0:
                            orphans += int(row.sum())
                        else:
                            fire_step[owner][row & (fire_step[owner] < 0)] = since
                            fire_count[owner] += row.long()
                        if not clamped:
                            free_firings[i] += int(row.sum())
                        for l, (gl, fl) in enumerate(zip(gated, StreamState.layers(net, fired))):
                            if bool(fl.any()):
                                d_b = hebbian_bias(alpha, gl) if net.has_bias else None
                                now.add(l + 1, hebbian(alpha, gl, net.f(x[l + 1])), d_b)
                    feedback = [None] + [gated_feedback(net, l, x[l], gated[l - 1]) for l in range(1, L)]
                    st.driven = torch.cat([teacher] + [driven_mask(x[l], feedback[l]) for l in range(1, L)], dim=1)
                    st.x = stream_step(net, x, eps_l, feedback, gamma, clamped=clamped)
                    st.mu_prev, st.clamped = mu, clamped
                    if now.theta:
                        now.apply(net)
                        update_steps += 1
                    since += 1
    split = lambda t: list(torch.split(t, sizes, dim=1))  # noqa: E731
    return StreamResult(net, st, N, M, split(fire_step), split(fire_count), split(armed_at_onset), free_firings,
                        free_departures, settled_at, update_steps, orphans, rel, abs_tol)


def bp_stream(net: PCN, samples: tuple[Tensor, Tensor], *, alpha: float) -> PCN:
    """The BP twin: a copy of `net` after per-sample SGD (batch 1, `torch.optim.SGD` on autograd's
    gradient of `E = ½‖s_out − y^0‖²`, `sgd_step`) on the same samples in the same order."""
    s_in, s_out = _as_samples(net, samples)
    twin = net.clone()
    for i in range(s_in.shape[0]):
        twin = sgd_step(twin, s_in[i : i + 1], s_out[i : i + 1], alpha)
    return twin


def stream_divergence(net: PCN, samples: tuple[Tensor, Tensor], **options: object) -> tuple[float, StreamResult]:
    """`run_stream(net, samples, **options)` against `bp_stream` (clean samples): the relative
    divergence `‖θ_stream − θ_BP‖ / ‖θ_BP‖` of all weights after the stream, and the stream's result."""
    result = run_stream(net, samples, **options)  # type: ignore[arg-type]
    twin = bp_stream(net, samples, alpha=options["alpha"])  # type: ignore[arg-type]
    return divergence(result.net, twin), result


def min_steps(net: PCN, k_arm: int, settle_steps: int | None = None) -> tuple[int, int]:
    """The smallest `(N, M)` of the derivation: `N = settle + k_arm`, `M = l_max`.

    `settle` defaults to `l_max`, the dead-beat settling of the stream's free dynamics at `γ = 1`
    (measured per sample by `run_stream(...).settled_at`).
    """
    settle = net.l_max if settle_steps is None else settle_steps
    return settle + k_arm, net.l_max


def rounding_bound(n_samples: int, net: PCN) -> float:
    """`eps · n_samples · l_max`: one machine epsilon of relative divergence per weight update made."""
    return torch.finfo(net.dtype).eps * n_samples * net.l_max
