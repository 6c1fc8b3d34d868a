"""Every exact rule's updates equal BP's, oracle `torch.autograd` (and `torch.optim.SGD` for the weights it
trains), float64, ≤ 1e-12 relative, in both modes: `apply=True` (training) and `apply=False`.

The grid: depths 2–8; narrow, wide and square networks (every layer as wide as the next, so a transposed
weight runs without a shape error and must be caught by its value); a single sample and a batch; every
activation; with and without biases. Where `|δ| ≪ |y|` (a long chain of small slopes) the bound is
the rounding floor `8 ε max ‖y‖/‖δ‖` instead (`pcbp.experiments.rounding_floor`).
"""

import itertools

import pytest

from pcbp.activations import ACTIVATIONS
from pcbp.experiments import MODES, error_vs_autograd, random_problem, rounding_floor
from pcbp.rules import BP, ZIL, FaZIL, FaZILQuiet, ZILWave

RULES = {"BP": BP(0.1), "Z-IL": ZIL(0.1), "Z-IL (wave)": ZILWave(0.1), "Fa-Z-IL": FaZIL(0.1),
         "Fa-Z-IL (quiet)": FaZILQuiet(0.1)}
SHAPES = {"narrow": lambda d: (4,) + (3,) * (d - 1) + (5,), "wide": lambda d: (4,) + (16,) * (d - 1) + (5,),
          "square": lambda d: (5,) * (d + 1)}
GRID = list(itertools.product((2, 3, 4, 6, 8), SHAPES, (1, 7), sorted(ACTIVATIONS), (False, True)))


@pytest.mark.parametrize("depth, shape, batch, activation, bias", GRID)
def test_updates_equal_autograd_bp_in_both_modes(depth, shape, batch, activation, bias):
    net, s_in, s_out = random_problem(SHAPES[shape](depth), activation, bias=bias, batch=batch,
                                      seed=depth * 31 + batch + len(shape))
    bound = max(1e-12, 8 * rounding_floor(net, s_in, s_out))  # Z-IL forms δ as (y + δ) − y: see rounding_floor
    for (name, rule), apply in itertools.product(RULES.items(), MODES):
        assert error_vs_autograd(rule, net, s_in, s_out, apply=apply) <= bound, (name, apply)
