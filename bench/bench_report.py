"""Time and peak memory of the monthly statistics for a month of N refunds.

    python3 bench/bench_report.py [--refunds 10000 100000]

Each size runs in its own child process (so its peak RSS is its own) on a synthetic ledger
(tests/ledgerfill.py: every refund refunded through the whole route, eight hand-offs each).
Reported per size: reading the ledger into DataFrames, writing both statistics tables,
writing the monthly workbook, reading the tables back for 核对, and the whole
``monthend.produce`` (what `refundflow report` does), with the child's peak RSS.

Then the monthly workbook alone against its floor, each in a child of its own (the ledger
filled and read into DataFrames first, then the RSS measured before and at the peak of the
write): ``write_monthly`` against xlsxwriter alone writing the same cells of the same
sheets (constant memory, no formats, tables or charts). Goal (issue 9 / 11): within 1.5x
of the floor, and under 1 GB peak at 100,000 refunds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
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
from refundflow.monthly import (  # noqa: E402
    DETAIL,
    OVERDUE,
    PEOPLE,
    Tables,
    _masked,
    _overdue,
    _people,
    write_monthly,
)
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


def measure(count: int) -> dict[str, float]:
    """Run in the child: every phase once, then the whole produce()."""
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

        started = time.perf_counter()
        produce(workspace, MONTH, now=AS_OF)
        out["produce_s"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def floor(path: Path, sheets: dict[str, object]) -> None:
    """xlsxwriter alone writing the same cells: typed, row by row, nothing else."""
    import pandas as pd
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    for name, frame in sheets.items():
        assert isinstance(frame, pd.DataFrame)
        ws = book.add_worksheet(name)
        for c, header in enumerate(frame.columns):
            ws.write_string(0, c, str(header))
        columns = [frame[c].tolist() for c in frame.columns]
        for r, row in enumerate(zip(*columns, strict=True), 1):
            for c, value in enumerate(row):
                if value is None or value is pd.NaT:
                    continue
                if isinstance(value, str):
                    ws.write_string(r, c, value)
                elif isinstance(value, int | float):
                    if not math.isnan(value):
                        ws.write_number(r, c, value)
                elif isinstance(value, dt.datetime):
                    ws.write_datetime(r, c, value)
                else:
                    ws.write_string(r, c, str(value))
    book.close()


def fill(count: int, root: Path) -> None:
    """Run in a child: a workspace whose ledger holds a month of ``count`` refunds."""
    workspace = Workspace(root, Config())
    init_workspace(workspace)
    ledger = Ledger(workspace.ledger_path)
    add_refunds(ledger, month_of_refunds(count))
    ledger.close()


def measure_book(root: Path, which: str) -> dict[str, float]:
    """Run in a child: the workbook (ours or the floor) from the filled ledger in ``root``.

    The ledger was filled by another process, so the RSS before the write is what the
    month's DataFrames take, not what filling the ledger left behind.
    """
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(root, Config())
        ledger = Ledger(workspace.ledger_path)
        data = collect(ledger, MONTH, as_of=AS_OF, config=workspace.config)
        cs, finance = cs_table(data), finance_table(data)
        ledger.close()
        tables = Tables(cs, finance, cs.iloc[0:0])
        out["before_mb"] = _rss_mb()
        book = Path(tmp) / "book.xlsx"
        started, cpu = time.perf_counter(), time.process_time()
        if which == "ours":
            write_monthly(book, data, tables, mask=True)
        else:
            floor(
                book,
                {
                    "客服退单统计表": _masked(cs, mask=True),
                    "财务退单统计表": finance,
                    OVERDUE: _overdue(data),
                    DETAIL: _masked(data.refunds, mask=True),
                    PEOPLE: _people(data),
                },
            )
        out["seconds"] = time.perf_counter() - started
        out["cpu"] = time.process_time() - cpu
        out["book_mb"] = book.stat().st_size / 2**20
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def run_child(*args: str) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refunds", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--book", choices=["ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workbook-only", action="store_true", help="skip the phases table")
    args = parser.parse_args()
    if args.book:
        print(json.dumps(measure_book(args.root, args.book)))
        return
    if args.child and args.root:
        fill(args.child, args.root)
        print("{}")
        return
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if not args.workbook_only:
        phases(args.refunds)
    print(
        f"\n{'refunds':>8} {'workbook':>9} {'xlsxwriter':>11} {'ratio':>6} {'CPU ratio':>10}"
        f" {'RSS before':>11} {'peak':>7} {'floor peak':>11}"
    )
    for count in args.refunds:
        with tempfile.TemporaryDirectory() as tmp:
            root = str(Path(tmp) / "ws")
            run_child("--child", str(count), "--root", root)
            ours = run_child("--book", "ours", "--root", root)
            alone = run_child("--book", "floor", "--root", root)
        print(
            f"{count:>8} {ours['seconds']:>8.1f}s {alone['seconds']:>10.1f}s"
            f" {ours['seconds'] / alone['seconds']:>5.2f}x {ours['cpu'] / alone['cpu']:>9.2f}x"
            f" {ours['before_mb']:>8.0f} MB"
            f" {ours['peak_mb']:>4.0f} MB {alone['peak_mb']:>8.0f} MB"
        )


def phases(refunds: list[int]) -> None:
    print(
        f"{'refunds':>8} {'collect':>8} {'tables':>8} {'read':>8} {'workbook':>9}"
        f" {'produce':>8} {'book MB':>8} {'peak RSS MB':>12}"
    )
    for count in refunds:
        r = run_child("--child", str(count))
        print(
            f"{count:>8} {r['collect_s']:>7.1f}s {r['tables_s']:>7.1f}s {r['read_back_s']:>7.1f}s"
            f" {r['workbook_s']:>8.1f}s {r['produce_s']:>7.1f}s {r['workbook_mb']:>8.1f}"
            f" {r['peak_rss_mb']:>12.0f}"
        )


if __name__ == "__main__":
    main()
