"""Sphinx extension: the claims ledger and `claims.json`, assembled from what the chapters recorded.

Each chapter's `claims.show()` leaves `<chapter>.json` in the claims folder while the book executes
(Sphinx's read phase). The directive ``{claims-ledger}`` is replaced, when pages are written (after
every chapter has run), by a table of every recorded claim, linked to its chapter; the build then
writes `claims.json` (claim, value, bound, holds, chapter, commit, date, machine) beside the HTML,
for a reviewer to diff between builds. No value is typed by hand anywhere.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

from pcbp.book.ledger import REPO, claims_dir
from pcbp.claims import SOURCES, load

COLUMNS = (("Claim", 40), ("Source", 8), ("Chapter", 12), ("Measured", 10), ("Bound", 12), ("Holds", 7),
           ("Left out", 11))


class ledger_placeholder(nodes.General, nodes.Element):
    """Stands where the ledger goes until every chapter has run."""


class statistics_placeholder(nodes.General, nodes.Element):
    """Stands where the execution statistics go."""


class ExecutionStatistics(Directive):
    """``{execution-statistics}``: how long each chapter ran in this build, on which commit and machine."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        return [statistics_placeholder()]


class ClaimsLedger(Directive):
    """``{claims-ledger}``: the table of every claim the chapters checked in this build."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        return [ledger_placeholder()]


def build_info() -> dict[str, str]:
    """The commit, date and machine of this build (what `claims.json` and the pages record)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}


def recorded_claims() -> list[dict[str, object]]:
    """Every claim the chapters saved in this build, chapter by chapter in the order of the book."""
    return load(sorted(claims_dir().glob("*.json")))


def _cell(content: nodes.Node | str) -> nodes.entry:
    entry = nodes.entry()
    entry += nodes.paragraph("", "", content if isinstance(content, nodes.Node) else nodes.Text(content))
    return entry


def _table(rows: list[dict[str, object]], builder, fromdocname: str) -> nodes.table:
    table, group = nodes.table(classes=["claims-ledger"]), nodes.tgroup(cols=len(COLUMNS))
    table += group
    for _, width in COLUMNS:
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    header = nodes.row()
    for name, _ in COLUMNS:
        header += _cell(name)
    head += header
    for r in rows:
        docname = f"book/{r['chapter']}"
        title = builder.env.titles[docname].astext() if docname in builder.env.titles else str(r["chapter"])
        link = nodes.reference("", title, internal=True, refuri=builder.get_relative_uri(fromdocname, docname))
        kind = r.get("kind", "check")
        if kind == "check":
            holds = "yes" if r["holds"] else "NO"
        else:
            holds = ("met" if r["holds"] else "missed") + " (reported)"
        row = nodes.row()
        for value in (str(r["text"]), str(r["source"]), link, f"{float(r['value']):.3g}", str(r["bound_text"]),
                      holds, str(r["filtered"] or "—")):
            row += _cell(value)
        body += row
    return table


def resolve_ledger(app: Sphinx, doctree: nodes.document, fromdocname: str) -> None:
    placeholders = list(doctree.findall(ledger_placeholder))
    if not placeholders:
        return
    rows = recorded_claims()
    for node in placeholders:
        if not rows:
            node.replace_self(nodes.paragraph("", "No chapter recorded a claim in this build."))
            continue
        legend = nodes.paragraph("", ", ".join(f"{k}: {v}" for k, v in SOURCES.items()) + ".")
        node.replace_self([_table(rows, app.builder, fromdocname), legend])


def executes_itself(app: Sphinx) -> bool:
    """True when Sphinx runs the chapters (`jupyter-book build .`), False for `pcbp book`'s executed notebooks."""
    return app.config.nb_execution_mode != "off"


def execution_record() -> dict[str, object] | None:
    """`pcbp book`'s record of the chapters it executed for this build (None if there is none)."""
    path = Path(os.environ.get("PCBP_EXECUTION") or REPO / "_build" / "notebooks" / "execution.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _statistics(app: Sphinx, fromdocname: str) -> list[nodes.Node]:
    record = None if executes_itself(app) else execution_record()
    if record is None:
        return [nodes.paragraph("", "This build executed the chapters itself (jupyter-book build): "
                                    "`pcbp book` records each chapter's time.")]
    header = nodes.paragraph("", f"Built from commit {record['commit']} on {record['date']}, on {record['machine']}; "
                                 f"mode {record['mode']}, {record['jobs']} chapter(s) at a time.")
    table, group = nodes.table(classes=["execution-statistics"]), nodes.tgroup(cols=4)
    table += group
    for width in (30, 10, 10, 50):
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    row = nodes.row()
    for name in ("Chapter", "Seconds", "Status", "Error"):
        row += _cell(name)
    head += row
    for r in record["chapters"]:  # type: ignore[union-attr]
        docname = f"book/{r['chapter']}"
        title = app.env.titles[docname].astext() if docname in app.env.titles else str(r["chapter"])
        link = nodes.reference("", title, internal=True, refuri=app.builder.get_relative_uri(fromdocname, docname))
        row = nodes.row()
        for value in (link, f"{float(r['seconds']):.1f}", str(r["status"]), str(r["error"] or "—")):
            row += _cell(value)
        body += row
    total = sum(float(r["seconds"]) for r in record["chapters"])  # type: ignore[union-attr]
    return [header, table, nodes.paragraph("", f"Total execution time: {total:.0f} s.")]


def resolve_statistics(app: Sphinx, doctree: nodes.document, fromdocname: str) -> None:
    for node in list(doctree.findall(statistics_placeholder)):
        node.replace_self(_statistics(app, fromdocname))


def clear_claims(app: Sphinx) -> None:
    """When Sphinx executes the chapters, start with an empty claims folder, so no old claims survive.

    `pcbp book` executes them before the build and clears the folder itself.
    """
    folder = claims_dir()
    if not executes_itself(app):
        return
    os.environ["PCBP_CLAIMS_DIR"] = str(folder)  # the kernels inherit it
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()


def write_claims_json(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    info = build_info()
    rows = [{**r, **info} for r in recorded_claims()]
    Path(app.outdir, "claims.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def setup(app: Sphinx) -> dict[str, object]:
    app.add_node(ledger_placeholder)
    app.add_node(statistics_placeholder)
    app.add_directive("claims-ledger", ClaimsLedger)
    app.add_directive("execution-statistics", ExecutionStatistics)
    app.connect("builder-inited", clear_claims)
    app.connect("doctree-resolved", resolve_ledger)
    app.connect("doctree-resolved", resolve_statistics)
    app.connect("build-finished", write_claims_json)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
