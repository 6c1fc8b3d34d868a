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



def test_matmul_count_of_bp_is_three_per_layer_minus_one():
    from pcbp.benchmark import count_matmuls
    from pcbp.experiments import random_problem
    from pcbp.rules import ZIL, ZILWave

    for depth in (2, 5):
        net, s_in, s_out = random_problem((3,) + (6,) * (depth - 1) + (4,), "tanh", batch=2)
        assert count_matmuls(lambda: BP(0.1)(net.clone(), s_in, s_out)) == 3 * depth - 1
        assert count_matmuls(lambda: ZILWave(0.1)(net.clone(), s_in, s_out)) == 3 * depth - 1
        assert count_matmuls(lambda: ZIL(0.1)(net.clone(), s_in, s_out)) > 3 * depth - 1
    assert count_matmuls(lambda: torch.ones(2, 2) + 1) == 0
