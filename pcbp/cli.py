"""The `pcbp` command: `verify` re-checks the core claims, `fetch-data` gets data, `run` runs a chapter, `book`
builds the book, `pdf` prints it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _verify(args: argparse.Namespace) -> int:
    from pcbp.verify import claims, table

    start = time.perf_counter()
    rows = claims(data=not args.no_data)
    print(table(rows))
    failed = [r for r in rows if not r.holds]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


def _fetch(args: argparse.Namespace) -> int:
    from pcbp.data import DataNotFoundError, fetch

    try:
        print(fetch(args.name))
    except (DataNotFoundError, ValueError, OSError) as err:
        print(f"pcbp fetch-data: {err}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    from pcbp.book.run import parse_parameters, run_chapter

    try:
        params = parse_parameters(args.parameter)
        path = run_chapter(args.chapter, params, output=args.output, quick=args.quick)
    except ValueError as err:
        print(f"pcbp run: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # papermill's error names the cell and, for a claim, the claim
        print(f"pcbp run: {args.chapter} failed: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _book(args: argparse.Namespace) -> int:
    from pcbp.book.build import book

    try:
        return book(quick=args.quick, jobs=args.jobs)
    except ValueError as err:
        print(f"pcbp book: {err}", file=sys.stderr)
        return 2


def _pdf(args: argparse.Namespace) -> int:
    from pcbp.book.pdf import PDF, STAGE, pdf

    return pdf(src=args.source or STAGE, out=args.output or PDF, show_hidden=args.show_hidden_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcbp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="re-check Z-IL = BP and friends; exit 1 if a claim fails")
    verify.add_argument("--no-data", action="store_true", help="skip the FashionMNIST rows (no data installed)")
    fetch = sub.add_parser("fetch-data", help="find or download a data set, verify it, print its folder")
    fetch.add_argument("name", choices=("fashion-mnist", "mnist"))
    run = sub.add_parser("run", help="execute one chapter with other parameters (-p name=value)")
    run.add_argument("chapter", help="a chapter's file name without .md, e.g. zil")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter of the chapter's parameters cell (a Python literal)")
    run.add_argument("--quick", action="store_true", help="set PCBP_QUICK=1: the small version CI runs")
    run.add_argument("--output", type=Path, help="where to write the executed notebook (default _build/run/)")
    book = sub.add_parser("book", help="execute every chapter (papermill), then build the HTML from them")
    book.add_argument("--quick", action="store_true", help="set PCBP_QUICK=1: the small version CI runs")
    book.add_argument("--jobs", type=int, default=1, help="chapters executed side by side (timing chapters run alone)")
    pdf = sub.add_parser("pdf", help="print the book `pcbp book` built to one PDF (_build/pdf/book.pdf), offline")
    pdf.add_argument("--output", type=Path, help="where to write the PDF (default _build/pdf/book.pdf)")
    pdf.add_argument("--source", type=Path, help="a staged source tree (default _build/src, staged by `pcbp book`)")
    pdf.add_argument("--show-hidden-code", action="store_true",
                     help="print the code of hide-input cells too (default: left out, as the HTML first shows it)")
    args = parser.parse_args(argv)
    handler = {"verify": _verify, "fetch-data": _fetch, "run": _run, "book": _book, "pdf": _pdf}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
