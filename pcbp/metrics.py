"""How far apart two sets of weights or updates are, and how well a network does."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pcbp.network import PCN
from pcbp.updates import Updates

Tensor = torch.Tensor


def relative_error(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """`‖a − b‖ / ‖b‖` over all tensors together (Frobenius): `b` is the reference."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} tensors with {len(b)}")
    diff = sum(float((x - y).double().pow(2).sum()) for x, y in zip(a, b))
    ref = sum(float(y.double().pow(2).sum()) for y in b)
    return (diff / ref) ** 0.5 if ref > 0 else diff**0.5


def update_error(net: PCN, updates: Updates, reference: Updates) -> float:
    """Relative error of a rule's updates against reference updates (e.g. autograd BP)."""
    return relative_error(updates.tensors(net), reference.tensors(net))


def divergence(net: PCN, reference: PCN) -> float:
    """Relative distance of all weights and biases from a reference (BP-trained) twin."""
    return relative_error(net.parameters(), reference.parameters())


def loss(net: PCN, s_in: Tensor, s_out: Tensor) -> float:
    """`E = ½‖s_out − y^0‖²`, averaged over samples: the loss BP descends."""
    with torch.no_grad():
        return float(0.5 * (s_out - net(s_in)).pow(2).sum() / s_in.shape[0])


def accuracy(net: PCN, s_in: Tensor, labels: Tensor) -> float:
    """Fraction of samples whose largest output unit is the label."""
    with torch.no_grad():
        return float((net(s_in).argmax(dim=1) == labels).double().mean())
