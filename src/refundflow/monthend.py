"""The month's statistics as files: where they go, when they are due, when the watcher makes them.

``refundflow report`` and the watcher's month-end hook both call :func:`produce`: it writes the
two statistics tables and the monthly workbook into the archive (refundsheets/统计表/YYYY-MM/)
and delivers copies to 客服部, the finance compiler and 行政部. The archived workbook is also
the memory that the month is done: the watcher makes a month's files once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .calendar import Month, WorkCalendar
from .errors import StorageError, os_problem
from .ledger import Ledger
from .workspace import Workspace

if TYPE_CHECKING:  # pandas and the writers load only when a month is actually made
    import pandas as pd

    from .monthly import Tables

log = logging.getLogger(__name__)

STATS_FOLDER = "统计表"
SIGNED_FOLDER = "已审批"
CS_NAME = "客服退单统计表"
FINANCE_NAME = "财务退单统计表"
BOOK_NAME = "月度退款报表"


def file_name(kind: str, month: Month) -> str:
    return f"{kind}-{month.label}.xlsx"


def archive_dir(workspace: Workspace, month: Month) -> Path:
    return workspace.sheets / STATS_FOLDER / month.label


def signed_dir(workspace: Workspace, month: Month) -> Path:
    """Where a department head's approved table of ``month`` is kept once received.

    :mod:`stats_intake` files a signed table dropped in inbox/ here (and the workbook made
    again from both); `status` counts a table as in when it is here.
    """
    return archive_dir(workspace, month) / SIGNED_FOLDER


@dataclass(frozen=True)
class ReportFiles:
    month: Month
    count: int  # refunds in the month
    amount: float  # their 金额 total
    issues: int  # rows of 核对
    delivered: tuple[Path, ...]  # cs table, finance table, workbook (in the outboxes)


def _write_atomic(dest: Path, source: Path) -> None:
    """Copy ``source`` to ``dest`` through a temporary file: a reader never sees half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_tables(cs_file: Path, finance_file: Path, expected: Tables) -> pd.DataFrame:
    """核对 of two statistics table files (as generated, or as signed) against the ledger."""
    import pandas as pd

    from .reports import read_stats_table, reconcile

    frames = []
    for path, name, want in (
        (cs_file, CS_NAME, expected.cs),
        (finance_file, FINANCE_NAME, expected.finance),
    ):
        back = read_stats_table(path)
        frames.append(reconcile(back.rows, back.total, name=name, expected=want))
    return pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)


def produce(workspace: Workspace, month: Month, *, now: dt.datetime) -> ReportFiles:
    """Write the month's two tables and workbook to the archive and the outboxes."""
    import pandas as pd

    from .monthly import Tables, write_monthly
    from .reports import collect, cs_table, finance_table, total
    from .statsbook import write_table

    config = workspace.config
    ledger = Ledger(workspace.ledger_path)
    try:
        data = collect(ledger, month, as_of=now, config=config)
    finally:
        ledger.close()
    cs, finance = cs_table(data), finance_table(data)
    archive = archive_dir(workspace, month)
    try:
        archive.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=archive, prefix=".report-") as scratch:
            work = Path(scratch)
            cs_file, fin_file = (
                work / file_name(CS_NAME, month),
                work / file_name(FINANCE_NAME, month),
            )
            write_table(cs_file, cs, month=month, finance=False, compiled_on=now.date())
            write_table(fin_file, finance, month=month, finance=True, compiled_on=now.date())
            # 核对 reads the files just written, as administration's tools would read them.
            issues = check_tables(cs_file, fin_file, Tables(cs, finance, pd.DataFrame()))
            skipped = data.skipped.assign(表="账本", 表中="", 账本中="")
            issues = pd.concat([issues, skipped[issues.columns]], ignore_index=True)
            book = work / file_name(BOOK_NAME, month)
            write_monthly(book, data, Tables(cs, finance, issues), mask=config.report_mask_mobile)
            delivered = []
            for made, role in (
                (cs_file, "cs"),
                (fin_file, config.report_finance_compiler),
                (book, "admin"),
            ):
                _write_atomic(archive / made.name, made)
                dest = workspace.outbox(role) / made.name
                _write_atomic(dest, made)
                delivered.append(dest)
    except OSError as exc:
        where = f"({exc.filename})" if exc.filename else ""
        raise StorageError(
            f"生成 {month.label} 月度统计表时{os_problem(exc)}{where}",
            hint="请检查该文件夹能否写入(磁盘空间、权限、同名文件),然后运行 "
            f"refundflow report --month {month.label} 重新生成;账本中的数据没有受影响",
        ) from exc
    log.info("%s 月度统计表已生成:%d 笔退款", month.label, len(cs))
    return ReportFiles(month, len(cs), total(cs["金额"]), len(issues), tuple(delivered))


def produce_due(workspace: Workspace, *, now: dt.datetime) -> ReportFiles | None:
    """The watcher's month-end hook: last month's files, once, on the first run after it.

    Nothing for a month without refunds, nor when the month's workbook is already archived
    (made by an earlier run or by ``refundflow report``).
    """
    month = Month.before(now.date())
    if (archive_dir(workspace, month) / file_name(BOOK_NAME, month)).exists():
        return None
    ledger = Ledger(workspace.ledger_path)
    try:
        months = ledger.stats.months_with_forms()
    finally:
        ledger.close()
    if month.label not in months:
        return None
    return produce(workspace, month, now=now)


def late_tables(workspace: Workspace, *, now: dt.datetime) -> list[str]:
    """`status` lines for last month's tables not in by their due date (empty when on time)."""
    month = Month.before(now.date())
    due = WorkCalendar(workspace.config).statistics_due(
        month.next_first.year, month.next_first.month
    )
    if now.date() <= due:
        return []
    ledger = Ledger(workspace.ledger_path)
    try:
        if month.label not in ledger.stats.months_with_forms():
            return []
    finally:
        ledger.close()
    lines = []
    for kind, dept in ((CS_NAME, "客服部"), (FINANCE_NAME, "财务部")):
        if not (signed_dir(workspace, month) / file_name(kind, month)).exists():
            days = (now.date() - due).days
            lines.append(
                f"逾期:{month.label} 的{kind}({dept})应于 {due:%Y-%m-%d} 报送行政人事部,"
                f"已逾期 {days} 天,尚未收到部门负责人审批的表"
            )
    if lines:
        lines.append(
            f"处理办法:请部门负责人在统计表的“审批人”处签名后尽快报送行政人事部"
            f"(生成的表在 refundsheets/{STATS_FOLDER}/{month.label}/)"
        )
    return lines
