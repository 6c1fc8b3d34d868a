"""Time per weight update of each rule, measured side by side: ratios to a plain PyTorch step, not milliseconds.

The reference is what a user of PyTorch runs instead of any rule (`TorchStep`): the same network as
`nn.Linear(bias=False)` layers, `E = ½‖s_out − y^0‖²` averaged over the batch, `loss.backward()` and
`torch.optim.SGD.step()`. pcbp's own BP is timed beside it, as one more row.

The estimator (`ratio_summary`) is built for a shared, busy machine: many short rounds that call every
callable once, in a rotated order; per round the ratio of a rule's time to the reference's time *in the
same round* (a slow spell longer than a round slows both alike and cancels); the median of those
per-round ratios, with its quartiles (a minority of rounds hit by a spike in one call cannot move it).
On a machine shared with other work, time with one intra-op thread (`benchmark(..., threads=1)`): a team
of threads waits at every operation for its slowest member, so a busy core inflates each call by a
scheduler delay per operation, in proportion to its number of operations rather than its work, which
no pairing cancels; a single thread is merely slowed in proportion to the CPU it gets.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pcbp.experiments import random_problem
from pcbp.network import PCN
from pcbp.rules import BP, IL, ZIL, FaZIL, FaZILQuiet, Rule, ZILWave

Tensor = torch.Tensor

ALPHA = 1e-4  # small, so that weights barely move while a rule is timed over and over
REFERENCE = "PyTorch (autograd + SGD)"  # the row every ratio is taken against (`TorchStep`)


def standard_rules(il_T: Sequence[int] = (20, 100)) -> dict[str, Callable[[], Rule]]:
    """Every rule the cost chapter compares, by display name; pcbp's BP first."""
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


_MODULES: dict[str, Callable[[], torch.nn.Module]] = {
    "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU,
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.01), "linear": torch.nn.Identity,
}


