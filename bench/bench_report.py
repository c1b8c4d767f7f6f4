"""Time and peak memory of the monthly statistics for a month of N refunds.

    python3 bench/bench_report.py [--refunds 10000 100000]

Each size runs in its own child process (so its peak RSS is its own) on a synthetic ledger
(tests/ledgerfill.py: every refund refunded through the whole route, eight hand-offs each).
Reported per size: reading the ledger into DataFrames, writing both statistics tables,
writing the monthly workbook, reading the tables back for 核对, and the whole
``monthend.produce`` (what `refundflow report` does), with the child's peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from ledgerfill import add_refunds, month_of_refunds  # noqa: E402
from refundflow.config import Config  # noqa: E402
from refundflow.ledger import Ledger  # noqa: E402
from refundflow.monthend import produce  # noqa: E402
from refundflow.monthly import Tables, write_monthly  # noqa: E402
from refundflow.reports import (  # noqa: E402
    Month,
    collect,
    cs_table,
    finance_table,
    read_stats_table,
)
from refundflow.statsbook import write_table  # noqa: E402
from refundflow.workspace import Workspace, init_workspace  # noqa: E402

MONTH = Month(2026, 11)
AS_OF = dt.datetime(2026, 12, 1, 8, 0)


def measure(count: int, book_out: Path | None = None) -> dict[str, float]:
    """Run in the child: every phase once, then the whole produce(); keep the book at
    ``book_out`` (for :func:`xlsxwriter_alone`)."""
    out: dict[str, float] = {"refunds": count}
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "ws", Config())
        init_workspace(workspace)
        ledger = Ledger(workspace.ledger_path)
        started = time.perf_counter()
        add_refunds(ledger, month_of_refunds(count))
        out["fill_ledger_s"] = time.perf_counter() - started

        started = time.perf_counter()
        data = collect(ledger, MONTH, as_of=AS_OF, config=workspace.config)
        cs, finance = cs_table(data), finance_table(data)
        out["collect_s"] = time.perf_counter() - started
        ledger.close()

        scratch = Path(tmp)
        started = time.perf_counter()
        write_table(scratch / "cs.xlsx", cs, month=MONTH, finance=False, compiled_on=AS_OF.date())
        write_table(
            scratch / "fin.xlsx", finance, month=MONTH, finance=True, compiled_on=AS_OF.date()
        )
        out["tables_s"] = time.perf_counter() - started

        started = time.perf_counter()
        read_stats_table(scratch / "cs.xlsx")
        read_stats_table(scratch / "fin.xlsx")
        out["read_back_s"] = time.perf_counter() - started

        started = time.perf_counter()
        write_monthly(scratch / "book.xlsx", data, Tables(cs, finance, cs.iloc[0:0]), mask=True)
        out["workbook_s"] = time.perf_counter() - started
        out["workbook_mb"] = (scratch / "book.xlsx").stat().st_size / 2**20
        if book_out is not None:
            shutil.copyfile(scratch / "book.xlsx", book_out)

        started = time.perf_counter()
        produce(workspace, MONTH, now=AS_OF)
        out["produce_s"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def xlsxwriter_alone(book: Path) -> dict[str, float]:
    """Run in a child: xlsxwriter alone writing the cells of ``book`` (read first, untimed)."""
    import python_calamine
    import xlsxwriter

    workbook = python_calamine.load_workbook(book)
    sheets = {name: workbook.get_sheet_by_name(name).to_python() for name in workbook.sheet_names}
    cells = sum(len(row) for rows in sheets.values() for row in rows)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        out = xlsxwriter.Workbook(str(Path(tmp) / "plain.xlsx"))
        for name, rows in sheets.items():
            sheet = out.add_worksheet(name)
            for r, row in enumerate(rows):
                sheet.write_row(r, 0, row)
        out.close()
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"workbook_s": seconds, "peak_rss_mb": peak, "cells": cells}


def run_child(*args: str) -> dict[str, float]:
    """This script run as a child process with ``args``: its JSON answer."""
    child = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    answer: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refunds", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--book", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--xlsxwriter-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.book)))
        return
    if args.xlsxwriter_child:
        print(json.dumps(xlsxwriter_alone(args.xlsxwriter_child)))
        return
    print(
        f"{'refunds':>8} {'collect':>8} {'tables':>8} {'read':>8} {'workbook':>9}"
        f" {'produce':>8} {'book MB':>8} {'peak RSS MB':>12}"
    )
    for count in args.refunds:
        r = run_child("--child", str(count))
        print(
            f"{count:>8} {r['collect_s']:>7.1f}s {r['tables_s']:>7.1f}s {r['read_back_s']:>7.1f}s"
            f" {r['workbook_s']:>8.1f}s {r['produce_s']:>7.1f}s {r['workbook_mb']:>8.1f}"
            f" {r['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()
