"""Z-IL and Fa-Z-IL updates equal BP's, oracle `torch.autograd`, float64, ≤ 1e-12 relative.

The grid: depths 2–8, narrow and wide layers, a single sample and a batch, every activation,
with and without biases.
"""

import itertools

import pytest

from pcbp.activations import ACTIVATIONS
from pcbp.experiments import error_vs_autograd, random_problem
from pcbp.rules import ZIL, FaZIL

GRID = list(itertools.product((2, 3, 4, 6, 8), (3, 16), (1, 7), sorted(ACTIVATIONS), (False, True)))


@pytest.mark.parametrize("rule", [ZIL(0.1), FaZIL(0.1)], ids=["Z-IL", "Fa-Z-IL"])
@pytest.mark.parametrize("depth, width, batch, activation, bias", GRID)
def test_updates_equal_autograd_bp(rule, depth, width, batch, activation, bias):
    sizes = (4,) + (width,) * (depth - 1) + (5,)
    net, s_in, s_out = random_problem(sizes, activation, bias=bias, batch=batch, seed=depth * width + batch)
    assert error_vs_autograd(rule, net, s_in, s_out) <= 1e-12
