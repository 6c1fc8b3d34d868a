"""Shared fixtures: float64 random problems as the oracles expect them."""

from __future__ import annotations

import pytest

from pcbp.experiments import random_problem


@pytest.fixture
def problem():
    """A 4-layer tanh network with a batch of 6: `(net, s_in, s_out)`."""
    return random_problem((3, 6, 5, 4, 7), "tanh", batch=6, seed=11)

