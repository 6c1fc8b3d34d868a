"""The protocols' requirements table (oracle: the code it names, and `pcbp.stream`'s table of Φ's inputs)."""

import pytest

from pcbp.experiments import random_problem
from pcbp.plausibility import needs, resolve, steps_per_sample, table
from pcbp.stream import shared_inputs


def test_every_row_names_code_that_exists():
    for row in needs():
        for path in row.source.split(", "):
            assert callable(resolve(path)), path


def test_a_missing_source_is_named():
    with pytest.raises(AttributeError, match="no nothing_here"):
        resolve("pcbp.stream.nothing_here")


def test_the_gates_shared_signals_are_the_stream_tables():
    rows = {r.rule: r for r in needs()}
    assert list(rows["Fa-Z-IL"].shared) == shared_inputs("fazil") and shared_inputs("fazil")
    assert list(rows["Fa-Z-IL, self-arming stream"].shared) == shared_inputs("stream") == []
    assert {r["rule"]: r["shared"] for r in table()}["Fa-Z-IL, self-arming stream"] == "none"


def test_steps_per_sample_count_settling_and_wave_and_il_falls_short():
    """Z-IL's steps are its settling plus its l_max-step wave (≥ l_max + 1 from rest, where the errors are not 0);
    fixed-prediction PC at η = 1 is one step shorter than Z-IL; IL's floor is above a tight target."""
    net, s_in, s_out = random_problem((3, 6, 6, 4), "tanh", batch=4, seed=0)
    steps, il_best = steps_per_sample(net, s_in, s_out, 1e-6, k_arm=net.l_max - 1, max_T=100)
    assert steps["Z-IL"] > net.l_max and steps["fixed-prediction PC"] == steps["Z-IL"] - 1
    assert steps["Fa-Z-IL, self-arming stream"] == 3 * net.l_max - 1  # N = l_max + k_arm, M = l_max
    assert il_best > 1e-6 and steps["IL (from rest)"] is None and steps["IL (from the feedforward pass)"] is None
