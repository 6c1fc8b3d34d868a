"""Activation functions `f` and their derivatives `f'`, by name.

The paper applies `f` to the presynaptic value before the weights (`μ^l = θ^{l+1} f(x^{l+1})`),
so every rule needs both `f` and `f'`; keeping them as a pair avoids a mismatched derivative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Activation:
    """A named activation `f` with its derivative `f'` (both elementwise)."""

    name: str
    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]
    df_from_f: Callable[[Tensor], Tensor] | None = None  # `f'` written in `f(x)`, where it can be

    def derivative(self, x: Tensor, fx: Tensor) -> Tensor:
        """`f'(x)`, from `fx = f(x)` when `f'` can be written in it (saves evaluating `f` again)."""
        return self.df(x) if self.df_from_f is None else self.df_from_f(fx)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _sigmoid_df_from_f(s: Tensor) -> Tensor:
    """`σ' = σ − σ²`, one fused pass."""
    return torch.addcmul(s, s, s, value=-1)


def _tanh_df_from_f(t: Tensor) -> Tensor:
    """`tanh' = 1 − tanh²`, one fused pass."""
    return torch.addcmul(t.new_ones(()), t, t, value=-1)


def _relu_df(x: Tensor) -> Tensor:
    """ReLU's derivative, taken as 0 at x = 0 (PyTorch's autograd convention)."""
    return (x > 0).to(x.dtype)


def _leaky_relu(x: Tensor) -> Tensor:
    return torch.where(x > 0, x, 0.01 * x)


def _leaky_relu_df(x: Tensor) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.01))


ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", torch.tanh, lambda x: _tanh_df_from_f(torch.tanh(x)), _tanh_df_from_f),
    "sigmoid": Activation("sigmoid", torch.sigmoid, lambda x: _sigmoid_df_from_f(torch.sigmoid(x)),
                          _sigmoid_df_from_f),
    "relu": Activation("relu", torch.relu, _relu_df),
    "leaky_relu": Activation("leaky_relu", _leaky_relu, _leaky_relu_df),
    "linear": Activation("linear", lambda x: x, torch.ones_like),
}


def get_activation(name: str | Activation) -> Activation:
    """Look up an activation by name; an `Activation` passes through unchanged."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(
            f"unknown activation {name!r}: use one of {known}, "
            "or pass an Activation(name, f, df) of your own"
        ) from None
