"""`pcbp run CHAPTER -p name=value …`: execute one chapter with other parameters, outside the book build.

The chapter's parameters cell is overridden by papermill; every claim is still checked, so a run
with other parameters either holds or stops at the claim that broke, naming it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pcbp.book.ledger import REPO

BOOK = REPO / "book"


def chapters() -> list[str]:
    """The executable chapters: `book/*.md` files that carry a kernel."""
    return sorted(p.stem for p in BOOK.glob("*.md") if "kernelspec" in p.read_text()[:400])


def parse_parameters(pairs: list[str]) -> dict[str, object]:
    """`["gamma=0.9", "QUICK=True", "depths=(2, 3)"]` → values as Python literals (a bare word stays a string)."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"-p {pair!r}: write name=value, e.g. -p gamma=0.9")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def run_chapter(chapter: str, parameters: dict[str, object], output: Path | None = None, quick: bool = False) -> Path:
    """Execute `book/<chapter>.md` with `parameters` injected; return the executed notebook's path."""
    import os

    import jupytext
    import papermill

    if chapter not in chapters():
        raise ValueError(f"unknown chapter {chapter!r}: use one of {', '.join(chapters())}")
    output = output or REPO / "_build" / "run" / f"{chapter}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    if quick:
        os.environ["PCBP_QUICK"] = "1"
    nb = jupytext.read(BOOK / f"{chapter}.md")
    papermill.execute_notebook(nb, str(output), parameters=parameters, cwd=str(BOOK), kernel_name="python3",
                               progress_bar=False, request_save_on_cell_execute=False)
    return output
