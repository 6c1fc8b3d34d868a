"""`pcbp pdf`: the whole book as one PDF, offline, from the sources `pcbp book` staged and executed.

Two steps, neither of which needs the network or executes a chapter again. Jupyter Book's
`singlehtml` builder writes every chapter into one page (the same executed notebooks, the same
Sphinx extensions, warnings as errors); Debian's Chromium, driven by Playwright as
`tests/test_browser.py` drives it, waits until the book's own MathJax has typeset every formula
and every image has loaded, then prints that page. Before printing it counts what a reader would
find broken on paper (a formula left as TeX, an image missing) and writes no PDF if anything is.
What it saw is written beside the PDF (`book.json`). The print layout is `_static/print.css`:
chapters start on a new page, no sidebars or buttons, tables at the column's width.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pcbp.book.build import BUILD, CLAIMS, STAGE, STATISTICS
from pcbp.book.ledger import REPO

PDF = BUILD / "pdf" / "book.pdf"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
PAPER_MM = (210, 297)  # A4
MARGIN_MM = {"top": 16, "bottom": 16, "left": 15, "right": 15}
# The page is laid out at the printed column's width (in CSS px, 96 to the inch), so that what is
# measured before printing (a display equation wider than the column) is what prints.
VIEWPORT = {"width": round((PAPER_MM[0] - MARGIN_MM["left"] - MARGIN_MM["right"]) / 25.4 * 96),
            "height": round((PAPER_MM[1] - MARGIN_MM["top"] - MARGIN_MM["bottom"]) / 25.4 * 96)}
FOOTER = ('<div style="box-sizing: border-box; width: 100%; padding: 0 {right}mm 0 {left}mm; display: flex; '
          'font-size: 8px; color: #555;">'
          '<span style="flex: 1">{title}</span>'
          '<span><span class="pageNumber"></span> / <span class="totalPages"></span></span></div>')

# Run in the page once MathJax is done. Toggles: a hide-input cell's code is left out (as the HTML
# first shows it) or shown; any other collapsed block is opened, so no empty toggle prints. A display
# equation wider than the column is scaled down to fit (on paper nothing scrolls). Returns the counts.
PREPARE_JS = """(showHidden) => {
  for (const d of document.querySelectorAll('details.hide')) {
    if (showHidden) d.open = true; else d.classList.add('pcbp-print-hidden');
  }
  for (const d of document.querySelectorAll('details:not(.hide)')) d.open = true;
  const shrunk = [];
  for (const m of document.querySelectorAll('mjx-container[display="true"]')) {
    const box = m.parentElement, number = box.querySelector('span.eqno');
    const room = box.clientWidth - (number ? number.offsetWidth + 8 : 0);
    const need = m.firstElementChild ? m.firstElementChild.getBoundingClientRect().width : 0;
    if (need > room && room > 0) {  // MathJax has set its own scale on the container: scale that
      m.style.fontSize = (parseFloat(getComputedStyle(m).fontSize) * room / need).toFixed(2) + 'px';
      shrunk.push((m.closest('[id]')?.id || '?') + ' to ' + (100 * room / need).toFixed(1) + '%');
    }
  }
  const math = [...document.querySelectorAll('.math')];
  const images = [...document.images].filter(i => !i.closest('.pcbp-print-hidden'));
  return {
    math: math.length,
    typeset: math.filter(m => m.querySelector('mjx-container')).length,
    errors: document.querySelectorAll('mjx-merror').length,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    shrunk,
    column: (document.querySelector('article.bd-article') || document.body).clientWidth,
  };
}"""


class PdfError(RuntimeError):
    """No PDF can be made: nothing staged, a failed build, a formula or an image that did not render."""


def stage_copy(src: Path, work: Path) -> Path:
    """A private copy of the staged sources, with the repository's current `_static` (the print CSS).

    The HTML build's `_build/src`, `_build/.doctrees` and `_build/html` stay untouched: this writes only under `work`.
    """
    if not (src / "_config.yml").is_file() or not (src / "_toc.yml").is_file():
        raise PdfError(f"{src} holds no staged book: run `make book` (or `pcbp book`) first")
    copy = work / "src"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(src, copy, symlinks=True)  # `pcbp` stays a link, for `{literalinclude}`
    shutil.rmtree(copy / "_static", ignore_errors=True)
    shutil.copytree(REPO / "_static", copy / "_static")
    return copy


def build_singlehtml(src: Path, work: Path) -> Path:
    """Jupyter Book's `singlehtml` build of `src` into `work/_build/singlehtml`, warnings as errors."""
    for old in ("singlehtml", ".doctrees", "jupyter_execute"):  # nothing of an earlier PDF's build survives
        shutil.rmtree(work / "_build" / old, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb), "build", "--all", "-W", "-n", "--keep-going", "--builder", "singlehtml", str(src),
               "--path-output", str(work)]
    env = {**os.environ, "PCBP_CLAIMS_DIR": os.environ.get("PCBP_CLAIMS_DIR") or str(CLAIMS),
           "PCBP_EXECUTION": os.environ.get("PCBP_EXECUTION") or str(STATISTICS)}
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise PdfError(f"the singlehtml build failed (exit {done.returncode}):\n{tail}")
    return work / "_build" / "singlehtml"


