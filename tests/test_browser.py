"""The built book as a reader gets it: every page in headless Chromium, offline.

Math must be typeset by the book's own MathJax, every image must load, and no page may request
anything from outside the book. Uses Debian's `chromium` (installed by `make test` as root).
Set PCBP_BOOK_HTML to a built `_build/html` to skip the build here (the Makefile does);
otherwise `pcbp book --quick` builds it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def server(html_dir):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the browser test: `apt-get install chromium`")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def pages(html_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(html_dir)) for p in (html_dir / "book").glob("*.html"))


def visit(browser, url: str, width: int = 1400) -> dict:
    """Open `url` `width` px wide, wait for the network and MathJax to settle, report what the reader got."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests, failures = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failures.append(r.url))
    page.on("response", lambda r: r.status >= 400 and failures.append(f"{r.status} {r.url}"))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("!window.MathJax || (MathJax.startup && MathJax.startup.promise)", timeout=20_000)
    page.evaluate("window.MathJax ? MathJax.startup.promise : null")
    report = page.evaluate(
        """() => ({
            math: document.querySelectorAll('.math').length,
            typeset: [...document.querySelectorAll('.math')].filter(m => m.querySelector('mjx-container')).length,
            images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
            mathjax: window.MathJax ? 1 : 0,
        })"""
    )
    report["layout"] = page.evaluate(LAYOUT_JS)
    page.close()
    return {**report, "requests": requests, "failures": failures}


@pytest.fixture(scope="module")
def desktop(html_dir, server, browser) -> dict[str, dict]:
    """Every page as a reader at 1400 px gets it (one visit each)."""
    return {name: visit(browser, f"{server}/{name}", 1400) for name in pages(html_dir)}


@pytest.fixture(scope="module")
def phone(html_dir, server, browser) -> dict[str, dict]:
    """Every page as a reader at 400 px gets it."""
    return {name: visit(browser, f"{server}/{name}", 400) for name in pages(html_dir)}


def test_every_page_renders_offline(desktop, server):
    assert len(desktop) >= 2, list(desktop)
    host = urlparse(server).netloc
    with_math = 0
    for name, r in desktop.items():
        outside = [u for u in r["requests"] if urlparse(u).scheme not in ("data", "blob")
                   and urlparse(u).netloc != host]
        assert not outside, f"{name} requests from outside the book: {outside}"
        assert not r["failures"], f"{name}: failed requests {r['failures']}"
        assert r["typeset"] == r["math"], f"{name}: {r['math'] - r['typeset']} of {r['math']} formulas not typeset"
        broken = [src for src, ok in r["images"] if not ok]
        assert not broken, f"{name}: images that did not load: {broken}"
        with_math += r["math"] > 0
    assert with_math >= 1, "no page has math: the check above checked nothing"


def test_mathjax_is_served_by_the_book(html_dir):
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()
    index = (html_dir / "book" / "intro.html").read_text()
    assert "cdn.jsdelivr" not in index and "_static/mathjax/tex-chtml.js" in index


# What a reader at `width` px must see without scrolling sideways: each display equation, table and code
# block against the article column, each equation number clear of its equation, the page itself.
LAYOUT_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const col = article.getBoundingClientRect();
  const label = e => (e.id || e.closest('[id]')?.id || e.tagName) + ': ' + e.textContent.trim().slice(0, 40);
  const wide = (e, r) => r.right > col.right + 1 || r.left < col.left - 1;
  const out = {page: document.documentElement.scrollWidth - window.innerWidth, equations: [], scrolled: [],
               covered: [], tables: [], code: [], n: {}};
  const eqs = [...document.querySelectorAll('div.math')];
  out.n.equations = eqs.length;
  for (const div of eqs) {
    const math = div.querySelector('mjx-container > mjx-math') || div.querySelector('mjx-container');
    if (!math) continue;
    const box = div.getBoundingClientRect(), r = math.getBoundingClientRect();
    const fits = r.width <= box.width + 1 && !wide(div, box);
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(div).overflowX) ||
                    ['auto', 'scroll'].includes(getComputedStyle(math.closest('mjx-container')).overflowX);
    if (!fits) (scrolls && !wide(div, box) ? out.scrolled : out.equations).push(label(div));
    const no = div.querySelector('span.eqno');
    if (no) {  // the part of the equation a reader sees: its box clipped by its scrolling container
      const n = no.getBoundingClientRect(), clip = math.closest('mjx-container').getBoundingClientRect();
      const left = Math.max(r.left, clip.left), right = Math.min(r.right, clip.right);
      if (n.width > 0 && n.left < right && n.right > left && n.top < r.bottom && n.bottom > r.top)
        out.covered.push(label(div));
    }
  }
  const tables = [...document.querySelectorAll('article table')];
  out.n.tables = tables.length;
  for (const t of tables) if (wide(t, t.getBoundingClientRect())) out.tables.push(label(t));
  const code = [...document.querySelectorAll('article div.highlight pre')];
  out.n.code = code.length;
  for (const c of code) if (c.scrollWidth > c.clientWidth + 1 || wide(c, c.getBoundingClientRect()))
    out.code.push(label(c));
  return out;
}"""


def layout(browser, url: str, width: int) -> dict:
    return visit(browser, url, width)["layout"]


def test_at_desktop_width_every_equation_table_and_code_block_fits_the_column(desktop):
    counted = {"equations": 0, "tables": 0, "code": 0}
    for name, seen in desktop.items():
        r = seen["layout"]
        for kind in counted:
            counted[kind] += r["n"][kind]
        assert r["page"] <= 0, f"{name} scrolls sideways by {r['page']} px at 1400 px"
        assert not r["equations"] and not r["scrolled"], f"{name}: equations wider than the column: " \
            f"{r['equations'] + r['scrolled']}"
        assert not r["covered"], f"{name}: equation numbers covered by their equation: {r['covered']}"
        assert not r["tables"], f"{name}: tables wider than the column: {r['tables']}"
        assert not r["code"], f"{name}: code blocks that need sideways scrolling: {r['code']}"
    assert all(counted.values()), f"the check measured nothing of some kind: {counted}"


def test_at_phone_width_equations_scroll_within_themselves_and_keep_their_numbers(phone):
    for name, seen in phone.items():
        r = seen["layout"]
        assert r["page"] <= 0, f"{name} scrolls sideways by {r['page']} px at 400 px"
        assert not r["equations"], f"{name}: equations that overflow the page at 400 px: {r['equations']}"
        assert not r["covered"], f"{name}: equation numbers covered at 400 px: {r['covered']}"


BROKEN_PAGE = """<html><body><article class="bd-article" style="width: 700px">
<div class="math" id="eq-wide"><span class="eqno" style="position: absolute; left: 100px">(1)</span>
  <mjx-container display="true" style="display: block"><mjx-math style="display: inline-block; width: 2000px">
  x</mjx-math></mjx-container></div>
<table id="wide-table"><tr><td style="white-space: nowrap">""" + "a wide cell " * 200 + """</td></tr></table>
<div class="highlight"><pre style="overflow-x: auto">""" + "long_line = 1  " * 200 + """</pre></div>
</article></body></html>"""


def test_the_layout_check_catches_a_wide_equation_table_code_block_and_a_covered_number(tmp_path, browser):
    (tmp_path / "broken.html").write_text(BROKEN_PAGE)
    r = layout(browser, (tmp_path / "broken.html").as_uri(), 1400)
    assert [e.split(":")[0] for e in r["equations"] + r["scrolled"]] == ["eq-wide"]
    assert r["covered"] and r["tables"] and r["code"], r

