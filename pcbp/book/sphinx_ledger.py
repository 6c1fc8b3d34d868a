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


def clear_claims(app: Sphinx) -> None:
    """Start every build with an empty claims folder, so no chapter's old claims survive."""
    folder = claims_dir()
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
    app.add_directive("claims-ledger", ClaimsLedger)
    app.connect("builder-inited", clear_claims)
    app.connect("doctree-resolved", resolve_ledger)
    app.connect("build-finished", write_claims_json)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
