"""Side-by-side training against one BP reference, on small teacher-student data."""

import math

import pytest
import torch

from pcbp.compare import (
    REFERENCE,
    batch_seed,
    chance_accuracy,
    compare_rules,
    finals,
    format_mean_spread,
    learned_accuracy,
    markdown_table,
    mean_spread,
)
from pcbp.data import teacher_student
from pcbp.metrics import divergence
from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, AutogradSGD, FaZIL
from pcbp.rules.fazil_quiet import FaZILQuiet
from pcbp.rules.zil_wave import ZILWave
from pcbp.trainer import train

SIZES = (4, 12, 12, 6)
ALPHA = 0.1


def data(n=160, seed=0, dtype=torch.float64):
    s_in, s_out = teacher_student(n, SIZES, seed=seed, dtype=dtype)
    t_in, t_out = teacher_student(64, SIZES, seed=seed + 100, dtype=dtype)
    return (s_in, s_out), (t_in, t_out, t_out.argmax(dim=1))


RULES = {
    "BP twin": lambda: BP(ALPHA),
    "Z-IL": lambda: ZIL(ALPHA),
    "Z-IL wave": lambda: ZILWave(ALPHA),
    "Fa-Z-IL": lambda: FaZIL(ALPHA),
    "Fa-Z-IL quiet": lambda: FaZILQuiet(ALPHA),
    "IL": lambda: IL(ALPHA, gamma=0.1, T=20),
}


@pytest.fixture(scope="module")
def comparison():
    train_set, test_set = data()
    return compare_rules(RULES, SIZES, train_set, test_set, epochs=3, batch_size=16, seed=1, eval_every=4)


def test_pcbp_bp_stays_with_the_autograd_sgd_reference_to_rounding(comparison):
    """The reference is `loss.backward()` + `torch.optim.SGD`: pcbp's own BP shares no code with it."""
    assert comparison.reference.rule == "BP (autograd + SGD)"
    assert 0 < max(comparison["BP twin"].divergence) <= 1e-12


def test_zil_and_fazil_stay_at_rounding_distance_il_does_not(comparison):
    for name in ("Z-IL", "Z-IL wave", "Fa-Z-IL", "Fa-Z-IL quiet"):
        assert max(comparison[name].divergence) <= 1e-12, name
    assert comparison["IL"].final_divergence > 1e-3  # IL's one-update error alone is ~0.1-1 (test_il.py)
    # the wave implementation is the faithful one, bit for bit
    assert comparison["Z-IL"].divergence == comparison["Z-IL wave"].divergence


def test_recording_schedule_and_bookkeeping(comparison):
    n_iter = 3 * math.ceil(160 / 16)
    run = comparison["Z-IL"]
    assert run.iterations == list(range(4, n_iter + 1, 4)) + ([n_iter] if n_iter % 4 else [])
    assert len(run.test_loss) == len(run.test_accuracy) == 4  # before training + 3 epochs
    assert run.updates == n_iter and run.seconds > 0
    assert comparison.n_train == 160 and comparison.n_test == 64 and comparison.alpha == ALPHA
    assert list(comparison.all_runs()) == [REFERENCE, *RULES]
    # every run starts from the same network: identical test metrics before training
    assert len({r.test_loss[0] for r in comparison.all_runs().values()}) == 1
    assert run.final_divergence == divergence(run.net, comparison.reference.net)


def test_every_rule_learns(comparison):
    for name, run in comparison.all_runs().items():
        assert run.test_loss[-1] < 0.9 * run.test_loss[0], name  # IL learns slowest: 0.82 here


def test_reference_is_the_trainer_bp_on_the_same_batches():
    """The reference equals autograd + SGD trained with the same seed and batch order, bit for bit."""
    (s_in, s_out), test_set = data()
    cmp = compare_rules({"Z-IL": lambda: ZIL(ALPHA)}, SIZES, (s_in, s_out), test_set, epochs=1, batch_size=16,
                        seed=batch_seed(0, 0) + 3)
    net = PCN(SIZES, seed=3)
    train(net, AutogradSGD(ALPHA), s_in, s_out, epochs=1, batch_size=16, seed=batch_seed(3, 0), twin=False,
          progress=False)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), cmp.reference.net.parameters()))


def test_reproducible_with_the_same_seed_and_different_with_another():
    train_set, test_set = data()
    rules = {"Z-IL": lambda: ZILWave(ALPHA), "IL": lambda: IL(ALPHA, T=5)}
    a, b = (compare_rules(rules, SIZES, train_set, test_set, epochs=2, batch_size=16, seed=2) for _ in range(2))
    c = compare_rules(rules, SIZES, train_set, test_set, epochs=2, batch_size=16, seed=3)
    for name in a.all_runs():
        assert a[name].divergence == b[name].divergence
        assert a[name].test_accuracy == b[name].test_accuracy
        assert all(torch.equal(x, y) for x, y in zip(a[name].net.parameters(), b[name].net.parameters()))
    assert a["IL"].divergence != c["IL"].divergence


