"""The benchmark machinery (not the timings: those are never asserted)."""

import torch

from pcbp.benchmark import (
    Setting,
    benchmark,
    interleaved_times,
    read_csv,
    standard_rules,
    summarize,
    write_csv,
)
from pcbp.rules import BP


def test_interleaving_calls_every_callable_the_same_number_of_times():
    calls = {"a": [], "b": [], "c": []}
    times = interleaved_times({k: (lambda k=k: calls[k].append(1)) for k in calls}, repeats=7, warmup=2)
    assert {k: len(v) for k, v in calls.items()} == {"a": 9, "b": 9, "c": 9}
    assert all(len(t) == 7 and min(t) >= 0 for t in times.values())


def test_summary_ratios_are_medians_over_the_reference():
    rows = summarize({"BP": [1.0, 2.0, 3.0], "X": [2.0, 4.0, 6.0]})
    assert [r["ratio_to_bp"] for r in rows] == [1.0, 2.0] and rows[1]["median_s"] == 4.0


def test_benchmark_rows_cover_every_rule_and_setting_and_round_trip_through_csv(tmp_path):
    settings = [Setting(depth=d, width=8, batch=4, n_in=6, n_out=3) for d in (2, 3)]
    rows = benchmark(settings, standard_rules(il_T=(2,)), repeats=2, warmup=1,
                     skip=lambda s, r: r == "IL (T=2)" and s.depth == 3)
    assert len(rows) == 6 + 5
    back, machine = read_csv(write_csv(rows, tmp_path / "r.csv"))
    assert len(back) == len(rows) and "torch=" in machine
    assert {r["rule"] for r in back} == set(standard_rules(il_T=(2,)))


def test_matmul_counts_equal_the_counts_derived_from_each_rules_equations():
    """Products per update (apply=True, as training runs them), against formulas in l_max (and IL's T):
    BP 3L − 1 (forward sweep L, deltas L − 1, outer products L); the wave rules make BP's products;
    faithful Z-IL 2L² + 1 (L steps of L predictions, L − 1 steps of L − 1 feedbacks, sweep, L outer
    products); faithful Fa-Z-IL 6L² − 1 (2L steps of 3L − 1, sweep, L − 1 gate checks as the front
    passes); IL 2L + (2T + 1)(L − 1) (sweep, T + 1 evaluations of L − 1 free predictions, T steps of
    L − 1 feedbacks, L outer products)."""
    from pcbp.benchmark import count_matmuls
    from pcbp.experiments import random_problem
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
