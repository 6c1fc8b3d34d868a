"""`pcbp verify`: re-check the core claims on random networks in seconds and print a table."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from pcbp.activations import ACTIVATIONS
from pcbp.data import teacher_student
from pcbp.experiments import (
    dtype_divergence,
    error_vs_autograd,
    gamma_law_error,
    lemma_errors,
    random_problem,
    twin_divergence,
)
from pcbp.network import PCN
from pcbp.rules import ZIL, FaZIL


@dataclass(frozen=True)
class Claim:
    """One claim, its measured value and the bound it must meet (`at_most` or at least)."""

    claim: str
    measured: float
    bound: float
    at_most: bool = True

    @property
    def holds(self) -> bool:
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound


def _worst(rule_factory, depths, activations, bias_options=(False, True)) -> float:
    worst = 0.0
    for (depth, act, bias) in itertools.product(depths, activations, bias_options):
        net, s_in, s_out = random_problem((3,) + (7,) * (depth - 1) + (5,), act, bias=bias, seed=depth)
        worst = max(worst, error_vs_autograd(rule_factory(), net, s_in, s_out))
    return worst


def claims() -> list[Claim]:
    """Measure every claim (float64 unless stated); about a second on a laptop CPU."""
    acts, depths = sorted(ACTIVATIONS), (2, 3, 5, 8)
    zil = _worst(lambda: ZIL(0.1), depths, acts)
    fazil = _worst(lambda: FaZIL(0.1), depths, acts)
    settled = _worst(lambda: FaZIL(0.1, init="settle", settle_gamma=0.2), (2, 3), ("tanh", "sigmoid"), (False,))
    lemma = [lemma_errors(*random_problem((3, 7, 7, 7, 5), a, seed=1)) for a in acts]
    gamma_law = gamma_law_error(*random_problem((3, 7, 7, 7, 5), "tanh", seed=2), gamma=0.5)
    sizes = (4, 16, 16, 8)
    s_in, s_out = teacher_student(256, sizes, seed=3)
    zil_200 = twin_divergence(ZIL(0.05), PCN(sizes, seed=3), s_in, s_out, steps=200, batch_size=16)[-1]
    noisy = ZIL(0.05, init_noise=0.1)
    broken_c1 = twin_divergence(noisy, PCN(sizes, seed=3), s_in, s_out, steps=20, batch_size=16)[-1]
    f64 = dtype_divergence(lambda: ZIL(0.05), torch.float64)
    f32 = dtype_divergence(lambda: ZIL(0.05), torch.float32)
    return [
        Claim("Z-IL updates = BP (autograd), depths 2-8, all activations, +-bias", zil, 1e-12),
        Claim("Fa-Z-IL updates = BP (autograd), same networks", fazil, 1e-12),
        Claim("Fa-Z-IL from the settled free network = BP", settled, 1e-12),
        Claim("lemma: eps^l_t = 0 for t < l (max |eps|)", max(b for b, _ in lemma), 0.0),
        Claim("lemma: eps^l_l = delta^l (rel. error)", max(a for _, a in lemma), 1e-12),
        Claim("gamma = 0.5 only: eps^l_l = gamma^l delta^l (rel. error)", gamma_law, 1e-12),
        Claim("Z-IL vs BP weights after 200 SGD steps (rel.)", zil_200, 1e-10),
        Claim("C1 broken (sigma = 0.1): divergence after 20 steps", broken_c1, 1e-6, at_most=False),
        Claim("float32 / float64 Z-IL divergence (100 steps)", f32 / max(f64, 1e-300), 1e6, at_most=False),
    ]


def table(rows: list[Claim]) -> str:
    """The claims as a fixed-width text table."""
    width = max(len(r.claim) for r in rows)
    lines = [f"{'claim':<{width}}  {'measured':>9}  {'bound':>10}  result", "-" * (width + 36)]
    for r in rows:
        bound = ("<= " if r.at_most else ">= ") + f"{r.bound:.0e}"
        lines.append(f"{r.claim:<{width}}  {r.measured:9.2e}  {bound:>10}  {'PASS' if r.holds else 'FAIL'}")
    return "\n".join(lines)
