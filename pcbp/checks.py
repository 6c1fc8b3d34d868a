"""Input checks shared by every rule: each error names the problem and the fix."""

from __future__ import annotations

import math

import torch

from pcbp.network import PCN

Tensor = torch.Tensor


def check_batch(net: PCN, s_in: Tensor, s_out: Tensor | None = None) -> None:
    """Raise if a mini-batch does not fit `net` or holds a non-finite value."""
    _check_layer(net, s_in, net.l_max, "s_in (input)")
    if s_out is None:
        return
    _check_layer(net, s_out, 0, "s_out (target)")
    if s_out.shape[0] != s_in.shape[0]:
        raise ValueError(
            f"s_in has {s_in.shape[0]} samples but s_out has {s_out.shape[0]}: "
            "pass inputs and targets of the same mini-batch"
        )


def _check_layer(net: PCN, v: Tensor, l: int, what: str) -> None:
    if not isinstance(v, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(v).__name__}")
    if v.ndim != 2 or v.shape[1] != net.sizes[l]:
        raise ValueError(
            f"{what} has shape {tuple(v.shape)}, expected (batch, {net.sizes[l]}) for layer {l} "
            f"of {net!r}; a single sample needs a batch axis: v.unsqueeze(0)"
        )
    if v.dtype != net.dtype or v.device != net.device:
        raise ValueError(
            f"{what} is {v.dtype} on {v.device} but the network is {net.dtype} on "
            f"{net.device}: convert with .to(dtype=net.dtype, device=net.device)"
        )
    if not all_finite(v):
        raise ValueError(f"{what} holds a NaN or infinite value: clean the data before training")


def all_finite(v: Tensor) -> bool:
    """True if no entry is NaN or ±inf; a finite sum proves it with one cheap reduction."""
    return bool(torch.isfinite(v.sum())) or bool(torch.isfinite(v).all())


def check_finite_weights(net: PCN) -> None:
    """Raise if a weight or bias is NaN or infinite (training has diverged)."""
    for name, params in (("θ", net.theta), ("b", net.b)):
        for l, p in params.items():
            if not all_finite(p):
                raise FloatingPointError(
                    f"{name}^{l} holds a NaN or infinite value: training diverged; "
                    "lower the learning rate α or re-initialise the network"
                )


def check_positive(name: str, value: float) -> float:
    """Return `value` if it is a finite number > 0, else raise."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_steps(name: str, value: int) -> int:
    """Return `value` if it is an integer ≥ 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1 (a number of inference steps), got {value!r}")
    return value
