"""The trainer: any rule, SGD, and the divergence from a BP-trained twin."""

import torch

from pcbp.data import teacher_student
from pcbp.metrics import accuracy, divergence, loss
from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, FaZIL
from pcbp.trainer import train


def data(n=192, sizes=(4, 12, 12, 6), seed=0):
    return teacher_student(n, sizes, seed=seed)


def test_bp_stays_with_its_autograd_sgd_twin_to_rounding():
    """The twin is trained by `loss.backward()` + `torch.optim.SGD`: pcbp's BP shares no code with it."""
    s_in, s_out = data()
    hist = train(PCN((4, 12, 12, 6), seed=1), BP(0.1), s_in, s_out, epochs=2, batch_size=32, progress=False)
    assert len(hist.divergence) == 2 * 192 // 32 and 0 < max(hist.divergence) <= 1e-12


def test_training_reduces_the_loss_for_every_rule():
    s_in, s_out = data(n=256)
    for rule in (BP(0.2), ZIL(0.2), FaZIL(0.2), IL(0.2, gamma=0.1, T=20)):
        net = PCN((4, 12, 12, 6), seed=1)
        before = loss(net, s_in, s_out)
        train(net, rule, s_in, s_out, epochs=5, batch_size=16, progress=False, twin=False)
        assert loss(net, s_in, s_out) < 0.7 * before, rule.name


def test_zil_and_fazil_stay_at_rounding_distance_il_does_not():
    s_in, s_out = data()
    final = {}
    for rule in (ZIL(0.1), FaZIL(0.1), IL(0.1)):
        hist = train(PCN((4, 12, 12, 6), seed=1), rule, s_in, s_out, epochs=3, batch_size=16, progress=False)
        final[rule.name] = hist.divergence[-1]
    assert final["Z-IL"] <= 1e-13 and final["Fa-Z-IL"] <= 1e-13
    assert final["IL"] > 1e6 * max(final["Z-IL"], final["Fa-Z-IL"], 1e-16)


def test_test_metrics_are_recorded_per_epoch():
    s_in, s_out = data()
    labels = s_out.argmax(dim=1)
    net = PCN((4, 12, 12, 6), seed=1)
    hist = train(net, ZIL(0.1), s_in, s_out, epochs=3, batch_size=32, progress=False,
                 test=(s_in, s_out, labels))
    assert len(hist.test_loss) == 3 and len(hist.test_accuracy) == 3
    assert hist.test_accuracy[-1] == accuracy(net, s_in, labels)


def test_metrics_on_known_values():
    net = PCN((2, 2), "linear")
    net.theta[1].copy_(torch.eye(2, dtype=torch.float64))
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    assert accuracy(net, x, torch.tensor([0, 0])) == 0.5
    assert loss(net, x, torch.zeros_like(x)) == 0.5 * 10 / 2
    other = net.clone()
    other.theta[1].mul_(2)
    assert abs(divergence(other, net) - 1.0) < 1e-15
