"""The efficient Z-IL (only the layer the wave is in) against the faithful simulation, bit for bit."""

import itertools

import pytest
import torch

from pcbp.activations import ACTIVATIONS
from pcbp.data import teacher_student
from pcbp.experiments import error_vs_autograd, random_problem
from pcbp.network import PCN
from pcbp.rules import ZIL
from pcbp.rules.zil_wave import ZILWave
from pcbp.trainer import train
from pcbp.updates import Trace

GRID = list(itertools.product((2, 3, 5, 8), sorted(ACTIVATIONS), (False, True)))


@pytest.mark.parametrize("depth, activation, bias", GRID)
def test_wave_updates_equal_faithful_zil_bit_for_bit(depth, activation, bias):
    net, s_in, s_out = random_problem((4,) + (9,) * (depth - 1) + (6,), activation, bias=bias, seed=depth)
    a = ZIL(0.1)(net, s_in, s_out, apply=False)
    b = ZILWave(0.1)(net, s_in, s_out, apply=False)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors(net), b.tensors(net)))
    assert error_vs_autograd(ZILWave(0.1), net, s_in, s_out) <= 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wave_and_faithful_train_to_identical_weights(dtype):
    s_in, s_out = teacher_student(256, (4, 16, 16, 8), seed=0, dtype=dtype)
    a, b = PCN((4, 16, 16, 8), dtype=dtype, seed=1), PCN((4, 16, 16, 8), dtype=dtype, seed=1)
    train(a, ZIL(0.05), s_in, s_out, epochs=2, batch_size=16, progress=False, twin=False)
    train(b, ZILWave(0.05), s_in, s_out, epochs=2, batch_size=16, progress=False, twin=False)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_wave_cannot_trace(problem):
    net, s_in, s_out = problem
    with pytest.raises(ValueError, match="cannot trace"):
        ZILWave(0.1)(net, s_in, s_out, trace=Trace())