def root_document(src: Path) -> str:
    """The book's root document (`_toc.yml`'s `root`, e.g. `book/intro`): the page that holds every chapter."""
    return str(yaml.safe_load((src / "_toc.yml").read_text())["root"]).removesuffix(".md")


def book_title(src: Path) -> str:
    """The book's title, from its `_config.yml` (every page's footer)."""
    return str(yaml.safe_load((src / "_config.yml").read_text()).get("title") or "pcbp")


def print_page(site: Path, root: str) -> Path:
    """The one page, copied to where its links point from: the site's root.

    The builder writes the page as the root document (`book/intro.html`) but every link in it
    (`_static/`, `_images/`, `book/intro.html#x`) relative to the site's root. At the root they
    resolve; its links into itself become in-page anchors, which stay links in the PDF.
    """
    page = site / f"{root}.html"
    if not page.is_file():
        raise PdfError(f"the singlehtml build wrote no {page}")
    out = site / "print.html"
    out.write_text(re.sub(rf'href="{re.escape(root)}\.html#', 'href="#', page.read_text()))
    return out


def print_pdf(page: Path, pdf: Path, title: str, show_hidden: bool) -> dict[str, object]:
    """Print `page` to `pdf` in headless Chromium once MathJax and the images are done; return what it saw."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as err:
        raise PdfError("Playwright is missing: pip install -e '.[book,test]' (`make install`)") from err
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise PdfError("Chromium is missing: apt-get install chromium (`make system-packages`, as root)")
    footer = FOOTER.format(title=_escape(title), left=MARGIN_MM["left"], right=MARGIN_MM["right"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            tab = browser.new_page(viewport=VIEWPORT, color_scheme="light")
            tab.emulate_media(media="print")  # the print CSS applies while equations are measured
            tab.goto(page.as_uri(), wait_until="load", timeout=180_000)  # every image loaded
            tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
            tab.evaluate("MathJax.startup.promise.then(() => document.fonts.ready).then(() => true)")
            seen = tab.evaluate(PREPARE_JS, show_hidden)
            problems = _problems(seen)
            if problems:
                raise PdfError("the page would print broken, no PDF written: " + "; ".join(problems))
            pdf.parent.mkdir(parents=True, exist_ok=True)
            tab.pdf(path=str(pdf), width=f"{PAPER_MM[0]}mm", height=f"{PAPER_MM[1]}mm",
                    margin={k: f"{v}mm" for k, v in MARGIN_MM.items()}, print_background=True,
                    display_header_footer=True, header_template="<span></span>", footer_template=footer)
        except Error as err:  # a page that never loads or a MathJax that never starts
            raise PdfError(f"Chromium could not print {page}: {err}") from err
        finally:
            browser.close()
    return seen


def _problems(seen: dict[str, object]) -> list[str]:
    """What would print broken: formulas not typeset or not parsed, images not loaded, or no formula at all."""
    out = []
    if seen["typeset"] != seen["math"]:
        out.append(f"{int(seen['math']) - int(seen['typeset'])} of {seen['math']} formulas not typeset")
    if seen["errors"]:
        out.append(f"{seen['errors']} formulas MathJax could not parse")
    if seen["broken"]:
        out.append(f"images that did not load: {seen['broken']}")
    if not seen["math"]:
        out.append("no formula at all: this is not the book's page")
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def count_pages(pdf: Path) -> int:
    """The pages of a PDF Chromium wrote (Skia writes each page object as a plain, uncompressed dictionary)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def pdf(src: Path = STAGE, out: Path = PDF, show_hidden: bool = False) -> int:
    """Build the single page from `src`, print it to `out`, write `<out>.json` beside it; the exit status.

    The intermediate files (the staged copy, the singlehtml build) live in `out`'s folder.
    """
    start = time.perf_counter()
    work = out.resolve().parent
    try:
        work.mkdir(parents=True, exist_ok=True)
        staged = stage_copy(src, work)
        site = build_singlehtml(staged, work)
        built = time.perf_counter() - start
        seen = print_pdf(print_page(site, root_document(staged)), out, book_title(staged), show_hidden)
    except PdfError as err:
        print(f"pcbp pdf: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    report = {**seen, "pages": count_pages(out), "hidden_code": "shown" if show_hidden else "left out",
              "build_seconds": round(built, 1), "seconds": round(seconds, 1)}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"{out}: {report['pages']} pages, {seen['typeset']} formulas, {seen['images']} images; "
          f"built in {built:.0f} s, printed in {seconds - built:.0f} s")
    return 0
