"""Weight updates `Δθ^l` (and `Δb^l`) as one object, and traces of the inference dynamics."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pcbp.network import PCN
from pcbp.pcn import energy

Tensor = torch.Tensor


@dataclass
class Updates:
    """`theta[l] = Δθ^l` and `b[l] = Δb^l`, keyed by the paper's weight index `l = 1 … l_max`."""

    theta: dict[int, Tensor] = field(default_factory=dict)
    b: dict[int, Tensor] = field(default_factory=dict)

    def add(self, l: int, d_theta: Tensor, d_b: Tensor | None = None) -> None:
        """Accumulate an update of `θ^l` (and `b^l`)."""
        self.theta[l] = self.theta[l] + d_theta if l in self.theta else d_theta
        if d_b is not None:
            self.b[l] = self.b[l] + d_b if l in self.b else d_b

    def merge(self, other: Updates) -> None:
        """Accumulate every update of `other` into this one."""
        for l, d in other.theta.items():
            self.add(l, d, other.b.get(l))

    def apply(self, net: PCN) -> None:
        """`θ^l ← θ^l + Δθ^l` (in place) for every update held."""
        for l, d in self.theta.items():
            net.theta[l].add_(d)
        for l, d in self.b.items():
            net.b[l].add_(d)

    def tensors(self, net: PCN) -> list[Tensor]:
        """Every update in `net.parameters()` order; a weight never updated counts as 0."""
        zero = torch.zeros_like
        return [self.theta.get(l, zero(p)) for l, p in sorted(net.theta.items())] + [
            self.b.get(l, zero(p)) for l, p in sorted(net.b.items())
        ]


@dataclass
class Trace:
    """The state at the start of every inference step: `x[t][l]`, `mu[t][l]`, `eps[t][l]`.

    Each entry is a detached copy, so a trace can be kept after the network moves on.
    """

    x: list[list[Tensor]] = field(default_factory=list)
    mu: list[list[Tensor]] = field(default_factory=list)
    eps: list[list[Tensor]] = field(default_factory=list)

    def record(self, x: list[Tensor], mu: list[Tensor], eps: list[Tensor]) -> None:
        self.x.append([v.detach().clone() for v in x])
        self.mu.append([v.detach().clone() for v in mu])
        self.eps.append([v.detach().clone() for v in eps])

    @property
    def steps(self) -> int:
        return len(self.eps)

    def error_norms(self) -> Tensor:
        """`‖ε^l_t‖` (Frobenius over the batch) as a `(steps, layers)` tensor: the error wave."""
        return torch.stack([torch.stack([e.norm() for e in eps_t]) for eps_t in self.eps])

    def energies(self) -> Tensor:
        """`F_t = Σ_l ½‖ε^l_t‖²`, averaged over the batch, for every recorded step."""
        return torch.stack([energy(eps_t) for eps_t in self.eps])
