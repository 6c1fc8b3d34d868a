"""A small SGD trainer: any rule over a data set, with a BP-trained twin to measure divergence."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm  # the plain bar: tqdm.auto warns in notebooks without ipywidgets

from pcbp.checks import check_finite_weights, check_steps
from pcbp.data import batches
from pcbp.metrics import accuracy, divergence, loss
from pcbp.network import PCN
from pcbp.rules import Rule
from pcbp.rules.bp import AutogradSGD

Tensor = torch.Tensor


@dataclass
class History:
    """What a run recorded: per iteration `loss` (of the mini-batch before the update) and
    `divergence` from the BP twin; per epoch `test_loss` and `test_accuracy` (if test data)."""

    loss: list[float] = field(default_factory=list)
    divergence: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def train(
    net: PCN,
    rule: Rule,
    s_in: Tensor,
    s_out: Tensor,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    twin: bool = True,
    test: tuple[Tensor, Tensor, Tensor] | None = None,
    progress: bool = True,
) -> History:
    """Train `net` in place with `rule`, plain SGD over shuffled mini-batches.

    With `twin=True` a copy of the initial `net` is trained by BP, as `loss.backward()` and
    `torch.optim.SGD` do it (`AutogradSGD`, same rate `α`), on the same
    batches, and `History.divergence` records the distance between the two after every update.
    `test = (s_in, s_out, labels)` adds a test loss and accuracy after every epoch.
    """
    check_steps("epochs", epochs)
    bp_twin = net.clone() if twin else None
    bp = AutogradSGD(rule.alpha)
    history = History()
    n_batches = -(-s_in.shape[0] // batch_size)
    bar = tqdm(total=epochs * n_batches, desc=rule.name, disable=not progress, leave=False)
    for epoch in range(epochs):
        for x, y in batches(s_in, s_out, batch_size, seed=seed + epoch):
            history.loss.append(loss(net, x, y))
            rule(net, x, y)
            if bp_twin is not None:
                bp(bp_twin, x, y)
                history.divergence.append(divergence(net, bp_twin))
            bar.update()
        check_finite_weights(net)
        if test is not None:
            history.test_loss.append(loss(net, test[0], test[1]))
            history.test_accuracy.append(accuracy(net, test[0], test[2]))
    bar.close()
    return history
