"""`pcbp book`: execute every chapter once under papermill, then build the HTML from the executed notebooks.

Executing and building are two steps so that each chapter runs exactly once per build (the test
suite's papermill run *is* the book's execution), chapters run side by side on the machine's cores,
and every page offers its executed `.ipynb` for download. The build reads a staged copy of the
sources (`_build/src`) in which each chapter is its executed notebook and execution is off.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from pcbp.book.ledger import REPO
from pcbp.book.run import chapters

BUILD = REPO / "_build"
NOTEBOOKS = BUILD / "notebooks"
STAGE = BUILD / "src"
CLAIMS = BUILD / "claims"
STATISTICS = NOTEBOOKS / "execution.json"
# Chapters whose measurements are timings: in a full build they run alone, after the others, with every core.
EXCLUSIVE = ("cost",)


def execute_chapter(chapter: str, quick: bool, threads: int | None) -> dict[str, object]:
    """Run one chapter in its own process; return its execution record (seconds, status, error)."""
    env = {**os.environ, "PCBP_CLAIMS_DIR": str(CLAIMS)}
    env.pop("PCBP_QUICK", None)
    if quick:
        env["PCBP_QUICK"] = "1"
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "pcbp.cli", "run", chapter, "--output", str(NOTEBOOKS / f"{chapter}.ipynb")]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    print(f"  {chapter:<12} {seconds:7.1f} s  {'ok' if not error else 'FAILED: ' + error}", flush=True)
    return {"chapter": chapter, "seconds": round(seconds, 1), "status": "ok" if not error else "failed",
            "error": error, "threads": threads or os.cpu_count()}


def _order(names: list[str]) -> list[str]:
    """Longest chapter first (times of the last execution), so the parallel runs finish together."""
    try:
        last = {r["chapter"]: r["seconds"] for r in json.loads(STATISTICS.read_text())["chapters"]}
    except (OSError, ValueError, KeyError, TypeError):  # a fresh clone: the longest source runs longest
        last = {c: (REPO / "book" / f"{c}.md").stat().st_size for c in names}
    return sorted(names, key=lambda c: -float(last.get(c, 0.0)))


def execute_all(quick: bool, jobs: int) -> list[dict[str, object]]:
    """Execute every chapter (`jobs` at a time, the timing chapters alone at the end) into `_build/notebooks`."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    shutil.rmtree(CLAIMS, ignore_errors=True)  # no chapter's claims from an earlier build survive
    CLAIMS.mkdir(parents=True)
    NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    for old in NOTEBOOKS.glob("*.ipynb"):
        old.unlink()
    alone = [c for c in EXCLUSIVE if c in chapters()] if not quick else []  # quick timings are only reported
    parallel = _order([c for c in chapters() if c not in alone])
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    print(f"executing {len(parallel) + len(alone)} chapters ({'quick' if quick else 'full'}, {jobs} at a time)")
    with ThreadPoolExecutor(jobs) as pool:
        records = list(pool.map(lambda c: execute_chapter(c, quick, threads), parallel))
    records += [execute_chapter(c, quick, None) for c in alone]
    return records


def write_statistics(records: list[dict[str, object]], quick: bool, jobs: int) -> None:
    """`_build/notebooks/execution.json`: what ran, how long, on which commit and machine."""
    from pcbp.book.sphinx_ledger import build_info

    order = {c: i for i, c in enumerate(chapters())}
    records = sorted(records, key=lambda r: order[str(r["chapter"])])
    STATISTICS.write_text(json.dumps({**build_info(), "mode": "quick (PCBP_QUICK=1)" if quick else "full",
                                      "jobs": jobs, "chapters": records}, indent=1) + "\n")


def stage() -> Path:
    """`_build/src`: the book's sources with each chapter replaced by its executed notebook, execution off."""
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "book").mkdir(parents=True)
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"  # executed already, by execute_all
    (STAGE / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for name in ("_toc.yml", "references.bib"):
        shutil.copy(REPO / name, STAGE / name)
    shutil.copytree(REPO / "_static", STAGE / "_static")  # the book's CSS
    executed = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    for page in (REPO / "book").iterdir():
        if page.suffix == ".md" and page.stem in executed:
            shutil.copy(NOTEBOOKS / f"{page.stem}.ipynb", STAGE / "book" / f"{page.stem}.ipynb")
        elif page.is_file():
            shutil.copy(page, STAGE / "book" / page.name)
    (STAGE / "pcbp").symlink_to(REPO / "pcbp")  # `{literalinclude} ../pcbp/...` resolves as in the sources
    return STAGE


def build_html() -> int:
    """`jupyter-book build` of the staged sources into `_build/html`, warnings as errors."""
    for old in ("html", ".doctrees", "jupyter_execute"):  # no page, source or image of an earlier build survives
        shutil.rmtree(BUILD / old, ignore_errors=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb), "build", "--all", "-W", "-n", "--keep-going", str(STAGE), "--path-output", str(REPO)]
    env = {**os.environ, "PCBP_CLAIMS_DIR": str(CLAIMS), "PCBP_EXECUTION": str(STATISTICS)}
    return subprocess.run(command, env=env, cwd=REPO).returncode


def book(quick: bool, jobs: int) -> int:
    """Execute, stage, build; exit status 1 if a chapter failed (its page still shows where) or the build did."""
    start = time.perf_counter()
    records = execute_all(quick, jobs)
    write_statistics(records, quick, jobs)
    failed = [r["chapter"] for r in records if r["status"] != "ok"]
    failures = f"; FAILED: {', '.join(map(str, failed))}" if failed else ""
    print(f"executed in {time.perf_counter() - start:.0f} s{failures}")
    stage()
    status = build_html()
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] book built in {time.perf_counter() - start:.0f} s: {BUILD / 'html' / 'index.html'}")
    return 1 if failed or status else 0
