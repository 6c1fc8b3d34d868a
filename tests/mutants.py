"""The project's own mutation check (`make mutants`, not part of `make test`).

Each mutant is one plausible slip in the science (a broken condition, a sign, a transpose, a
derivative at the wrong layer, a gate, a schedule, an ignored option), applied to a scratch copy of
the package; the test suite (without the book and the browser) then runs against that copy. A
mutant is *caught by value* when some test fails on an assertion (a wrong number, or an error that
should have been raised and was not), *by a crash*
when tests fail only on other exceptions (a shape error, say), and *missed* when every test passes.
Every mutant must be caught by value. Prints a table; exits 1 unless all are.

    .venv/bin/python tests/mutants.py [--jobs 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str


MUTANTS = [
    Mutant("inference: feedback sign flipped", "pcbp/pcn.py",
           "new[l] = x[l] + gamma * (feedback - eps[l])", "new[l] = x[l] + gamma * (-feedback - eps[l])"),
    Mutant("inference: feedback through θ instead of θᵀ", "pcbp/pcn.py",
           "feedback = net.df(x[l]) * (eps[l - 1] @ net.theta[l])",
           "feedback = net.df(x[l]) * (eps[l - 1] @ net.theta[l].T)"),
    Mutant("inference: f' of the layer above", "pcbp/pcn.py",
           "feedback = net.df(x[l]) * (eps[l - 1] @ net.theta[l])",
           "feedback = net.df(x[l - 1]) * (eps[l - 1] @ net.theta[l])"),
    Mutant("Hebbian rule: no batch average", "pcbp/pcn.py",
           "return (alpha / eps_post.shape[0]) * (eps_post.T @ f_pre)", "return alpha * (eps_post.T @ f_pre)"),
    Mutant("bias rule: sum instead of mean", "pcbp/pcn.py",
           "return alpha * eps_post.mean(dim=0)", "return alpha * eps_post.sum(dim=0)"),
    Mutant("updates applied with the wrong sign", "pcbp/updates.py",
           "net.theta[l].add_(d)", "net.theta[l].sub_(d)"),
    Mutant("BP: f' of the wrong layer", "pcbp/rules/bp.py",
           "delta.append(net.df(y[l]) * (delta[l - 1] @ net.theta[l]))",
           "delta.append(net.df(y[l - 1]) * (delta[l - 1] @ net.theta[l]))"),
    Mutant("C2: θ^{l+1} learns one step late", "pcbp/rules/zil.py",
           "return {l: (l,) for l in sorted(layers - self.frozen)}",
           "return {l: (l + 1,) for l in sorted(layers - self.frozen)}"),
    Mutant("C3: γ = 0.999 by default", "pcbp/rules/zil.py",
           "        gamma: float = 1.0,\n        schedule", "        gamma: float = 0.999,\n        schedule"),
    Mutant("C1 broken: noise ignored", "pcbp/pcn.py", "    if sigma == 0:\n        return x", "    return x"),
    Mutant("ordering: Z-IL applies weights before its value update", "pcbp/rules/zil.py",
           "            if self.weights_first:  # the wrong order", "            if apply:  # the wrong order"),
    Mutant("wave Z-IL ignores apply=True", "pcbp/rules/zil_wave.py",
           "self.commit(net, now, updates, apply=apply)", "self.commit(net, now, updates, apply=False)"),
    Mutant("wave Z-IL: f' of the layer the wave left", "pcbp/rules/zil_wave.py",
           "x_next = y[t + 1] + net.df(y[t + 1]) * (eps @ net.theta[t + 1])",
           "x_next = y[t + 1] + net.df(y[t]) * (eps @ net.theta[t + 1])"),
    Mutant("Φ: the driven check dropped", "pcbp/rules/fazil.py",
           "        fires = fires & driven", "        fires = fires"),
    Mutant("Φ: gates never disarm", "pcbp/rules/fazil.py",
           "return eps * fires, armed ^ departed", "return eps * fires, armed"),
    Mutant("Φ: the target does not drive the output", "pcbp/rules/fazil.py",
           "driven = [torch.ones_like(armed[0])] + [torch.zeros_like(a) for a in armed[1:]]",
           "driven = [torch.zeros_like(a) for a in armed]"),
    Mutant("quiet Fa-Z-IL ignores γ", "pcbp/rules/fazil_quiet.py",
           "x[l] = x[l] + (drive if self.gamma == 1 else self.gamma * drive)", "x[l] = x[l] + drive"),
    Mutant("τ below the settle residue", "pcbp/rules/fazil.py",
           "TAU_FACTOR = 16", "TAU_FACTOR = 0.5"),
    Mutant("settle: absolute tolerance", "pcbp/pcn.py",
           "<= tol * activity_scale(m)", "<= tol"),
    Mutant("IL: leak with the wrong sign", "pcbp/rules/il.py",
           "x[l].sub_(eps[l], alpha=self.gamma)", "x[l].add_(eps[l], alpha=self.gamma)"),
    Mutant("tanh: f' = 1 + tanh²", "pcbp/activations.py",
           "return torch.addcmul(t.new_ones(()), t, t, value=-1)",
           "return torch.addcmul(t.new_ones(()), t, t, value=1)"),
    Mutant("bias learns from −ε", "pcbp/rules/base.py",
           "d_b = hebbian_bias(self.alpha, eps_post)", "d_b = hebbian_bias(self.alpha, -eps_post)"),
    Mutant("prediction subtracts the bias", "pcbp/network.py", "mu = mu + self.b[l + 1]", "mu = mu - self.b[l + 1]"),
    Mutant("overflowing updates not checked", "pcbp/checks.py",
           "            if not all_finite(d):\n                done", "            if False:\n                done"),
    Mutant("relative error without the square root", "pcbp/metrics.py",
           "return (diff / ref) ** 0.5 if ref > 0 else diff**0.5", "return diff / ref if ref > 0 else diff"),
]

PROBE = '''"""pytest plugin for tests/mutants.py: records how tests fail; stops at the first failure by value."""
import json, os
import pcbp
import pytest

assert pcbp.__file__.startswith(os.environ["MUTANT_ROOT"]), pcbp.__file__
FAILURES = []


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and call.when == "call":
        by_value = call.excinfo.errisinstance((AssertionError, pytest.fail.Exception))  # incl. "DID NOT RAISE"
        FAILURES.append({"test": item.nodeid, "by_value": by_value, "error": call.excinfo.typename})
        if by_value:
            item.session.shouldstop = "caught by value"
    elif call.excinfo is not None:  # setup or teardown broke: a crash
        FAILURES.append({"test": item.nodeid, "by_value": False, "error": call.excinfo.typename})


def pytest_sessionfinish(session):
    with open(os.environ["MUTANT_REPORT"], "w") as f:
        json.dump(FAILURES, f)
'''


def mutated(mutant: Mutant, root: Path = ROOT) -> str:
    """The mutated text of the mutant's file under `root`; an error if the slip no longer fits the code."""
    text = (root / mutant.path).read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name!r}: {mutant.old!r} occurs {text.count(mutant.old)} times in "
                         f"{mutant.path}, not once: update tests/mutants.py to the code")
    return text.replace(mutant.old, mutant.new)