def test_float32_diverges_by_rounding_more_than_float64():
    """A rounding divergence scales with the machine epsilon: float32 / float64 ≈ eps32 / eps64 = 2^29."""
    train_set, test_set = data()
    rules = {"Z-IL": lambda: ZILWave(ALPHA)}
    d64 = compare_rules(rules, SIZES, train_set, test_set, epochs=2, batch_size=16, dtype=torch.float64)
    d32 = compare_rules(rules, SIZES, train_set, test_set, epochs=2, batch_size=16, dtype=torch.float32)
    assert d32.reference.net.dtype == torch.float32
    log_ratio = math.log10(d32["Z-IL"].final_divergence / d64["Z-IL"].final_divergence)
    assert log_ratio == pytest.approx(29 * math.log10(2), abs=1.0)


def test_invalid_arguments():
    train_set, _ = data(n=32)
    with pytest.raises(ValueError, match="share one learning rate"):
        compare_rules({"a": lambda: BP(0.1), "b": lambda: ZIL(0.2)}, SIZES, train_set)
    with pytest.raises(ValueError, match="names the BP reference"):
        compare_rules({"BP": lambda: BP(0.1)}, SIZES, train_set)
    with pytest.raises(ValueError, match="empty"):
        compare_rules({}, SIZES, train_set)
    with pytest.raises(ValueError):
        compare_rules({"a": lambda: BP(0.1)}, SIZES, train_set, epochs=0)


def test_without_test_data_no_metrics_but_divergence():
    train_set, _ = data(n=48)
    cmp = compare_rules({"Z-IL": lambda: ZIL(ALPHA)}, SIZES, train_set, epochs=1, batch_size=16, keep_nets=False)
    assert cmp["Z-IL"].test_accuracy == [] and cmp.n_test == 0
    assert len(cmp["Z-IL"].divergence) == 3 and cmp["Z-IL"].net is None


def test_finals_and_table(comparison):
    acc = finals([comparison, comparison], "accuracy")
    assert list(acc) == [REFERENCE, *RULES] and all(len(v) == 2 for v in acc.values())
    assert finals([comparison], "divergence")["IL"] == [comparison["IL"].divergence[-1]]
    assert finals([comparison], "loss")["IL"] == [comparison["IL"].test_loss[-1]]
    with pytest.raises(ValueError, match="use one of"):
        finals([comparison], "speed")


def test_mean_spread_and_formatting():
    assert mean_spread([0.5]) == (0.5, 0.0)
    mean, sd = mean_spread([1.0, 2.0, 3.0])
    assert mean == 2.0 and sd == pytest.approx(1.0)  # sample standard deviation (ddof = 1)
    assert format_mean_spread([0.81, 0.83], ".1f", scale=100) == "82.0 ± 1.4"
    assert format_mean_spread([0.8123], ".2f") == "0.81"
    with pytest.raises(ValueError):
        mean_spread([])
    table = markdown_table(["rule", "acc"], [["BP", "82.0 ± 1.4"], ["IL", 0.5]])
    assert table.splitlines() == ["| rule | acc |", "|---|---|", "| BP | 82.0 ± 1.4 |", "| IL | 0.5 |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["x"]])


def test_chance_accuracy_is_the_largest_class_share():
    labels = torch.tensor([2] * 6 + [0] * 3 + [1])
    assert chance_accuracy(labels, 3) == 0.6
    assert chance_accuracy(torch.tensor([4]), 10) == 1.0
    with pytest.raises(ValueError):
        chance_accuracy(torch.tensor([], dtype=torch.long), 10)


def test_learned_accuracy_by_hand():
    # 100 labels, largest share 0.3: 0.3 + 5·√(0.3·0.7/100) = 0.3 + 5·0.0458258 = 0.529129
    labels = torch.tensor([0] * 30 + [1] * 25 + [2] * 25 + [3] * 20)
    assert learned_accuracy(labels, 10) == pytest.approx(0.529129, abs=1e-6)
    # share 0.6 > ½: the standard deviation is at most ½/√n = 0.05
    assert learned_accuracy(torch.tensor([0] * 60 + [1] * 40), 2, sds=2) == pytest.approx(0.7)
    assert learned_accuracy(labels, 10, sds=0) == 0.3
    with pytest.raises(ValueError):
        learned_accuracy(labels, 10, sds=-1)


def test_learned_accuracy_is_rarely_beaten_by_guesses_that_ignore_the_input():
    """Monte Carlo: predictions independent of the labels, with the labels' own class shares (chance = ½ here)."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 200 + [1] * 200)
    acc = torch.stack([(labels[torch.randperm(400, generator=gen)] == labels).double().mean() for _ in range(4000)])
    assert float((acc > learned_accuracy(labels, 2, sds=2)).double().mean()) <= 0.035  # normal tail: 0.023
    assert float((acc > learned_accuracy(labels, 2, sds=0)).double().mean()) >= 0.3    # chance alone: ~½
