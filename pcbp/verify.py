"""`pcbp verify`: re-check the core claims on random networks in seconds and print a table.

Every row is a `pcbp.claims.Claim`: the same registry the book's chapters use, each bound with its
basis. Every rule is checked in both modes (`apply=True`, as training runs it, and `apply=False`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

from pcbp.activations import ACTIVATIONS
from pcbp.approximation import il_limit_updates, targets_near_output
from pcbp.autonomy import wave_cut
from pcbp.claims import Claim, Ledger
from pcbp.conditions import loglog_slope, noise_sweep
from pcbp.data import CHECKSUMS, FASHION, DataNotFoundError, load_fashion_mnist, teacher_student
from pcbp.experiments import (
    MODES,
    dtype_divergence,
    error_vs_autograd,
    gamma_law_error,
    il_reference,
    lemma_errors,
    random_problem,
    relu_sweep,
    twin_divergence,
)
from pcbp.metrics import update_error
from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, FaZIL, FaZILQuiet, Rule, ZILWave

EXACT = "float64 rounding: 1e-12 is ~4500 machine epsilons, far below any real difference"
EXACT_RULES: dict[str, Callable[[], Rule]] = {
    "BP": lambda: BP(0.1), "Z-IL": lambda: ZIL(0.1), "Z-IL (wave)": lambda: ZILWave(0.1),
    "Fa-Z-IL": lambda: FaZIL(0.1), "Fa-Z-IL (quiet)": lambda: FaZILQuiet(0.1),
}


def _grid_error(make: Callable[[], Rule], apply: bool, depths=(2, 3, 5, 8), acts=None, biases=(False, True)) -> float:
    worst = 0.0
    for depth, act, bias in itertools.product(depths, acts or sorted(ACTIVATIONS), biases):
        net, s_in, s_out = random_problem((3,) + (7,) * (depth - 1) + (5,), act, bias=bias, seed=depth)
        worst = max(worst, error_vs_autograd(make(), net, s_in, s_out, apply=apply))
    return worst


def _exactness(ledger: Ledger) -> None:
    for (name, make), apply in itertools.product(EXACT_RULES.items(), MODES):
        ledger.check(f"{name} apply={apply}", f"{name} = autograd BP, depths 2-8, all activations, +-bias, "
                     f"apply={apply}", _grid_error(make, apply), "<=", 1e-12, source="paper", basis=EXACT)
    problems = list(relu_sweep(60))
    n_cut = sum(bool(wave_cut(*p).any()) for p in problems)
    ledger.check("relu sweep cut", "ReLU sweep: networks with a sample whose wave a dead layer cuts", n_cut, ">=", 1,
                 source="book", basis="the sweep must hold the case that once broke Fa-Z-IL")
    relu_rules = [n for n in ("Fa-Z-IL", "Fa-Z-IL (quiet)", "Z-IL") if n in EXACT_RULES]
    for name, apply in itertools.product(relu_rules, MODES):
        worst = max(error_vs_autograd(EXACT_RULES[name](), *p, apply=apply) for p in problems)
        ledger.check(f"relu {name} apply={apply}", f"{name} = BP on {len(problems)} small ReLU networks, "
                     f"apply={apply}", worst, "<=", 1e-12, source="book", basis=EXACT)
    for apply in MODES:
        settled = _grid_error(lambda: FaZIL(0.1, init="settle", settle_gamma=0.2), apply, (2, 3), ("tanh", "sigmoid"),
                              (False,))
        ledger.check(f"settled apply={apply}", f"Fa-Z-IL from the settled free network = BP, apply={apply}",
                     settled, "<=", 1e-12, source="paper", basis=EXACT)


def _lemma(ledger: Ledger) -> None:
    lemma = [lemma_errors(*random_problem((3, 7, 7, 7, 5), a, seed=1)) for a in sorted(ACTIVATIONS)]
    ledger.check("lemma before", "lemma: eps^l_t = 0 for t < l (max |eps|)", max(b for b, _ in lemma), "==", 0.0,
                 source="derived", basis="exact: nothing has reached those nodes, so no rounding either")
    ledger.check("lemma at", "lemma: eps^l_l = delta^l (rel. error)", max(a for _, a in lemma), "<=", 1e-12,
                 source="derived", basis=EXACT)
    law = gamma_law_error(*random_problem((3, 7, 7, 7, 5), "tanh", seed=2), gamma=0.5)
    ledger.check("gamma law", "gamma = 0.5 only: eps^l_l = gamma^l delta^l (rel. error)", law, "<=", 1e-12,
                 source="derived", basis=EXACT)


def _training(ledger: Ledger) -> None:
    sizes = (4, 16, 16, 8)
    s_in, s_out = teacher_student(256, sizes, seed=3)
    zil = twin_divergence(ZIL(0.05), PCN(sizes, seed=3), s_in, s_out, steps=200, batch_size=16)
    ledger.check("zil 200", "Z-IL vs autograd+SGD weights after 200 steps (rel.)", max(zil), "<=", 1e-10,
                 source="paper", basis="float64 rounding accumulated over 200 steps")
    r_in, r_out = teacher_student(400, (3, 6, 6, 6, 5), "relu", seed=1)
    fazil = twin_divergence(FaZIL(0.05), PCN((3, 6, 6, 6, 5), "relu", seed=2), r_in, r_out, steps=200, batch_size=4)
    ledger.check("fazil relu 200", "Fa-Z-IL (training mode) vs autograd+SGD on ReLU, 200 steps, batch 4",
                 max(fazil), "<=", 1e-10, source="paper", basis="float64 rounding accumulated over 200 steps")
    eps_ratio = torch.finfo(torch.float32).eps / torch.finfo(torch.float64).eps
    ratio = dtype_divergence(lambda: ZIL(0.05), torch.float32) / dtype_divergence(lambda: ZIL(0.05), torch.float64)
    ledger.check("dtype ratio", "Z-IL divergence float32 / float64, log10 (rounding: log10 eps32/eps64)",
                 math.log10(ratio), "within", math.log10(eps_ratio), tol=1.0, source="paper",
                 basis="a rounding divergence scales with the machine epsilon; factor 10 either way")


def _conditions(ledger: Ledger) -> None:
    net, s_in, s_out = random_problem((3, 7, 7, 7, 5), "tanh", seed=4)
    sigmas = (1e-6, 1e-5, 1e-4)
    slope = loglog_slope(sigmas, noise_sweep(net, s_in, s_out, sigmas))
    ledger.check("c1 slope", "C1 broken by noise sigma: error grows as sigma^p (log-log slope p)", slope, "within",
                 1.0, tol=0.05, source="derived", basis="first-order perturbation of the start")


def _il(ledger: Ledger) -> None:
    worst = 0.0
    for act, bias in itertools.product(("tanh", "relu"), (False, True)):
        net, s_in, s_out = random_problem((3, 6, 5, 4, 7), act, bias=bias, seed=5)
        fast = IL(0.1, gamma=0.1, T=25)(net, s_in, s_out, apply=False)
        worst = max(worst, update_error(net, fast, il_reference(net, s_in, s_out, 0.1, 0.1, 25)))
    ledger.check("il fast", "IL (in-place relaxation) = IL written out with pcbp.pcn steps", worst, "<=", 1e-13,
                 source="book", basis="the same arithmetic reordered: a few float64 ulps")
    net, s_in, _ = random_problem((4, 8, 8, 6), "tanh", seed=3)
    scales, errs = (1e-2, 1e-3, 1e-4), []
    for scale in scales:
        s_out = targets_near_output(net, s_in, scale)
        il = IL(0.1, gamma=0.2, T=2000)(net, s_in, s_out, apply=False)
        errs.append(update_error(net, il, il_limit_updates(net, s_in, s_out, 0.1)))
    ledger.check("il limit", "IL at equilibrium minus its predicted (absorbed-error) update, log-log slope in "
                 "the output error", loglog_slope(scales, errs), "within", 1.0, tol=0.1, source="derived",
                 basis="the prediction is the first-order term; the remainder is one order higher")


def _data(ledger: Ledger) -> None:
    try:
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
        found = float(len(train) == 60_000 and len(test) == 10_000 and bool(CHECKSUMS[FASHION]))
        classes = float(len(torch.unique(train.labels)))
    except (DataNotFoundError, ValueError):
        found, classes = 0.0, 0.0
    ledger.check("fashion files", "FashionMNIST found, SHA-256 checked, 60000 + 10000 images (`make data`)", found,
                 "==", 1.0, source="book", basis="the published data set")
    ledger.check("fashion classes", "FashionMNIST training labels: number of classes", classes, "==", 10,
                 source="book", basis="the published data set")


SECTIONS = (_exactness, _lemma, _training, _conditions, _il)


def claims(data: bool = True) -> list[Claim]:
    """Measure every claim (float64 unless stated), a few seconds on a laptop CPU; `data=False` skips
    the FashionMNIST rows."""
    ledger = Ledger("pcbp verify", strict=False)
    for section in SECTIONS + ((_data,) if data else ()):
        section(ledger)
    return ledger.claims


def table(rows: list[Claim]) -> str:
    """The claims as a fixed-width text table."""
    width = max(len(r.text) for r in rows)
    lines = [f"{'claim':<{width}}  {'measured':>9}  {'bound':>12}  result", "-" * (width + 38)]
    for r in rows:
        lines.append(f"{r.text:<{width}}  {r.value:9.2e}  {r.bound_text:>12}  {'PASS' if r.holds else 'FAIL'}")
    return "\n".join(lines)

