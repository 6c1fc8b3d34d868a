"""Several learning rules side by side: one initial network, the same batches, one BP reference.

`compare_rules` trains a copy of one seeded network with every rule it is given, and one more
copy with BP as PyTorch runs it (`loss.backward()` and `torch.optim.SGD`, rule `AutogradSGD`),
on the same mini-batches in the same order: a fault in pcbp's own update path cannot cancel
against that reference. It records, for every rule, the
relative distance of its weights from the BP-trained copy over the iterations, and the test
loss and accuracy before training and after every epoch. `mean_spread` and `markdown_table`
turn several seeds' results into the rows of a table; `chance_accuracy` and `learned_accuracy`
say what test accuracy a network that learned nothing reaches, and what one must beat to have learned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from pcbp.checks import check_steps
from pcbp.data import batches
from pcbp.metrics import accuracy, divergence, loss
from pcbp.network import PCN
from pcbp.rules import Rule
from pcbp.rules.bp import AutogradSGD

Tensor = torch.Tensor

REFERENCE = "BP"


@dataclass
class Run:
    """What one rule did in a comparison.

    `divergence[k]` is the relative weight distance from the BP reference after
    `iterations[k]` updates; `test_loss` and `test_accuracy` hold the value before training
    (index 0) and after each epoch; `seconds` is the wall time spent inside the rule's updates;
    `net` is the trained network.
    """

    name: str
    rule: str
    iterations: list[int] = field(default_factory=list)
    divergence: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    updates: int = 0
    net: PCN | None = None

    @property
    def final_divergence(self) -> float:
        """Distance from the BP reference at the end of training (`nan` if none was recorded)."""
        return self.divergence[-1] if self.divergence else math.nan

    @property
    def seconds_per_update(self) -> float:
        return self.seconds / self.updates if self.updates else math.nan


@dataclass
class Comparison:
    """The runs of one `compare_rules` call: `reference` is the BP run, `runs` the others by name."""

    reference: Run
    runs: dict[str, Run]
    seed: int
    dtype: torch.dtype
    alpha: float
    epochs: int
    batch_size: int
    n_train: int
    n_test: int

    def all_runs(self) -> dict[str, Run]:
        """The BP reference first (under `REFERENCE`), then every other rule in the order given."""
        return {REFERENCE: self.reference, **self.runs}

    def __getitem__(self, name: str) -> Run:
        return self.all_runs()[name]


def batch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch: distinct for every (seed, epoch) with epoch < 1000."""
    return 1000 * seed + epoch


def common_alpha(rules: Mapping[str, Rule]) -> float:
    """The learning rate all rules share (the BP reference uses it); raise if they differ."""
    alphas = {name: rule.alpha for name, rule in rules.items()}
    if not alphas:
        raise ValueError("make_rules is empty: give at least one rule to compare with BP")
    if len(set(alphas.values())) != 1:
        raise ValueError(f"rules must share one learning rate α to be compared with one BP reference, got {alphas}")
    return next(iter(alphas.values()))


