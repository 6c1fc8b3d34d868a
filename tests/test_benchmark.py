"""The benchmark machinery (not the timings: those are never asserted)."""

import math
import statistics

import pytest
import torch

from pcbp.benchmark import (
    REFERENCE,
    Setting,
    TorchStep,
    benchmark,
    interleaved_times,
    ratio_summary,
    read_csv,
    round_ratios,
    standard_rules,
    summarize,
    write_csv,
)
from pcbp.experiments import random_problem
from pcbp.rules import BP, sgd_step


def test_interleaving_calls_every_callable_the_same_number_of_times():
    calls = {"a": [], "b": [], "c": []}
    times = interleaved_times({k: (lambda k=k: calls[k].append(1)) for k in calls}, repeats=7, warmup=2)
    assert {k: len(v) for k, v in calls.items()} == {"a": 9, "b": 9, "c": 9}
    assert all(len(t) == 7 and min(t) >= 0 for t in times.values())


def test_interleaving_rotates_the_order_so_that_each_callable_leads_in_turn():
    order = []
    interleaved_times({k: (lambda k=k: order.append(k)) for k in "abc"}, repeats=3, warmup=0)
    assert order == list("abc" "bca" "cab")


def test_summary_ratios_are_medians_of_per_round_ratios_to_the_reference():
    rows = summarize({"BP": [1.0, 2.0, 3.0], "X": [2.0, 4.0, 6.0]}, reference="BP")
    assert [r["ratio"] for r in rows] == [1.0, 2.0] and rows[1]["median_s"] == 4.0
    assert [r["ratio_to_bp"] for r in rows] == [1.0, 2.0] and rows[1]["rounds"] == 3
    no_bp = summarize({"ref": [1.0, 1.0], "X": [3.0, 3.0]}, reference="ref")
    assert no_bp[1]["ratio"] == 3.0 and math.isnan(no_bp[1]["ratio_to_bp"])
    assert round_ratios({"ref": [1.0, 2.0], "X": [3.0, 3.0]}, "X", "ref") == [3.0, 1.5]


def _busy_machine(true_ratio: float = 1.1, rounds: int = 41) -> tuple[list[float], list[float]]:
    """Synthetic times (reference, rule) of a busy machine, in seconds: small jitter, a spell that
    slows 21 of 41 rounds fourfold (it begins between the two calls of one round, so that round's
    rule is slow and its reference is not), and spikes that hit three single rule calls 50-fold."""
    jitter = [1 + 0.02 * math.sin(7.0 * r) for r in range(rounds)]
    ref = [1e-3 * j for j in jitter]
    rule = [true_ratio * t for t in ref]
    for r in range(20, rounds):  # the spell: rule slow from round 20 on, reference from round 21
        rule[r] *= 4
        ref[r] *= 4 if r > 20 else 1
    for r in (3, 9, 30):  # spikes within one call
        rule[r] *= 50
    return ref, rule


def test_ratio_estimator_survives_a_busy_spell_where_plain_ratios_of_times_do_not():
    true = 1.1
    ref, rule = _busy_machine(true)
    robust = ratio_summary(rule, ref)
    assert robust.median == pytest.approx(true, rel=0.02)
    assert robust.q1 == pytest.approx(true, rel=0.03) and robust.q3 == pytest.approx(true, rel=0.03)
    assert robust.rounds == len(ref)  # no round is discarded
    assert statistics.mean(rule) / statistics.mean(ref) > 2 * true  # mean of times: the spikes decide it
    assert statistics.median(rule) / statistics.median(ref) > 2 * true  # median of times: the spell decides it


def test_ratio_estimator_needs_paired_rounds():
    with pytest.raises(ValueError, match="same positive number of rounds"):
        ratio_summary([1.0, 2.0], [1.0])


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "leaky_relu", "linear"])
@pytest.mark.parametrize("bias", [False, True])
def test_torch_step_is_one_sgd_step_on_the_same_network(act, bias):
    """The baseline computes what `sgd_step` (the oracle) and pcbp's BP compute, in torch.nn modules."""
    net, s_in, s_out = random_problem((3, 6, 6, 5), act, bias=bias, batch=4)
    step = TorchStep(net, 0.1)
    for _ in range(2):
        step(s_in, s_out)
        net = sgd_step(net, s_in, s_out, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(step.weights(), (net.theta[l] for l in sorted(net.theta))))
    assert len(step.weights()) == net.l_max


