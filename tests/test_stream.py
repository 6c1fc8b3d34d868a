"""Fa-Z-IL on a continuous stream (pcbp.stream): self-arming gates equal per-sample BP (oracle: autograd SGD)."""

import inspect
import math

import pytest
import torch

from pcbp.autonomy import relaxation_spectrum, steps_to_settle
from pcbp.data import teacher_student
from pcbp.metrics import divergence
from pcbp.network import PCN
from pcbp.rules.fazil import phi_gate
from pcbp.stream import (
    StreamState,
    StreamStep,
    bp_stream,
    min_steps,
    noise_tau,
    phi_inputs,
    rounding_bound,
    run_stream,
    self_arming_gate,
    shared_inputs,
    stream_divergence,
)

SIZES = (3, 5, 5, 4)  # output first: l_max = 3
ALPHA, K_ARM = 0.05, 3


def _net(sizes=SIZES, activation="tanh", seed=1, bias=False):
    return PCN(sizes, activation, seed=seed, bias=bias)


def _data(n, sizes=SIZES, seed=0):
    return teacher_student(n, sizes, seed=seed)


@pytest.fixture(scope="module")
def long_stream():
    """1000 samples at the smallest (N, M) of the derivation, and the BP twin."""
    net, data = _net(), _data(1000)
    N, M = min_steps(net, K_ARM)
    result = run_stream(net, data, N=N, M=M, alpha=ALPHA, k_arm=K_ARM)
    return net, data, result, bp_stream(net, data, alpha=ALPHA)


# --- what Φ reads -------------------------------------------------------------------------------


def test_stream_gate_reads_no_shared_signal_fazil_gate_does():
    assert shared_inputs("stream") == []
    shared = shared_inputs("fazil")
    assert len(shared) == 2 and any("re-arm" in q for q in shared) and any("reset" in q for q in shared)


@pytest.mark.parametrize("gate, fn", [("stream", self_arming_gate), ("fazil", phi_gate)])
def test_phi_inputs_name_exactly_the_gate_arguments(gate, fn):
    """The table is tied to the code: every argument of the gate is a row, and no row names a missing one."""
    named = {row["argument"] for row in phi_inputs(gate)} - {"—"}
    assert named == set(inspect.signature(fn).parameters) - {"phi"}
    assert all(set(row) == {"quantity", "symbol", "argument", "when", "scope", "source"} for row in phi_inputs(gate))


# --- the self-arming gate -----------------------------------------------------------------------


def _gate_run(eps_seq, mu_seq, driven_seq, k_arm, phi="feedback"):
    """Replay one node through `self_arming_gate`; return what it passed at each step."""
    armed, quiet, mu_prev, out = torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.long), None, []
    for e, m, d in zip(eps_seq, mu_seq, driven_seq):
        e, m = torch.tensor([[e]], dtype=torch.float64), torch.tensor([[m]], dtype=torch.float64)
        g, armed, quiet = self_arming_gate(e, m, m if mu_prev is None else mu_prev, armed, quiet,
                                           torch.full_like(e, 1e-12), torch.tensor([[d]]), k_arm, phi)
        out.append(float(g))
        mu_prev = m
    return out


def test_gate_arms_after_k_quiet_steps_fires_once_and_rearms_from_its_own_history():
    eps = [0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.7, 0.7, 0.0, 0.0, 0.0, 0.9]
    drv = [False, False, True, False, False, False, True, True, False, False, False, True]
    mu = [0.0] * len(eps)
    # two quiet steps arm it (k_arm=2): fires at 2; disarmed, it re-arms after 2 more quiet steps (3, 4)
    out = _gate_run(eps, mu, drv, k_arm=2)
    assert out == [0, 0, 0.5, 0, 0, 0, 0.7, 0, 0, 0, 0, 0.9]  # one firing per arming: not at 7
    assert _gate_run(eps, mu, drv, k_arm=3)[2] == 0  # not yet armed at step 2


def test_gate_blocks_departures_not_driven_or_with_a_moving_prediction():
    eps, drv = [0.0, 0.0, 0.5], [False, False, True]
    assert _gate_run(eps, [0, 0, 0.3], drv, 1)[2] == 0  # its prediction moved
    assert _gate_run(eps, [0, 0, 0], [False] * 3, 1)[2] == 0  # not driven
    assert _gate_run(eps, [0, 0, 0.3], [False] * 3, 1, phi="departure")[2] == 0.5  # the mutant passes both


# --- why the stream's value nodes feed back only gated errors ------------------------------------