def compare_rules(
    make_rules: Mapping[str, Callable[[], Rule]],
    sizes: Sequence[int],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor, Tensor] | None = None,
    *,
    activation: str = "tanh",
    bias: bool = False,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    eval_every: int = 1,
    keep_nets: bool = True,
) -> Comparison:
    """Train `PCN(sizes, activation, seed=seed)` with every rule and with BP, on the same batches.

    `make_rules` maps a name to a factory of a rule; all rules must share one `α`, which the
    BP reference uses too. `train = (s_in, s_out)`; `test = (s_in, s_out, labels)`. Data are
    cast to `dtype`. Epoch `e` visits the training set in the order `batches(..., seed=
    batch_seed(seed, e))`; within an iteration the reference and then every rule take one SGD
    step on the same mini-batch. The divergence from the reference is recorded every
    `eval_every` iterations and after the last one.
    """
    check_steps("epochs", epochs)
    check_steps("eval_every", eval_every)
    if REFERENCE in make_rules:
        raise ValueError(f"{REFERENCE!r} names the BP reference; give a BP rule another name (e.g. 'BP twin')")
    rules = {name: make() for name, make in make_rules.items()}
    alpha = common_alpha(rules)
    s_in, s_out = (v.to(dtype) for v in train)
    if test is not None:
        test = (test[0].to(dtype), test[1].to(dtype), test[2])
    init = PCN(sizes, activation, bias=bias, dtype=dtype, seed=seed)
    steppers = {REFERENCE: AutogradSGD(alpha), **rules}
    nets = {name: init.clone() for name in steppers}
    runs = {name: Run(name, rule.name) for name, rule in steppers.items()}
    ref = nets[REFERENCE]

    def evaluate() -> None:
        if test is None:
            return
        for name, run in runs.items():
            run.test_loss.append(loss(nets[name], test[0], test[1]))
            run.test_accuracy.append(accuracy(nets[name], test[0], test[2]))

    def record(it: int) -> None:
        for name, run in runs.items():
            run.iterations.append(it)
            run.divergence.append(divergence(nets[name], ref))

    total = epochs * -(-len(s_in) // batch_size)
    evaluate()
    it = 0
    for epoch in range(epochs):
        for x, y in batches(s_in, s_out, batch_size, seed=batch_seed(seed, epoch)):
            for name, rule in steppers.items():
                start = time.perf_counter()
                rule(nets[name], x, y)
                runs[name].seconds += time.perf_counter() - start
                runs[name].updates += 1
            it += 1
            if it % eval_every == 0 or it == total:
                record(it)
        evaluate()
    for name, run in runs.items():
        run.net = nets[name] if keep_nets else None
    reference = runs.pop(REFERENCE)
    return Comparison(
        reference=reference, runs=runs, seed=seed, dtype=dtype, alpha=alpha, epochs=epochs,
        batch_size=batch_size, n_train=len(s_in), n_test=0 if test is None else len(test[0]),
    )


def finals(comparisons: Sequence[Comparison], what: str = "accuracy") -> dict[str, list[float]]:
    """Per rule name, one final value per comparison (seed): `accuracy`, `loss` or `divergence`."""
    pick: dict[str, Callable[[Run], float]] = {
        "accuracy": lambda r: r.test_accuracy[-1] if r.test_accuracy else math.nan,
        "loss": lambda r: r.test_loss[-1] if r.test_loss else math.nan,
        "divergence": lambda r: r.final_divergence,
    }
    if what not in pick:
        raise ValueError(f"what={what!r}: use one of {', '.join(map(repr, pick))}")
    out: dict[str, list[float]] = {}
    for comparison in comparisons:
        for name, run in comparison.all_runs().items():
            out.setdefault(name, []).append(pick[what](run))
    return out


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (`ddof = 1`; 0 for a single value) of `values`."""
    if len(values) == 0:
        raise ValueError("mean_spread needs at least one value")
    v = torch.tensor([float(x) for x in values], dtype=torch.float64)
    return float(v.mean()), float(v.std()) if len(v) > 1 else 0.0


def format_mean_spread(values: Sequence[float], fmt: str = ".4f", scale: float = 1.0) -> str:
    """`"mean ± sd"` of `values` times `scale` (e.g. 100 for percent), or just the value for one."""
    mean, spread = mean_spread(values)
    if len(values) == 1:
        return f"{scale * mean:{fmt}}"
    return f"{scale * mean:{fmt}} ± {scale * spread:{fmt}}"


def chance_accuracy(labels: Tensor, n_classes: int) -> float:
    """Test accuracy of the best guess that ignores the input: the share of the most frequent label."""
    if labels.numel() == 0:
        raise ValueError("chance_accuracy needs at least one label")
    return float(torch.bincount(labels.flatten(), minlength=n_classes).max()) / labels.numel()


def learned_accuracy(labels: Tensor, n_classes: int, sds: float = 5.0) -> float:
    """The test accuracy a network must exceed to have learned: chance plus `sds` binomial standard deviations.

    A network whose predictions are independent of the labels is right on a test image with
    probability m ≤ p = `chance_accuracy(labels)`, so its accuracy over the n test images has
    standard deviation √(m(1 − m)/n) ≤ √(q(1 − q)/n), q = min(p, ½); with `sds = 5` such a network
    passes by luck with probability below 3e-7 (normal approximation).
    """
    if sds < 0:
        raise ValueError(f"sds={sds} must be ≥ 0")
    p, n = chance_accuracy(labels, n_classes), labels.numel()
    q = min(p, 0.5)
    return p + sds * math.sqrt(q * (1 - q) / n)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; cells are converted with `str`."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells, got {[len(r) for r in rows]}")
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
