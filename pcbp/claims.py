"""Claims as data: a measured value, the bound it must meet, whose claim it is and what it leaves out.

Every claim of the book and of `pcbp verify` goes through a `Ledger`. Recording a claim checks it:
a strict ledger raises `ClaimFailed`, naming the claim, its value and its bound, the moment one
fails; a lenient one (for `pcbp verify`) records the failure and goes on. A bound says where it
comes from (`basis`): the theory, or a baseline measured in the same run, never the number just
seen. A claim over a filtered set says what it left out (`filtered`); the cases left out get a claim
of their own.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SOURCES = {
    "paper": "stated by Song et al. (2020)",
    "derived": "follows from the paper's equations (derived in this book)",
    "book": "the book's own claim",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}
_SYMBOLS = {"<=": "≤", "<": "<", ">=": "≥", ">": ">", "==": "="}


class ClaimFailed(AssertionError):
    """A claim of the book does not hold: its message names the claim, the value and the bound."""


@dataclass(frozen=True)
class Claim:
    """One checked statement: `value op bound` (or `|value − bound| ≤ tol` for `op="within"`)."""

    key: str
    text: str
    value: float
    op: str
    bound: float
    source: str
    basis: str
    filtered: str = ""
    tol: float | None = None
    chapter: str = ""
    kind: str = "check"  # "check": must hold; "report": a measurement against a target, never enforced

    @property
    def holds(self) -> bool:
        if not math.isfinite(self.value):
            return False
        if self.op == "within":
            return abs(self.value - self.bound) <= self.tol
        return _OPS[self.op](self.value, self.bound)

    @property
    def bound_text(self) -> str:
        """The bound as a reader writes it: `≤ 1e-12`, `1 ± 0.05`."""
        if self.op == "within":
            return f"{_number(self.bound)} ± {_number(self.tol)}"
        return f"{_SYMBOLS[self.op]} {_number(self.bound)}"

    def describe(self) -> str:
        where = f"{self.chapter}: " if self.chapter else ""
        left_out = f" (left out: {self.filtered})" if self.filtered else ""
        return (f"{where}claim '{self.text}'{left_out}: measured {_number(self.value)}, "
                f"needs {self.bound_text} [{self.basis}]")


def _number(x: float) -> str:
    """A compact, exact-enough rendering: integers as such, the rest in 3 significant digits."""
    if isinstance(x, bool) or (isinstance(x, int)) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:.3g}"


@dataclass
class Ledger:
    """The claims of one chapter (or of `pcbp verify`), in the order they were checked."""

    chapter: str = ""
    strict: bool = True
    claims: list[Claim] = field(default_factory=list)

    def check(
        self,
        key: str,
        text: str,
        value: float,
        op: str,
        bound: float,
        *,
        source: str,
        basis: str,
        filtered: str = "",
        tol: float | None = None,
    ) -> float:
        """Record `text` with its measured `value` against `op bound`; raise `ClaimFailed` if a
        strict ledger's claim fails. Returns the value, so a chapter can use it in its prose."""
        return self._record(key, text, value, op, bound, source, basis, filtered, tol, "check")

    def report(
        self, key: str, text: str, value: float, op: str, target: float, *, source: str = "book", basis: str,
        filtered: str = "", tol: float | None = None,
    ) -> float:
        """Record a measurement against a target that is never enforced (a timing: a busy machine would fail
        it for no scientific reason). The ledger says whether the target was met."""
        return self._record(key, text, value, op, target, source, basis, filtered, tol, "report")

    def _record(
        self, key: str, text: str, value: float, op: str, bound: float, source: str, basis: str, filtered: str,
        tol: float | None, kind: str,
    ) -> float:
        if op not in _OPS and op != "within":
            raise ValueError(f"op={op!r}: use one of {', '.join(_OPS)} or 'within'")
        if (op == "within") != (tol is not None):
            raise ValueError("give tol exactly when op='within' (the claim is |value − bound| ≤ tol)")
        if source not in SOURCES:
            raise ValueError(f"source={source!r}: use one of {', '.join(SOURCES)}")
        if not basis:
            raise ValueError(f"claim {key!r}: say where the bound comes from (basis=...)")
        if any(c.key == key for c in self.claims):
            raise ValueError(f"claim {key!r} is recorded twice in {self.chapter or 'this ledger'}")
        claim = Claim(key, text, float(value), op, float(bound), source, basis, filtered,
                      None if tol is None else float(tol), self.chapter, kind)
        self.claims.append(claim)
        if self.strict and kind == "check" and not claim.holds:
            raise ClaimFailed(claim.describe())
        return claim.value

    @property
    def failed(self) -> list[Claim]:
        return [c for c in self.claims if c.kind == "check" and not c.holds]

    def records(self, **extra: object) -> list[dict[str, object]]:
        """The claims as plain dictionaries (with `holds` and the bound's text), plus `extra` fields."""
        return [{**asdict(c), "holds": c.holds, "bound_text": c.bound_text, **extra} for c in self.claims]

    def save(self, path: str | Path, **extra: object) -> Path:
        """Write the claims as JSON (one list) to `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.records(**extra), indent=1, ensure_ascii=False) + "\n")
        return path


def load(paths: Iterable[str | Path]) -> list[dict[str, object]]:
    """Every claim recorded in the JSON files `paths` (as `Ledger.save` wrote them), in order."""
    out: list[dict[str, object]] = []
    for p in paths:
        out += json.loads(Path(p).read_text())
    return out
