"""The quiet Fa-Z-IL (errors sent on as Φ(ε), finished layers skipped) against autograd and FaZIL."""

import itertools

import pytest
import torch

from pcbp.activations import ACTIVATIONS
from pcbp.autonomy import thresholded_bp, thresholded_wave_bp
from pcbp.data import teacher_student
from pcbp.experiments import MODES, error_vs_autograd, random_problem, twin_divergence
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.rules import FaZIL
from pcbp.rules.fazil_quiet import FaZILQuiet
from pcbp.updates import Trace

GRID = list(itertools.product((2, 3, 5, 8), sorted(ACTIVATIONS), (False, True)))


@pytest.mark.parametrize("depth, activation, bias", GRID)
def test_quiet_updates_equal_autograd_and_dense_fazil(depth, activation, bias):
    net, s_in, s_out = random_problem((4,) + (9,) * (depth - 1) + (6,), activation, bias=bias, seed=depth)
    assert error_vs_autograd(FaZILQuiet(0.1), net, s_in, s_out) <= 1e-12
    dense = FaZIL(0.1)(net, s_in, s_out, apply=False)
    assert update_error(net, FaZILQuiet(0.1)(net, s_in, s_out, apply=False), dense) <= 1e-13


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_quiet_from_the_settled_network_equals_bp(activation):
    net, s_in, s_out = random_problem((3, 6, 6, 5), activation, seed=3)
    assert error_vs_autograd(FaZILQuiet(0.1, init="settle", settle_gamma=0.2), net, s_in, s_out) <= 1e-12


def test_quiet_stays_with_bp_over_training_in_float32_and_float64():
    for dtype, bound in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        s_in, s_out = teacher_student(256, (4, 16, 16, 8), "relu", seed=0, dtype=dtype)
        div = twin_divergence(FaZILQuiet(0.05), PCN((4, 16, 16, 8), "relu", dtype=dtype, seed=1), s_in, s_out,
                              steps=100, batch_size=16)
        assert div[-1] <= bound, (dtype, div[-1])


def test_quiet_falls_silent_after_the_wave(problem, monkeypatch):
    """It stops by itself right after the wave reaches the input, however many steps it may take."""
    net, s_in, s_out = problem
    steps = []
    relax = FaZILQuiet._relax

    def counting(self, *args):
        steps.append(1)
        return relax(self, *args)

    monkeypatch.setattr(FaZILQuiet, "_relax", counting)
    FaZILQuiet(0.1, steps=1000)(net, s_in, s_out, apply=False)
    assert len(steps) <= net.l_max + 2


def test_quiet_cannot_trace(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="cannot trace"):
        FaZILQuiet(0.1)(net, s_in, s_out, trace=Trace())


OPTIONS = [dict(init=i, gamma=g, steps=s, settle_gamma=0.2) for i in ("feedforward", "settle") for g in (1.0, 0.7)
           for s in (None, 3, 12)]


@pytest.mark.parametrize("apply", MODES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_quiet_honours_every_option_of_the_faithful_rule(options, activation, apply):
    """An option the faithful rule honours but the efficient twin ignored would show here."""
    net, s_in, s_out = random_problem((3, 5, 5, 5, 4), activation, bias=True, seed=5)
    dense = FaZIL(0.1, **options)(net.clone(), s_in, s_out, apply=apply)
    quiet = FaZILQuiet(0.1, **options)(net.clone(), s_in, s_out, apply=apply)
    assert update_error(net, quiet, dense) <= 1e-12


@pytest.mark.parametrize("tau", [1e-2, 1e-3])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_with_a_threshold_quiet_thresholds_the_wave_and_fazil_the_updates(activation, tau):
    net, s_in, s_out = random_problem((3, 5, 5, 5, 4), activation, bias=True, seed=5)
    quiet = FaZILQuiet(0.1, tau=tau)(net, s_in, s_out, apply=False)
    dense = FaZIL(0.1, tau=tau)(net, s_in, s_out, apply=False)
    assert update_error(net, quiet, thresholded_wave_bp(net, s_in, s_out, 0.1, tau)) <= 1e-12
    assert update_error(net, dense, thresholded_bp(net, s_in, s_out, 0.1, tau)) <= 1e-12


def test_quiet_offers_only_the_exact_gate():
    with pytest.raises(ValueError, match="phi='feedback'.*FaZIL\\(phi='departure'\\)"):
        FaZILQuiet(0.1, phi="departure")
