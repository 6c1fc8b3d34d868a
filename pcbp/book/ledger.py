"""A chapter's claims: checked when recorded, glued into the prose, shown to the reader, saved for the ledger.

    claims = chapter_ledger("zil")
    claims.check("zil_max_err", "Z-IL's updates equal BP's", err, "<=", 1e-12, source="paper", basis="...")
    ...
    claims.show()   # the chapter's last cell: its table of claims, and claims/<chapter>.json for the book

Each value is glued under its key (`{glue:text}` in the prose reads it). `show()` writes the claims
to `$PCBP_CLAIMS_DIR` (default `_build/claims/` in the repository), where the book's ledger and
`claims.json` are assembled from what the chapters recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from pcbp.claims import SOURCES, Claim, Ledger

REPO = Path(__file__).resolve().parents[2]


def claims_dir() -> Path:
    """Where chapters leave their claims: `$PCBP_CLAIMS_DIR`, else `_build/claims` in the repository."""
    return Path(os.environ.get("PCBP_CLAIMS_DIR") or REPO / "_build" / "claims")


class ChapterLedger(Ledger):
    """A strict `Ledger` that glues every checked value under its key (when run inside the book)."""

    def check(self, key: str, text: str, value: float, op: str, bound: float, **kwargs: object) -> float:
        value = super().check(key, text, value, op, bound, **kwargs)  # type: ignore[arg-type]
        _glue(key, value)
        return value

    def report(self, key: str, text: str, value: float, op: str, target: float, **kwargs: object) -> float:
        value = super().report(key, text, value, op, target, **kwargs)  # type: ignore[arg-type]
        _glue(key, value)
        return value

    def markdown(self) -> str:
        """The chapter's claims as a Markdown table: claim, measured, bound, source, basis, left out."""
        rows = ["| Claim | Measured | Bound | Source | Why this bound | Left out |", "|---|---|---|---|---|---|"]
        for c in self.claims:
            bound = c.bound_text if c.kind == "check" else f"target {c.bound_text} (reported, not enforced)"
            rows.append(f"| {c.text} | {_shown(c)} | {bound} | {c.source} | {c.basis} | {c.filtered or '—'} |")
        return "\n".join(rows)

    def show(self) -> None:
        """Save the claims for the book's ledger and display this chapter's table of them."""
        self.save(claims_dir() / f"{self.chapter}.json")
        try:
            from IPython.display import Markdown, display
        except ImportError:  # outside a notebook: print it
            print(self.markdown())
        else:
            display(Markdown(self.markdown()))


def chapter_ledger(chapter: str) -> ChapterLedger:
    """The ledger of chapter `chapter` (its file name without `.md`)."""
    return ChapterLedger(chapter)


def _shown(c: Claim) -> str:
    return f"{c.value:.3g}" if not float(c.value).is_integer() else f"{int(c.value)}"


def _glue(key: str, value: float) -> None:
    try:
        from myst_nb import glue
    except ImportError:
        return
    glue(key, value, display=False)


__all__ = ["SOURCES", "ChapterLedger", "chapter_ledger", "claims_dir"]