def tracked_files() -> list[str]:
    """The repository's files as the working tree has them (tracked, or new and not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [p for p in out if (ROOT / p).is_file()]


def run(mutant: Mutant, python: str) -> dict[str, object]:
    """Apply one mutant to a scratch copy and run the suite against it."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pcbp-mutant-") as tmp:
        root = Path(tmp)
        for rel in tracked_files():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, root / rel)
        (root / "_mutant_probe.py").write_text(PROBE)
        (root / mutant.path).write_text(mutated(mutant, root))
        report = root / "report.json"
        env = {**os.environ, "PYTHONPATH": str(root), "MUTANT_ROOT": str(root), "MUTANT_REPORT": str(report),
               "PCBP_QUICK": "1"}
        cmd = [python, "-m", "pytest", "-q", "-p", "_mutant_probe", "-p", "no:cacheprovider", "-m", "not book",
               "--ignore=tests/test_browser.py", "--ignore=tests/test_mutants.py", "tests"]  # that one sees any edit
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        failures = json.loads(report.read_text()) if report.exists() else []
    by_value = [f for f in failures if f["by_value"]]
    verdict = "by value" if by_value else ("by a crash" if failures or proc.returncode else "MISSED")
    first = (by_value or failures or [{"test": "-"}])[0]["test"]
    return {"mutant": mutant.name, "verdict": verdict, "first": first, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only the mutants whose name contains one of these words")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(w in m.name for w in args.only)]
    for m in chosen:  # fail fast if a mutant no longer fits the code
        mutated(m)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda m: run(m, sys.executable), chosen))
    width = max(len(r["mutant"]) for r in results)
    print(f"| {'mutant':<{width}} | caught     | first failing test | s |")
    print(f"|{'-' * (width + 2)}|------------|---|---|")
    for r in results:
        print(f"| {r['mutant']:<{width}} | {r['verdict']:<10} | {r['first']} | {r['seconds']:.0f} |")
    missed = [r for r in results if r["verdict"] != "by value"]
    print(f"\n{len(results) - len(missed)} of {len(results)} mutants caught by value")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