@pytest.mark.parametrize("bias", [False, True])
def test_torch_step_makes_bps_3l_minus_1_products_counted_at_the_dispatcher(bias):
    """Forward L, gradients into the L − 1 layers above the input, one weight gradient per layer: the
    dispatcher sees `F.linear`'s products and those autograd's engine runs; `count_matmuls` sees neither."""
    from pcbp.benchmark import count_dispatched_products, count_matmuls

    for L in (2, 3, 5):
        net, s_in, s_out = random_problem((3,) + (6,) * (L - 1) + (4,), "tanh", bias=bias, batch=2)
        step = TorchStep(net, 0.1)
        assert count_dispatched_products(lambda: step(s_in, s_out)) == 3 * L - 1
        assert count_dispatched_products(lambda: BP(0.1)(net.clone(), s_in, s_out)) == 3 * L - 1
        assert count_matmuls(lambda: step(s_in, s_out)) == 0  # F.linear and autograd's kernels: all unseen


def test_benchmark_rows_cover_the_reference_every_rule_and_setting_and_round_trip_through_csv(tmp_path):
    settings = [Setting(depth=d, width=8, batch=4, n_in=6, n_out=3) for d in (2, 3)]
    threads = torch.get_num_threads()
    rows = benchmark(settings, standard_rules(il_T=(2,)), repeats=2, warmup=1,
                     skip=lambda s, r: r == "IL (T=2)" and s.depth == 3, threads=1)
    assert torch.get_num_threads() == threads and all(r["threads"] == 1 for r in rows)  # restored after
    assert len(rows) == (1 + 6) + (1 + 5)
    assert [r["rule"] for r in rows if r["depth"] == 2][:2] == [REFERENCE, "BP"]
    assert all(r["ratio"] == 1.0 for r in rows if r["rule"] == REFERENCE)
    back, machine = read_csv(write_csv(rows, tmp_path / "r.csv"))
    assert len(back) == len(rows) and "torch=" in machine
    assert {r["rule"] for r in back} == set(standard_rules(il_T=(2,))) | {REFERENCE}


def test_matmul_counts_equal_the_counts_derived_from_each_rules_equations():
    """Products per update (apply=True, as training runs them), against formulas in l_max (and IL's T):
    BP 3L − 1 (forward sweep L, deltas L − 1, outer products L); the wave rules make BP's products;
    faithful Z-IL 2L² + 1 (L steps of L predictions, L − 1 steps of L − 1 feedbacks, sweep, L outer
    products); faithful Fa-Z-IL 6L² − 1 (2L steps of 3L − 1, sweep, L − 1 gate checks as the front
    passes); IL 2L + (2T + 1)(L − 1) (sweep, T + 1 evaluations of L − 1 free predictions, T steps of
    L − 1 feedbacks, L outer products)."""
    from pcbp.benchmark import count_matmuls
    from pcbp.rules import IL, ZIL, FaZIL, FaZILQuiet, ZILWave

    for act in ("tanh", "relu"):
        for L in (2, 3, 5):
            net, s_in, s_out = random_problem((3,) + (6,) * (L - 1) + (4,), act, batch=2, seed=L)
            expected = {BP(0.1): 3 * L - 1, ZILWave(0.1): 3 * L - 1, FaZILQuiet(0.1): 3 * L - 1,
                        ZIL(0.1): 2 * L * L + 1, FaZIL(0.1): 6 * L * L - 1}
            expected |= {IL(0.1, T=T): 2 * L + (2 * T + 1) * (L - 1) for T in (1, 4)}
            for rule, n in expected.items():
                assert count_matmuls(lambda: rule(net.clone(), s_in, s_out)) == n, (act, L, rule)
    assert count_matmuls(lambda: torch.ones(2, 2) + 1) == 0
    a, b = torch.ones(2, 3), torch.ones(3, 2)
    assert count_matmuls(lambda: (a @ b) + torch.mm(b.T, a.T) + torch.matmul(a, b)) == 3
