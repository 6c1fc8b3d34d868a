"""Time per weight update of each rule, measured side by side: ratios to BP, not milliseconds."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch

from pcbp.network import PCN
from pcbp.rules import Rule

Tensor = torch.Tensor


def interleaved_times(calls: Mapping[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 3
                      ) -> dict[str, list[float]]:
    """Seconds per call of each callable, measured in rounds that call every one once.

    Interleaving (with the order rotated every round) spreads slow spells of the machine over all
    callables alike, so their ratios stay meaningful on a busy machine.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def rule_calls(rules: Mapping[str, Rule], net: PCN, s_in: Tensor, s_out: Tensor) -> dict[str, Callable[[], object]]:
    """One weight update per call, each rule on its own copy of `net`."""
    twins = {name: net.clone() for name in rules}
    return {name: (lambda r=rule, n=twins[name]: r(n, s_in, s_out)) for name, rule in rules.items()}


def summarize(times: Mapping[str, Sequence[float]], reference: str = "BP") -> list[dict[str, float | str]]:
    """Median, quartiles and the ratio of medians to `reference`, one row per rule."""
    ref = statistics.median(times[reference])
    rows = []
    for name, ts in times.items():
        q1, med, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (ts[0],) * 3
        rows.append({"rule": name, "median_s": med, "q1_s": q1, "q3_s": q3, "ratio_to_bp": med / ref})
    return rows


def machine() -> dict[str, str | int]:
    """What the numbers were measured on: CPU, threads, torch and Python versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