class _Elementwise(torch.nn.Module):
    """An activation pcbp knows but `torch.nn` does not name: `f` applied elementwise (autograd differentiates it)."""

    def __init__(self, f: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.f = f

    def forward(self, x: Tensor) -> Tensor:
        return self.f(x)


class TorchStep:
    """One SGD step of `net` as a PyTorch user writes it: the baseline every rule's time is divided by.

    The same function as `net` (`y^0 = θ^1 f(θ^2 f(… θ^{l_max} f(s_in)))`), built once from `torch.nn`
    modules with copies of its weights; each call is `zero_grad()`, the forward pass, the loss
    `½‖s_out − y^0‖²` averaged over the batch, `loss.backward()` and `torch.optim.SGD.step()`.
    Unlike `pcbp.rules.AutogradSGD` (an oracle, which clones the network, builds an optimizer and
    forms `Updates` on every call) it carries no bookkeeping a user would not run.
    """

    def __init__(self, net: PCN, alpha: float = ALPHA) -> None:
        make = _MODULES.get(net.activation.name, lambda: _Elementwise(net.f))
        layers: list[torch.nn.Module] = []
        for l in range(net.l_max, 0, -1):  # input side first: f, then θ^l (and b^l)
            linear = torch.nn.Linear(net.sizes[l], net.sizes[l - 1], bias=net.has_bias,
                                     dtype=net.dtype, device=net.device)
            with torch.no_grad():
                linear.weight.copy_(net.theta[l])
                if net.has_bias:
                    linear.bias.copy_(net.b[l])
            layers += [make(), linear]
        self.model = torch.nn.Sequential(*layers)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=alpha)

    def __call__(self, s_in: Tensor, s_out: Tensor) -> Tensor:
        """One step on the batch; returns the loss (detached) it descended."""
        self.optimizer.zero_grad()
        with torch.enable_grad():
            loss = 0.5 * (s_out - self.model(s_in)).pow(2).sum() / s_in.shape[0]
            loss.backward()
        self.optimizer.step()
        return loss.detach()

    def weights(self) -> list[Tensor]:
        """The current weights `θ^1 … θ^{l_max}` (in `net.theta`'s order), to compare with a rule's."""
        linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        return [m.weight.detach() for m in reversed(linears)]


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` PyTorch intra-op threads (`None`: as set), and restore the setting after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def interleaved_times(
    calls: Mapping[str, Callable[[], object]], *, repeats: int = 30, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per call of each callable, measured in `repeats` rounds that call every one once.

    `times[name][r]` is round `r`'s call, so two callables' times in one round can be paired
    (`round_ratios`). Interleaving (with the order rotated every round) makes a slow spell of the
    machine that outlasts a round slow every callable of the round alike.
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
    sync = _sync(net)

    def call(rule: Rule, twin: PCN) -> None:
        rule(twin, s_in, s_out)
        sync()

    return {name: (lambda r=rule, n=twins[name]: call(r, n)) for name, rule in rules.items()}


def reference_call(net: PCN, s_in: Tensor, s_out: Tensor, alpha: float = ALPHA) -> Callable[[], object]:
    """One `TorchStep` per call, on its own copy of `net`'s weights (waiting for a GPU to finish)."""
    step, sync = TorchStep(net, alpha), _sync(net)

    def call() -> None:
        step(s_in, s_out)
        sync()

    return call


def _sync(net: PCN) -> Callable[[], object]:
    return torch.cuda.synchronize if net.device.type == "cuda" else (lambda: None)


def round_ratios(times: Mapping[str, Sequence[float]], rule: str, reference: str = REFERENCE) -> list[float]:
    """`rule`'s time over `reference`'s, round by round (both were timed in the same round)."""
    return [t / ref for t, ref in zip(times[rule], times[reference], strict=True)]


@dataclass(frozen=True)
class RatioSummary:
    """The median of the per-round ratios, their quartiles, and how many rounds they came from."""

    median: float
    q1: float
    q3: float
    rounds: int


def _quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    return tuple(statistics.quantiles(xs, n=4, method="inclusive")) if len(xs) > 1 else (xs[0],) * 3


def ratio_summary(rule_times: Sequence[float], reference_times: Sequence[float]) -> RatioSummary:
    """Median and quartiles of the per-round ratios `rule_times[r] / reference_times[r]`.

    Pairing the two calls of one round cancels a slow spell that lasts longer than a round, however
    long it lasts; the median then ignores any minority of rounds in which a spike, or the start or
    end of a spell, hit one call of the pair and not the other. No round is discarded: a filter on
    the times themselves would throw away the rounds of a long spell, which the pairing makes good.
    """
    if len(rule_times) != len(reference_times) or not rule_times:
        raise ValueError(f"need the same positive number of rounds, got {len(rule_times)} and {len(reference_times)}")
    q1, med, q3 = _quartiles([t / ref for t, ref in zip(rule_times, reference_times)])
    return RatioSummary(med, q1, q3, len(rule_times))


def summarize(times: Mapping[str, Sequence[float]], reference: str = REFERENCE) -> list[dict[str, float | str]]:
    """One row per callable: median and quartiles of its seconds, and its ratio to `reference` (`ratio_summary`).

    `ratio`, `ratio_q1`, `ratio_q3` are against `reference`; `ratio_to_bp` is the same estimate against
    pcbp's own `BP` where it was timed (NaN otherwise); `rounds` says how many rounds they pair.
    """
    rows = []
    for name, ts in times.items():
        q1, med, q3 = _quartiles(ts)
        r = ratio_summary(ts, times[reference])
        to_bp = ratio_summary(ts, times["BP"]).median if "BP" in times else math.nan
        rows.append({"rule": name, "median_s": med, "q1_s": q1, "q3_s": q3, "ratio": r.median, "ratio_q1": r.q1,
                     "ratio_q3": r.q3, "rounds": r.rounds, "ratio_to_bp": to_bp})
    return rows


def benchmark(
    settings: Iterable[Setting],
    rules: Mapping[str, Callable[[], Rule]] | None = None,
    *,
    repeats: int = 20,
    warmup: int = 3,
    skip: Callable[[Setting, str], bool] = lambda setting, rule: False,
    threads: int | None = None,
) -> list[dict[str, object]]:
    """Time the `TorchStep` reference and every rule on every setting, interleaved in `repeats` rounds
    within a setting; one row per setting and callable (the reference's first), ratios by `summarize`.

    `skip(setting, name)` leaves a rule out of a setting (never the reference, nor pcbp's BP);
    `threads` sets PyTorch's intra-op threads while timing (`None`: as set; 1 on a shared machine).
    """
    rules = standard_rules() if rules is None else rules
    rows: list[dict[str, object]] = []
    for setting in settings:
        net, s_in, s_out = setting.problem()
        chosen = {name: make() for name, make in rules.items() if name == "BP" or not skip(setting, name)}
        calls = {REFERENCE: reference_call(net, s_in, s_out), **rule_calls(chosen, net, s_in, s_out)}
        with intra_op_threads(threads):
            times = interleaved_times(calls, repeats=repeats, warmup=warmup)
        rows += [{**asdict(setting), "threads": threads or torch.get_num_threads(), **row}
                 for row in summarize(times, REFERENCE)]
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


class _CountDispatchedProducts(TorchDispatchMode):
    """Counts the matrix-product kernels (`aten.mm`, `addmm`, `bmm`, ...) dispatched while active,
    including those autograd's engine runs in `backward()`, which `_CountMatmuls` does not see."""

    PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "addmv", "mv", "dot"}

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket.__name__ in self.PRODUCTS
        return func(*args, **(kwargs or {}))


def count_dispatched_products(call: Callable[[], object]) -> int:
    """How many matrix-product kernels `call()` runs, backward passes included (the `TorchStep` count)."""
    with _CountDispatchedProducts() as mode:
        call()
    return mode.count