def test_full_feedback_free_network_does_not_settle_at_gamma_one_the_stream_does_in_l_max_steps(long_stream):
    """Gradient descent on F (full ε feedback) at γ = 1 is unstable here (λ_max > 2); with gated
    feedback the free step is x^l ← μ^l, which settles in exactly l_max steps from any state."""
    net, (s_in, _), result, _ = long_stream
    assert relaxation_spectrum(net, s_in[:20])[1] > 2
    assert steps_to_settle(net, s_in[:1], 1.0, max_steps=5000) is None
    assert result.settled_at.tolist() == [net.l_max] * result.samples


# --- the stream equals BP ----------------------------------------------------------------------


def test_1000_sample_stream_equals_per_sample_bp_to_rounding(long_stream):
    net, _, result, twin = long_stream
    bound = rounding_bound(1000, net)  # one eps per weight update
    assert divergence(result.net, twin) <= bound
    assert divergence(net, twin) > 1e9 * bound  # BP did move the weights: the agreement is not trivial


def test_1000_sample_stream_every_node_fires_once_at_its_own_step_and_never_while_free(long_stream):
    net, _, result, _ = long_stream
    assert bool(result.on_time().all())
    assert int(result.free_firings.sum()) == 0 and result.orphan_firings == 0
    assert result.update_steps == 1000 * net.l_max  # weights change at exactly l_max steps per sample


def test_longer_presentations_change_nothing_and_release_errors_are_blocked():
    """With M long, hidden gates re-arm while the target is still on; when the target is released and
    the next input arrives their errors depart (free_departures > 0) and the gate blocks every one."""
    net, data = _net(), _data(200)
    N, M = min_steps(net, K_ARM)
    d, result = stream_divergence(net, data, N=N + 4, M=M + 9, alpha=ALPHA, k_arm=K_ARM)
    assert d <= rounding_bound(200, net)
    assert int(result.free_departures.sum()) > 0 and int(result.free_firings.sum()) == 0
    assert bool(result.on_time().all())


@pytest.mark.parametrize("phi", ["still", "driven"])
def test_either_reason_alone_blocks_the_release_errors(phi):
    """The release errors are both undriven and caused by moving predictions: each check alone suffices."""
    net, data = _net(), _data(200)
    d, result = stream_divergence(net, data, N=6, M=12, alpha=ALPHA, k_arm=K_ARM, phi=phi)
    assert int(result.free_firings.sum()) == 0 and d <= rounding_bound(200, net)


def test_without_either_check_the_gate_fires_on_release_errors():
    net, data = _net(), _data(200)
    d, result = stream_divergence(net, data, N=6, M=12, alpha=ALPHA, k_arm=K_ARM, phi="departure")
    assert int(result.free_firings.sum()) > 0 and d > 1e-3


def test_sigmoid_with_biases_deeper_net_equals_bp():
    sizes = (3, 5, 5, 5, 4)
    net, data = _net(sizes, "sigmoid", seed=2, bias=True), _data(200, sizes, seed=3)
    N, M = min_steps(net, net.l_max)
    d, result = stream_divergence(net, data, N=N, M=M, alpha=ALPHA, k_arm=net.l_max)
    assert d <= rounding_bound(200, net) and bool(result.on_time().all())


def test_no_reset_two_halves_of_a_stream_equal_the_whole():
    net, (s_in, s_out) = _net(), _data(100)
    kw = dict(N=6, M=3, alpha=ALPHA, k_arm=K_ARM)
    whole = run_stream(net, (s_in, s_out), **kw)
    first = run_stream(net, (s_in[:50], s_out[:50]), **kw)
    second = run_stream(first.net, (s_in[50:], s_out[50:]), state=first.state, **kw)
    for a, b in zip(whole.net.parameters(), second.net.parameters()):
        assert torch.equal(a, b)
    fresh = run_stream(first.net, (s_in[50:], s_out[50:]), state=StreamState.rest(net, s_in[:1]), **kw)
    assert all(torch.equal(a, b) for a, b in zip(fresh.net.parameters(), second.net.parameters()))  # dead-beat


def test_record_is_an_observer_whose_firings_and_arming_match_the_result():
    """Oracle: the result's own counts (fire_count, free_firings, armed_at_onset) and an unrecorded run."""
    net, data = _net(), _data(30)
    N, M = min_steps(net, K_ARM)
    record: list[StreamStep] = []
    kw = dict(N=N + 1, M=M + 2, alpha=ALPHA, k_arm=K_ARM)
    seen, plain = run_stream(net, data, record=record, **kw), run_stream(net, data, **kw)
    assert all(torch.equal(a, b) for a, b in zip(seen.net.parameters(), plain.net.parameters()))
    assert len(record) == 30 * (N + 1 + M + 2)
    first = [(r.sample, r.step, r.clamped) for r in record[: N + 2]]
    assert first == [(0, s, False) for s in range(N + 1)] + [(0, 0, True)]
    fired = torch.stack([r.fired[0] for r in record])
    total = sum(int(c.sum()) for c in seen.fire_count)
    assert int(fired.sum()) == total + seen.orphan_firings == 30 * sum(net.sizes[: net.l_max])
    free = [int(r.fired.sum()) for r in record if not r.clamped]
    assert sum(free) == int(seen.free_firings.sum()) == 0
    onsets = torch.cat([r.armed for r in record if r.clamped and r.step == 0])
    assert torch.equal(onsets, torch.cat(seen.armed_at_onset, dim=1))


