"""The book as one PDF (`pcbp pdf`): every chapter on its own pages, its math typeset, its figures printed.

Set PCBP_BOOK_PDF to a printed `_build/pdf/book.pdf` to skip printing here (its `book.json`, what the
browser saw before printing, lies beside it); otherwise the book is built as for the browser tests
(`PCBP_BOOK_HTML`, else `pcbp book --quick`) and `pcbp pdf` prints it. The PDF's text comes from
poppler's `pdftotext` (Debian's poppler-utils).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pcbp.book.pdf import PdfError, count_pages, print_pdf

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDFTOTEXT = shutil.which("pdftotext")
# TeX a formula leaves in the text when MathJax did not typeset it: a command, or a delimiter.
TEX = re.compile(r"\\[A-Za-z]{2,}|\$\$|\\\(|\\\)|\\\[|\\\]")

pytestmark = pytest.mark.book


def _need(tool: str | None, what: str, install: str) -> None:
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {what} for the PDF test: `apt-get install {install}`")
        pytest.skip(f"{what} is not installed (apt-get install {install})")


@pytest.fixture(scope="module")
def book_pdf(request) -> Path:
    """The printed book: `$PCBP_BOOK_PDF`, else printed here by `pcbp pdf` from the built book."""
    given = os.environ.get("PCBP_BOOK_PDF")
    if not given:
        _need(CHROMIUM, "Chromium", "chromium")
        request.getfixturevalue("html_dir")  # `pcbp book` has built and staged the book
        done = subprocess.run([sys.executable, "-m", "pcbp.cli", "pdf"], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"pcbp pdf failed:\n{done.stdout}\n{done.stderr}"
        given = str(ROOT / "_build" / "pdf" / "book.pdf")
    path = Path(given).resolve()
    assert path.is_file() and path.read_bytes()[:5] == b"%PDF-", f"PCBP_BOOK_PDF={given} is no PDF"
    return path


@pytest.fixture(scope="module")
def report(book_pdf) -> dict:
    """What the browser counted on the page it printed (written by `pcbp pdf` beside the PDF)."""
    return json.loads(book_pdf.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def pages_text(book_pdf) -> list[str]:
    """The PDF's text, page by page (`pdftotext` ends each page with a form feed)."""
    _need(PDFTOTEXT, "pdftotext", "poppler-utils")
    text = subprocess.run([PDFTOTEXT, "-enc", "UTF-8", str(book_pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def documents() -> list[str]:
    """Every page of the book in `_toc.yml`'s order: the root, then each part's chapters."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]


def title(document: str) -> str:
    """A page's title as printed: its source's first `# ` heading, with Sphinx's curly apostrophes."""
    for line in (ROOT / f"{document}.md").read_text().splitlines():
        if line.startswith("# "):
            return _plain(line[2:])
    raise AssertionError(f"{document}.md has no `# ` title")


def _plain(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def test_every_page_of_the_book_gets_at_least_one_page(book_pdf, report):
    pages = count_pages(book_pdf)
    assert pages == report["pages"] >= len(documents()), (pages, report["pages"], documents())


def test_every_chapter_starts_a_page_with_its_title(pages_text):
    openings = [_plain(page)[:300] for page in pages_text]
    missing = [title(d) for d in documents() if not any(o.startswith(title(d)) for o in openings)]
    assert not missing, f"chapters whose title opens no page of the PDF: {missing}"


def test_no_tex_source_is_left_in_the_text(pages_text):
    found = [(i + 1, m.group()) for i, page in enumerate(pages_text) for m in TEX.finditer(page)]
    assert not found, f"TeX source in the PDF's text (page, text), a formula MathJax did not typeset: {found[:10]}"


def test_the_printed_page_had_every_formula_typeset_and_every_image_loaded(report):
    assert report["math"] > 0 and report["typeset"] == report["math"], report
    assert report["errors"] == 0 and not report["broken"], report


def test_every_figure_prints_with_its_caption(pages_text, report):
    sources = "\n".join((ROOT / f"{d}.md").read_text() for d in documents())
    figures = len(re.findall(r"^```\{(?:glue:)?figure\}", sources, flags=re.M))
    captions = re.findall(r"^Fig\. \d+ ", "\n".join(pages_text), flags=re.M)
    assert len(captions) >= figures, f"{figures} figures in the sources, {len(captions)} captions printed"
    assert report["images"] >= figures, report


def test_no_toggle_prints_empty(pages_text):
    text = _plain(" ".join(pages_text))
    assert "Show code cell" not in text and "Hide code cell" not in text


BROKEN_PAGE = """<html><head><script>window.MathJax = {startup: {promise: Promise.resolve()}};</script></head>
<body><article class="bd-article"><p>A formula left as TeX: <span class="math">\\(\\varepsilon\\)</span>.</p>
<img src="missing.png"></article></body></html>"""


def test_a_formula_left_as_tex_or_a_missing_image_stops_the_print(tmp_path):
    _need(CHROMIUM, "Chromium", "chromium")
    (tmp_path / "broken.html").write_text(BROKEN_PAGE)
    with pytest.raises(PdfError, match=r"1 of 1 formulas not typeset.*missing\.png"):
        print_pdf(tmp_path / "broken.html", tmp_path / "broken.pdf", "broken", show_hidden=False)
    assert not (tmp_path / "broken.pdf").exists()
