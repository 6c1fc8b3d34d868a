"""Exactness on every available device (the CPU always; CUDA where a GPU is present)."""

import pytest
import torch

from pcbp.experiments import error_vs_autograd, random_problem
from pcbp.rules import BP, ZIL, FaZIL

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def on(device, net, *tensors):
    moved = net.to(device=device)
    return (moved, *(t.to(device) for t in tensors))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("rule", [BP(0.1), ZIL(0.1), FaZIL(0.1)], ids=["BP", "Z-IL", "Fa-Z-IL"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rule_equals_autograd_on_device(device, rule, activation):
    net, s_in, s_out = on(device, *random_problem((10, 64, 64, 64, 32), activation, bias=True, batch=16))
    assert net.device.type == device
    updates = rule(net, s_in, s_out, apply=False)
    assert all(t.device.type == device for t in updates.tensors(net))
    assert error_vs_autograd(rule, net, s_in, s_out) <= 1e-12


@pytest.mark.parametrize("device", DEVICES)
def test_device_agrees_with_cpu_to_rounding(device):
    net, s_in, s_out = random_problem((10, 64, 64, 32), "tanh", batch=16)
    cpu = ZIL(0.1)(net, s_in, s_out, apply=False).tensors(net)
    dev_net, d_in, d_out = on(device, net, s_in, s_out)
    dev = ZIL(0.1)(dev_net, d_in, d_out, apply=False).tensors(dev_net)
    for a, b in zip(cpu, dev):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-15)
