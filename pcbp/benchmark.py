"""Time per weight update of each rule, measured side by side: ratios to BP, not milliseconds."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pcbp.experiments import random_problem
from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, FaZIL, FaZILQuiet, Rule, ZILWave

Tensor = torch.Tensor

ALPHA = 1e-4  # small, so that weights barely move while a rule is timed over and over


def standard_rules(il_T: Sequence[int] = (20, 100)) -> dict[str, Callable[[], Rule]]:
    """Every rule the cost chapter compares, by display name; BP first (the reference)."""
    rules: dict[str, Callable[[], Rule]] = {
        "BP": lambda: BP(ALPHA),
        "Z-IL (wave)": lambda: ZILWave(ALPHA),
        "Z-IL (faithful)": lambda: ZIL(ALPHA),
        "Fa-Z-IL (quiet)": lambda: FaZILQuiet(ALPHA),
        "Fa-Z-IL (faithful)": lambda: FaZIL(ALPHA),
    }
    for T in il_T:
        rules[f"IL (T={T})"] = lambda T=T: IL(ALPHA, gamma=0.1, T=T)
    return rules


@dataclass(frozen=True)
class Setting:
    """One network and batch to time: `depth` weight matrices, hidden layers `width` wide."""

    depth: int
    width: int = 256
    batch: int = 64
    n_in: int = 784
    n_out: int = 10
    activation: str = "tanh"
    dtype: str = "float32"
    device: str = "cpu"

    def problem(self) -> tuple[PCN, Tensor, Tensor]:
        sizes = (self.n_out,) + (self.width,) * (self.depth - 1) + (self.n_in,)
        net, s_in, s_out = random_problem(sizes, self.activation, batch=self.batch, dtype=getattr(torch, self.dtype))
        return net.to(device=self.device), s_in.to(self.device), s_out.to(self.device)


def interleaved_times(
    calls: Mapping[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 3
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
    """One weight update per call, each rule on its own copy of `net` (waiting for a GPU to finish)."""
    twins = {name: net.clone() for name in rules}
    sync = torch.cuda.synchronize if net.device.type == "cuda" else (lambda: None)

    def call(rule: Rule, twin: PCN) -> None:
        rule(twin, s_in, s_out)
        sync()

    return {name: (lambda r=rule, n=twins[name]: call(r, n)) for name, rule in rules.items()}


def summarize(times: Mapping[str, Sequence[float]], reference: str = "BP") -> list[dict[str, float | str]]:
    """Median, quartiles and the ratio of medians to `reference`, one row per rule."""
    ref = statistics.median(times[reference])
    rows = []
    for name, ts in times.items():
        q1, med, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (ts[0],) * 3
        rows.append({"rule": name, "median_s": med, "q1_s": q1, "q3_s": q3, "ratio_to_bp": med / ref})
    return rows


def benchmark(
    settings: Iterable[Setting],
    rules: Mapping[str, Callable[[], Rule]] | None = None,
    *,
    repeats: int = 20,
    warmup: int = 3,
    skip: Callable[[Setting, str], bool] = lambda setting, rule: False,
) -> list[dict[str, object]]:
    """Time every rule on every setting (interleaved within a setting); one row per pair."""
    rules = standard_rules() if rules is None else rules
    rows: list[dict[str, object]] = []
    for setting in settings:
        net, s_in, s_out = setting.problem()
        chosen = {name: make() for name, make in rules.items() if name == "BP" or not skip(setting, name)}
        times = interleaved_times(rule_calls(chosen, net, s_in, s_out), repeats=repeats, warmup=warmup)
        rows += [{**asdict(setting), **row} for row in summarize(times)]
    return rows


def write_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Write benchmark rows, with the machine they were measured on in a leading comment."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write("# " + "; ".join(f"{k}={v}" for k, v in machine().items()) + "\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> tuple[list[dict[str, str]], str]:
    """Rows (as strings) and the machine line of a CSV written by `write_csv`."""
    with Path(path).open() as f:
        first = f.readline()
        return list(csv.DictReader(f)), first.lstrip("# ").strip()


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


class _CountMatmuls(torch.overrides.TorchFunctionMode):
    """Counts matrix products (`@`, `mm`, `matmul`) made while active."""

    PRODUCTS = {torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.matmul, torch.mm, torch.Tensor.mm,
                torch.Tensor.matmul}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in self.PRODUCTS
        return func(*args, **(kwargs or {}))


def count_matmuls(call: Callable[[], object]) -> int:
    """How many matrix products `call()` makes: a machine-independent measure of its work."""
    with _CountMatmuls() as mode:
        call()
    return mode.count
