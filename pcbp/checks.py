"""Input checks shared by every rule: each error names the problem and the fix."""

from __future__ import annotations

import math

import torch

from pcbp.network import PCN
from pcbp.updates import Updates

Tensor = torch.Tensor


def check_batch(net: PCN, s_in: Tensor, s_out: Tensor) -> None:
    """Raise if a mini-batch does not fit `net`, is empty, or holds a non-finite value."""
    _check_layer(net, s_in, net.l_max, "s_in (input)")
    if s_out is None:
        raise TypeError(
            "s_out (target) is None: every learning rule learns from a target; pass the mini-batch's "
            "targets, or run the network on its inputs alone with net(s_in) or pcbp.pcn.settle(net, s_in)"
        )
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
    if v.shape[0] == 0:
        raise ValueError(f"{what} is an empty mini-batch (shape {tuple(v.shape)}): pass at least one sample")
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


def check_finite_updates(updates: Updates, rule: str, applied: Updates | None = None) -> None:
    """Raise if an update is NaN or infinite: the inputs or errors were too large for the format.

    `applied` holds what this presentation already applied to the weights (named in the error).
    """
    for name, params in (("θ", updates.theta), ("b", updates.b)):
        for l, d in params.items():
            if not all_finite(d):
                done = sorted(applied.theta) if applied is not None else []
                note = f"; θ^{done} already learned at earlier steps of this presentation" if done else ""
                raise FloatingPointError(
                    f"{rule}: the update of {name}^{l} is NaN or infinite (the activity or the errors "
                    f"overflowed {d.dtype}); scale the inputs and targets down or lower the learning "
                    f"rate α; the weights were not changed by this update{note}"
                )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive(name: str, value: float) -> float:
    """Return `value` if it is a finite number > 0 (not a bool), else raise."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    """Return `value` if it is a finite number ≥ 0 (not a bool), else raise."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return float(value)


def check_steps(name: str, value: int) -> int:
    """Return `value` if it is an integer ≥ 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1 (a number of inference steps), got {value!r}")
    return value
