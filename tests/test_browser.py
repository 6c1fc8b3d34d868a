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


def visit(browser, url: str) -> dict:
    """Open `url`, wait for the network and MathJax to settle, report what the reader got."""
    page = browser.new_page()
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
    page.close()
    return {**report, "requests": requests, "failures": failures}


def test_every_page_renders_offline(html_dir, server, browser):
    found = pages(html_dir)
    assert len(found) >= 2, found
    host = urlparse(server).netloc
    with_math = 0
    for name in found:
        r = visit(browser, f"{server}/{name}")
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