# --- what fails --------------------------------------------------------------------------------


def test_n_one_step_short_the_output_never_arms_and_nothing_is_learned():
    """The output settles l_max steps after the input changed and arms k_arm steps later: at
    N = l_max + k_arm − 1 it is still disarmed when the target arrives, so every sample is skipped."""
    net, data = _net(), _data(200)
    N, M = min_steps(net, K_ARM)
    d, result = stream_divergence(net, data, N=N - 1, M=M, alpha=ALPHA, k_arm=K_ARM)
    assert not bool(result.armed_at_onset[0].any()) and result.update_steps == 0
    assert d == pytest.approx(divergence(net, bp_stream(net, data, alpha=ALPHA)), rel=1e-12)
    assert d > 1e9 * rounding_bound(200, net)


def test_m_one_step_short_the_layer_next_to_the_input_never_learns():
    """Layer l_max − 1 would fire l_max − 1 steps after the onset, the first step of the next sample:
    its prediction then already reads the next input, so its error departs undriven-still and disarms."""
    net, data = _net(), _data(200)
    N, M = min_steps(net, K_ARM)
    d, result = stream_divergence(net, data, N=N, M=M - 1, alpha=ALPHA, k_arm=K_ARM)
    L = net.l_max
    assert result.layers_never_learned() == [L - 1]
    assert result.never_fired() == [0] * (L - 1) + [200 * net.sizes[L - 1]]
    assert d > 1e9 * rounding_bound(200, net)


def test_m_far_too_short_the_wave_outruns_its_target():
    """With M ≤ l_max − 2 the wave goes on after the target is released (it is carried by gated
    errors, not by the target): layer 1 fires in the next free phase, on time; layer 2 never does."""
    net, data = _net(), _data(200)
    d, result = stream_divergence(net, data, N=6, M=1, alpha=ALPHA, k_arm=K_ARM)
    assert int(result.free_firings.sum()) > 0 and result.late() == 0
    assert 2 in result.layers_never_learned() and d > 1e-3


def test_input_noise_divergence_grows_first_order():
    net, data = _net(), _data(200)
    sigmas = (1e-10, 1e-9, 1e-8)
    divs = []
    for sigma in sigmas:
        d, result = stream_divergence(net, data, N=6, M=3, alpha=ALPHA, k_arm=K_ARM, input_noise=sigma)
        assert bool(result.on_time().all())  # τ (noise_tau) is above the jitter: every gate still arms
        divs.append(d)
    assert divs[0] > 100 * rounding_bound(200, net)
    slopes = [math.log(divs[i + 1] / divs[i]) / math.log(sigmas[i + 1] / sigmas[i]) for i in range(2)]
    assert all(0.9 <= s <= 1.1 for s in slopes), (divs, slopes)


def test_input_noise_above_the_threshold_keeps_every_gate_disarmed():
    net, data = _net(), _data(100)
    result = run_stream(net, data, N=6, M=3, alpha=ALPHA, k_arm=K_ARM, input_noise=1e-8, tau=0.0)
    assert result.update_steps == 0 and not any(bool(a.any()) for a in result.armed_at_onset)
    assert noise_tau(net, 1e-8) > 1e-8  # the default threshold is above the jitter


def test_gamma_below_one_scales_each_delta_by_gamma_to_the_l():
    """C3 on the stream: the front reaches layer l as γ^l δ^l, a first-order divergence in 1 − γ."""
    net, data = _net(), _data(100)
    d = [stream_divergence(net, data, N=40, M=3, alpha=ALPHA, k_arm=K_ARM, gamma=g)[0] for g in (0.99, 0.9)]
    assert d[0] > 1e6 * rounding_bound(100, net) and 8 <= d[1] / d[0] <= 12


def test_bad_arguments_raise():
    net, data = _net(), _data(5)
    with pytest.raises(ValueError, match="phi"):
        run_stream(net, data, N=6, M=3, alpha=ALPHA, k_arm=K_ARM, phi="nope")
    with pytest.raises(ValueError, match="k_arm"):
        run_stream(net, data, N=6, M=3, alpha=ALPHA, k_arm=0)
    with pytest.raises(ValueError, match="gate"):
        phi_inputs("nope")
