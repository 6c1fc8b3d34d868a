"""The weights of a fully connected network, indexed as in the paper.

Layers are numbered from the output: layer 0 is the output, layer `l_max` the input.
`theta[l]` is `θ^l`, the matrix that maps layer `l` to layer `l - 1`, shape `(n_{l-1}, n_l)`;
`b[l]` is its optional bias. Tensors are batch-first: a layer's values have shape
`(batch, n_l)`, so the paper's `θ^{l+1} f(x^{l+1})` is written `f(x^{l+1}) @ θ^{l+1}.T` here.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Sequence

import torch

from pcbp.activations import Activation, get_activation

Tensor = torch.Tensor


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """`sizes` as a tuple of whole widths ≥ 1, at least two of them, or an error that says how."""
    example = "e.g. sizes=(10, 256, 784): output width first, input width last"
    try:
        widths = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes={sizes!r}: give a sequence of layer widths, {example}") from None
    bad = [n for n in widths if isinstance(n, bool) or not isinstance(n, numbers.Integral)]
    if bad:
        raise ValueError(f"sizes={widths!r}: every layer width must be a whole number, not {bad[0]!r}; {example}")
    widths = tuple(int(n) for n in widths)
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"sizes={widths!r}: give at least two layer widths, each ≥ 1; {example}")
    return widths


class PCN:
    """A fully connected network: weights `θ^1 … θ^{l_max}`, optional biases, activation `f`.

    The same object is the ANN that BP trains and the PCN that IL, Z-IL and Fa-Z-IL train:
    the two differ in how they learn, not in their parameters.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Activation = "tanh",
        *,
        bias: bool = False,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        """`sizes = (n_0, …, n_{l_max})`: output width first, input width last (the paper's order).

        Weights are drawn `θ^l_{ij} ~ N(0, 1/n_l)` from a generator seeded with `seed`.
        """
        self.sizes = _check_sizes(sizes)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(
                f"dtype={dtype!r}: weights must be floating point (an integer type would truncate every "
                "weight to 0); use torch.float64 (exact comparisons) or torch.float32"
            )
        sizes = self.sizes
        self.activation = get_activation(activation)
        gen = torch.Generator().manual_seed(seed)
        self.theta: dict[int, Tensor] = {}
        self.b: dict[int, Tensor] = {}
        for l in range(1, self.l_max + 1):
            w = torch.randn(sizes[l - 1], sizes[l], generator=gen, dtype=torch.float64)
            self.theta[l] = (w / sizes[l] ** 0.5).to(dtype=dtype, device=device)
            if bias:
                self.b[l] = torch.zeros(sizes[l - 1], dtype=dtype, device=device)

    @property
    def l_max(self) -> int:
        """Index of the input layer (= the number of weight matrices)."""
        return len(self.sizes) - 1

    @property
    def has_bias(self) -> bool:
        return bool(self.b)

    @property
    def dtype(self) -> torch.dtype:
        return self.theta[1].dtype

    @property
    def device(self) -> torch.device:
        return self.theta[1].device

    def f(self, x: Tensor) -> Tensor:
        return self.activation.f(x)

    def df(self, x: Tensor) -> Tensor:
        return self.activation.df(x)

    def predict(self, l: int, x_above: Tensor) -> Tensor:
        """`μ^l = θ^{l+1} f(x^{l+1}) (+ b^{l+1})`: layer `l+1`'s prediction of layer `l`."""
        mu = self.f(x_above) @ self.theta[l + 1].T
        if self.b:
            mu = mu + self.b[l + 1]
        return mu

    def feedforward(self, s_in: Tensor) -> list[Tensor]:
        """The ANN forward pass `y^{l_max} = s_in`, `y^l = θ^{l+1} f(y^{l+1})`; returns `y[0..l_max]`."""
        y = [s_in] * (self.l_max + 1)
        for l in range(self.l_max - 1, -1, -1):
            y[l] = self.predict(l, y[l + 1])
        return y

    def __call__(self, s_in: Tensor) -> Tensor:
        """The network's output `y^0`."""
        return self.feedforward(s_in)[0]

    def parameters(self) -> list[Tensor]:
        """All weights then all biases, each in the order `θ^1 … θ^{l_max}`."""
        return [self.theta[l] for l in sorted(self.theta)] + [self.b[l] for l in sorted(self.b)]

    def clone(self) -> PCN:
        """An independent copy (same weights, new tensors): the twin a comparison trains."""
        return copy.deepcopy(self)

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> PCN:
        """A copy with every parameter cast to `dtype` and moved to `device`."""
        twin = self.clone()
        for params in (twin.theta, twin.b):
            for l, p in params.items():
                params[l] = p.to(dtype=dtype or p.dtype, device=device or p.device)
        return twin

    def __repr__(self) -> str:
        return (
            f"PCN(sizes={self.sizes}, activation={self.activation.name!r}, "
            f"bias={self.has_bias}, dtype={self.dtype}, device={self.device})"
        )
