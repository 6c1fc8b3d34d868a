"""`step_floor`: the rounding an applied step cannot beat, against IEEE rounding itself (oracle: float64)."""

import pytest
import torch

from pcbp.experiments import random_problem, step_floor
from pcbp.rules import autograd_updates


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_step_floor_bounds_and_resolves_the_rounding_of_a_step(dtype):
    net, s_in, s_out = random_problem((4, 16, 16, 8), "tanh", batch=16, seed=3, dtype=dtype)
    update = autograd_updates(net, s_in, s_out, 0.1).tensors(net)
    params = net.parameters()
    # the step as training applies it (rounded to `dtype`) minus the step it meant, both exact in float64
    err = [(p + d).double() - p.double() - d.double() for p, d in zip(params, update)]
    ref = [d.double() for d in update]
    realized = sum(float(e.pow(2).sum()) for e in err) ** 0.5 / sum(float(r.pow(2).sum()) for r in ref) ** 0.5
    floor = step_floor(net, s_in, s_out, 0.1)
    assert realized <= floor / 2  # one rounding to nearest: at most half an ulp, ≤ (eps/2)|θ + Δθ|, per weight
    assert realized >= floor / 50  # and not a loose bound: a random weight's rounding is ~ulp/√12 on average


def test_step_floor_scales_as_eps_over_the_step():
    net, s_in, s_out = random_problem((4, 16, 16, 8), "tanh", batch=16, seed=3)
    small, large = step_floor(net, s_in, s_out, 1e-4), step_floor(net, s_in, s_out, 1e-3)
    assert small / large == pytest.approx(10, rel=1e-2)  # ‖θ + Δθ‖ ≈ ‖θ‖ while ‖Δθ‖ ∝ α
    net32 = random_problem((4, 16, 16, 8), "tanh", batch=16, seed=3, dtype=torch.float32)
    eps_ratio = torch.finfo(torch.float32).eps / torch.finfo(torch.float64).eps
    assert step_floor(*net32, 1e-3) / large == pytest.approx(eps_ratio, rel=1e-3)
