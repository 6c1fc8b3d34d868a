"""The book's sources: the table of contents is whole; every chapter has its parameters cell and states claims.

`pcbp book` executes the chapters (papermill); tests/test_built_book.py reads what it produced.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CHAPTERS = sorted(p for p in BOOK.glob("*.md") if "kernelspec" in p.read_text()[:400])


def toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p["chapters"]]
    while stack:
        entry = stack.pop()
        files.add(entry["file"])
        stack.extend(entry.get("sections", []))
    return files


def test_every_page_is_in_the_toc_and_every_toc_entry_exists():
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in BOOK.glob("*.md")}
    assert pages == toc_files()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_one_parameters_cell_honouring_quick_mode(chapter):
    nb = jupytext.read(chapter)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "PCBP_QUICK" in params[0].source


def test_there_is_at_least_one_executable_chapter():
    assert CHAPTERS, "book/ holds no executable chapter (a .md with a kernelspec)"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_records_its_claims_and_shows_them_last(chapter):
    nb = jupytext.read(chapter)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("claims.check(" in c for c in code), f"{chapter.stem} checks no claim"
    assert code[-1].strip() == "claims.show()", f"{chapter.stem}: the last cell must be claims.show()"
    assert not any(line.lstrip().startswith("assert ") for c in code for line in c.splitlines()), (
        f"{chapter.stem} still has a bare assert: state it with claims.check(...) so it is a named claim")


def test_every_reference_is_cited_and_every_citation_has_a_reference():
    import re

    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.M))
    text = "\n".join(p.read_text() for p in BOOK.glob("*.md"))
    cited = {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}
    assert keys - cited == set(), f"references never cited: {sorted(keys - cited)}"
    assert cited - keys == set(), f"citations without a reference: {sorted(cited - keys)}"
