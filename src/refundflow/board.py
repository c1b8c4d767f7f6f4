"""The status board, ``outbox/状态看板.xlsx``: where every open form is, for everyone to see.

Rewritten after every processed file and periodically. It never blocks the watcher: it is
written under a temporary name and renamed into place; when the board cannot be replaced
(someone has it open — an open file is locked on a Windows share) the pass gives up quietly
and a later pass writes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from .calendar import WorkCalendar
from .config import CONFIG_FILE, ROLE_KEYS, ROLE_NAMES
from .ledger import Ledger
from .routing import STEP_NAMES, Step
from .status import FormStatus, open_forms, roster_warning
from .workspace import OUTBOX, Workspace

log = logging.getLogger(__name__)

BOARD_FILE = "状态看板.xlsx"
BOARD_SHEET = "状态看板"
COLUMNS = ("编号", "订单号", "金额", "环节", "等待", "自", "期限", "剩余时间", "状态", "超时记录")
WIDTHS = (17.0, 17.0, 10.0, 28.0, 11.0, 16.0, 16.0, 17.0, 7.0, 56.0)


def time_left(deadline: dt.datetime | None, now: dt.datetime) -> str:
    """``3小时05分`` before the deadline, ``已超1天2小时`` after it."""
    if deadline is None:
        return "-"
    seconds = int((deadline - now).total_seconds())
    minutes = abs(seconds) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    text = (
        (f"{days}天" if days else "") + (f"{hours}小时" if days or hours else "") + f"{mins:02d}分"
    )
    return f"已超{text}" if seconds < 0 else text


def board_order(forms: Sequence[FormStatus]) -> list[FormStatus]:
    """Late forms first (longest overdue first), then by deadline; no deadline last."""
    far = dt.datetime.max
    return sorted(forms, key=lambda f: (not f.late, f.deadline or far, f.form_no))


def monthly_due(now: dt.datetime, calendar: WorkCalendar) -> tuple[dt.date, str]:
    """The next day the monthly statistics tables are due, and which month they cover.

    Called on an instance: the rule may come to depend on the site's calendar.
    """
    day = calendar.monthly_submission_day(now.year, now.month)
    covers = (now.replace(day=1) - dt.timedelta(days=1)).strftime("%Y年%m月")
    if now.date() > day:
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        day = calendar.monthly_submission_day(year, month)
        covers = now.strftime("%Y年%m月")
    return day, covers


@dataclass(frozen=True)
class BoardContent:
    now: dt.datetime
    forms: tuple[FormStatus, ...]
    warning: tuple[str, ...]  # the roster warning, shown at the top
    calendar: WorkCalendar


def write_board_file(path: Path, content: BoardContent) -> None:
    """Write the board workbook to ``path`` (a new file)."""
    wb = Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
    base = {"font_name": "宋体", "font_size": 10, "valign": "vcenter", "text_wrap": True}
    title = wb.add_format(base | {"bold": True, "font_size": 16})
    warn = wb.add_format(base | {"bold": True, "font_color": "#C00000"})
    header = wb.add_format(base | {"bold": True, "border": 1, "bg_color": "#D9E1F2"})
    cell = wb.add_format(base | {"border": 1})
    late = wb.add_format(base | {"border": 1, "font_color": "#C00000", "bold": True})
    ws = wb.add_worksheet(BOARD_SHEET)
    for i, width in enumerate(WIDTHS):
        ws.set_column(i, i, width)
    last = len(COLUMNS) - 1
    ws.merge_range(0, 0, 0, last, f"退款单状态看板(更新于 {content.now:%Y-%m-%d %H:%M})", title)
    row = 1
    for line in content.warning:
        ws.merge_range(row, 0, row, last, line, warn)
        row += 1
    forms = board_order(content.forms)
    overdue = sum(f.late for f in forms)
    due, covers = monthly_due(content.now, content.calendar)
    summary = (
        f"未办结 {len(forms)} 张,其中逾期 {overdue} 张。"
        f"{covers}退单统计表(客服、财务)报送行政部日期:{due:%Y-%m-%d}"
    )
    ws.merge_range(row, 0, row, last, summary, cell)
    row += 2
    ws.write_row(row, 0, COLUMNS, header)
    ws.freeze_panes(row + 1, 0)
    first_data = row + 1
    for f in forms:
        row += 1
        fmt = late if f.late else cell
        values = (
            f.form_no,
            f.order_no,
            f.amount or "",
            f.step_name,
            f.waiting_on_name,
            f"{f.since:%Y-%m-%d %H:%M}",
            f"{f.deadline:%Y-%m-%d %H:%M}" if f.deadline else "-",
            time_left(f.deadline, content.now),
            "逾期" if f.late else "正常",
            "\n".join(f.notes),
        )
        ws.write_row(row, 0, values, fmt)
        # Spreadsheet programs do not grow a row for wrapped text written by a program.
        ws.set_row(row, 13.5 * max(_lines(v, w) for v, w in zip(values, WIDTHS, strict=True)))
    if not forms:
        row += 1
        ws.merge_range(row, 0, row, last, "没有未办结的退款单", cell)
    if forms:
        ws.autofilter(first_data - 1, 0, row, last)
    row += 2
    row = _counts(ws, row, "按环节统计", _by_step(forms), header, cell)
    row = _counts(ws, row + 1, "按等待部门统计", _by_role(forms), header, cell)
    ws.set_paper(9)  # A4
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(first_data - 1)
    wb.close()


def _lines(text: str, width: float) -> int:
    """How many lines ``text`` wraps to in a column ``width`` wide (a CJK character is about
    two digits wide)."""
    return sum(
        max(1, math.ceil(sum(2.1 if ord(c) > 0x2E80 else 1.0 for c in line) / width))
        for line in text.splitlines() or [""]
    )


def _by_step(forms: Sequence[FormStatus]) -> list[tuple[str, int, int]]:
    total = Counter(f.step for f in forms)
    late = Counter(f.step for f in forms if f.late)
    return [(STEP_NAMES[s], total[s], late[s]) for s in Step if total[s]]


def _by_role(forms: Sequence[FormStatus]) -> list[tuple[str, int, int]]:
    total = Counter(f.waiting_on for f in forms)
    late = Counter(f.waiting_on for f in forms if f.late)
    return [(ROLE_NAMES[r], total[r], late[r]) for r in ROLE_KEYS if total[r]]


def _counts(
    ws: Worksheet,
    row: int,
    title: str,
    counts: list[tuple[str, int, int]],
    header: Format,
    cell: Format,
) -> int:
    ws.write_row(row, 0, (title, "张数", "其中逾期"), header)
    for name, total, late in counts or [("无", 0, 0)]:
        row += 1
        ws.write_row(row, 0, (name, total, late), cell)
    return row + 1


class StatusBoard:
    """Keeps ``outbox/状态看板.xlsx`` current; one per watcher or ``process`` run."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self.path = workspace.root / OUTBOX / BOARD_FILE
        # Left by a run that was killed while writing (one writer at a time: the workspace
        # lock), so none of them is being written now.
        for stale in self.path.parent.glob(f".{self.path.stem}.*.tmp.xlsx"):
            stale.unlink(missing_ok=True)

    def update(self, ledger: Ledger, *, now: dt.datetime) -> bool:
        """Rewrite the board; False when it could not be replaced now (a later pass will)."""
        config = self._workspace.config
        content = BoardContent(
            now=now,
            forms=tuple(open_forms(ledger, now=now, config=config)),
            warning=roster_warning(config, config_file=self._workspace.root / CONFIG_FILE),
            calendar=WorkCalendar(config),
        )
        # Hidden, and with our pid: never mistaken for the board, never clashing with a
        # second writer; removed if anything fails.
        temp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.tmp.xlsx")
        try:
            write_board_file(temp, content)
            os.replace(temp, self.path)
        except OSError as exc:
            log.warning("状态看板暂时无法更新(%s),稍后再写: %s", self.path.name, exc)
            temp.unlink(missing_ok=True)
            return False
        return True
