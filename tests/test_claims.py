"""The claims registry: a claim is checked when recorded, and a failing one names itself, its value and bound."""

import json
import math

import pytest

from pcbp.claims import ClaimFailed, Ledger, load


def test_a_holding_claim_returns_its_value_and_is_recorded():
    ledger = Ledger("zil")
    assert ledger.check("err", "Z-IL = BP", 3e-16, "<=", 1e-12, source="paper", basis="rounding") == 3e-16
    (claim,) = ledger.claims
    assert claim.holds and claim.chapter == "zil" and claim.bound_text == "≤ 1e-12"


def test_a_failing_claim_raises_with_its_name_value_bound_and_filter():
    ledger = Ledger("fazil")
    with pytest.raises(ClaimFailed, match=r"fazil: claim 'gate exact' \(left out: cut waves\): measured 0\.397, "
                                          r"needs ≤ 1e-12 \[rounding\]"):
        ledger.check("g", "gate exact", 0.397, "<=", 1e-12, source="book", basis="rounding", filtered="cut waves")


@pytest.mark.parametrize("op, bound, value, holds", [
    ("<=", 1.0, 1.0, True), ("<", 1.0, 1.0, False), (">=", 2.0, 2.0, True), (">", 2.0, 2.0, False),
    ("==", 0.0, 0.0, True), ("==", 0.0, 1e-300, False), ("<=", 1.0, math.nan, False), (">=", 1.0, math.inf, False),
])
def test_comparisons(op, bound, value, holds):
    ledger = Ledger(strict=False)
    ledger.check("k", "t", value, op, bound, source="book", basis="b")
    assert ledger.claims[0].holds is holds


def test_within_needs_a_tolerance_and_checks_both_sides():
    ledger = Ledger(strict=False)
    ledger.check("a", "slope", 1.04, "within", 1.0, tol=0.05, source="derived", basis="b")
    ledger.check("b", "slope", 0.94, "within", 1.0, tol=0.05, source="derived", basis="b")
    assert [c.holds for c in ledger.claims] == [True, False] and ledger.claims[0].bound_text == "1 ± 0.05"
    with pytest.raises(ValueError, match="tol"):
        ledger.check("c", "slope", 1.0, "within", 1.0, source="derived", basis="b")


@pytest.mark.parametrize("kwargs, match", [
    (dict(op="~"), "op="), (dict(source="me"), "source="), (dict(basis=""), "basis"),
])
def test_bad_claims_are_rejected(kwargs, match):
    args = dict(op="<=", source="book", basis="b") | kwargs
    with pytest.raises(ValueError, match=match):
        Ledger().check("k", "t", 1.0, args["op"], 2.0, source=args["source"], basis=args["basis"])


def test_a_key_is_recorded_once():
    ledger = Ledger("c")
    ledger.check("k", "t", 1.0, "<=", 2.0, source="book", basis="b")
    with pytest.raises(ValueError, match="twice"):
        ledger.check("k", "t", 1.0, "<=", 2.0, source="book", basis="b")


def test_save_and_load_round_trip(tmp_path):
    ledger = Ledger("zil", strict=False)
    ledger.check("k", "t", 2.0, "<=", 1.0, source="book", basis="b", filtered="none")
    path = ledger.save(tmp_path / "zil.json", commit="abc")
    (row,) = load([path])
    assert row["holds"] is False and row["commit"] == "abc" and row["filtered"] == "none"
    assert json.loads(path.read_text())[0]["bound_text"] == "≤ 1"


def test_a_report_records_a_missed_target_without_raising():
    ledger = Ledger("cost")
    assert ledger.report("t", "Z-IL / BP time", 1.3, "<=", 1.1, basis="the book's target") == 1.3
    (claim,) = ledger.claims
    assert claim.kind == "report" and not claim.holds and ledger.failed == []
