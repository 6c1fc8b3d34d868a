"""The built book's content: every chapter executed for this build, no stray output, claims as data.

Reads what `pcbp book` produced (`_build/notebooks`, `_build/html`); the Makefile builds it first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from pcbp.book.run import chapters

ROOT = Path(__file__).resolve().parent.parent
# What must never reach a reader: object reprs, the build machine's paths, warnings, progress-bar noise.
STRAY = {
    "object repr": re.compile(r"<[A-Za-z_][\w.]*(?: object)? at 0x[0-9a-fA-F]+>"),
    "absolute path": re.compile(r"(?<![\w.])/(?:work|home|tmp|usr|root|opt|var)/[\w.-]+"),
    "warning": re.compile(r"\b\w*Warning\b|IProgress|warnings\.warn"),
}


def stray(text: str) -> list[str]:
    """The kinds of stray output found in `text`, each with its first match."""
    return [f"{kind}: {m.group(0)!r}" for kind, rx in STRAY.items() if (m := rx.search(text))]


def test_the_stray_output_detector_finds_what_the_book_once_printed():
    assert stray("<matplotlib.colorbar.Colorbar at 0x7f3a2c1d90>")[0].startswith("object repr")
    assert stray("data in /usr/share/fashion-mnist")[0].startswith("absolute path")
    assert stray("TqdmWarning: IProgress not found.")[0].startswith("warning")
    assert stray("ε = 1.2e-16 over 30 networks; see ../claims.json and 1/2 of μ") == []


pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def execution(html_dir: Path) -> dict:
    return json.loads((html_dir.parent / "notebooks" / "execution.json").read_text())


def test_every_chapter_was_executed_for_this_build_and_passed(execution):
    ran = {r["chapter"]: r["status"] for r in execution["chapters"]}
    assert ran == dict.fromkeys(chapters(), "ok"), ran
    assert execution["commit"] and execution["date"] and execution["machine"]


@pytest.mark.parametrize("chapter", chapters())
def test_every_chapter_page_offers_its_executed_notebook(html_dir, chapter):
    page = (html_dir / "book" / f"{chapter}.html").read_text()
    assert f"_sources/book/{chapter}.ipynb" in page, f"{chapter}.html offers no .ipynb download"
    nb = json.loads((html_dir / "_sources" / "book" / f"{chapter}.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert outputs, f"the downloadable {chapter}.ipynb has no outputs: not the executed notebook"


@pytest.mark.parametrize("chapter", chapters())
def test_executed_notebooks_have_no_stderr_and_no_stray_output(html_dir, chapter):
    nb = json.loads((html_dir.parent / "notebooks" / f"{chapter}.ipynb").read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", f"{chapter} cell {i} wrote to stderr: {''.join(out['text'])[:300]}"
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert not stray(text), f"{chapter} cell {i}: {stray(text)}"


def test_built_pages_show_no_stray_output(html_dir):
    for path in sorted((html_dir / "book").glob("*.html")):
        soup = BeautifulSoup(path.read_text(), "html.parser")
        for output in soup.select("div.cell_output, div.output"):
            found = stray(output.get_text(" "))
            assert not found, f"{path.name}: {found}"


def test_claims_json_records_every_chapter_with_commit_and_date(html_dir):
    rows = json.loads((html_dir / "claims.json").read_text())
    assert {r["chapter"] for r in rows} == set(chapters())
    assert all(r["holds"] for r in rows if r["kind"] == "check"), [r["key"] for r in rows if not r["holds"]]
    assert all(r["commit"] and r["date"] for r in rows)
