"""The shift handover sheet (客服部值班交接单, spec §4 and §2 step 8), prefilled from the ledger.

For one shift it writes, into the committed template: 填表时间, 班次; 完成工作明细 (what
customer service moved during the shift); 需其他人员跟进交接明细 (every form open at the
end of the shift that waits on customer service or is overdue, with what the next person must
do); and the three 退款单统计 rows for the shift's day. An item with nothing in it says 无.
Attendance, cleaning and the signatures are left for people to fill.

The state at the end of the shift is rebuilt from the events, so a sheet written later for a
past shift says what was true then.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl

from . import layout
from .archive import free_names
from .breaches import rule_text, spans, step_at
from .calendar import WorkCalendar
from .config import ROLE_NAMES, Config, Shift
from .errors import Reason, RefundflowError
from .ledger import EventKind, EventRow, FormRow, Ledger
from .routing import STEP_NAMES, WAITING_ON, Stamp, Step
from .templates import HANDOVER_WIDTHS, write_handover_template
from .workspace import Workspace

log = logging.getLogger(__name__)

NOTHING = "无"  # rule a): every item is filled; 无 where there is nothing

# What customer service did when it moved a form on from this step.
DONE_ACTIONS: dict[Step, str] = {
    Step.NEW: "填写退款单,提交技术部",
    Step.TECH_VERIFIED: "提交财务",
    Step.TECH_REFUSED: "已将技术部意见反馈用户,交行政部",
    Step.REFUNDED: "已通知用户退款完成,交行政部",
    Step.FINANCE_RETURNED: "已将财务退回原因反馈用户,交行政部",
}
# What the next person must do for a form at this step (rule c).
NEXT_ACTIONS: dict[Step, str] = {
    Step.AT_TECH: "跟进技术部核实进度",
    Step.TECH_VERIFIED: "值班负责人将退款单提交财务",
    Step.TECH_REFUSED: "将技术部不同意退款的意见反馈用户,再把退款单放入收件箱",
    Step.AT_CASHIER: "跟进财务部出纳初核进度",
    Step.AT_ACCOUNTANT: "跟进财务部会计复核进度",
    Step.AT_DIRECTOR: "跟进财务总监审批进度",
    Step.AT_PRESIDENT: "跟进总裁审批进度",
    Step.REFUNDED: "通知用户退款已完成,再把退款单放入收件箱",
    Step.FINANCE_RETURNED: "将财务退回原因反馈用户,再把退款单放入收件箱",
    Step.AT_ADMIN: "跟进行政部跟踪归档",
}


@dataclass(frozen=True)
class ShiftWindow:
    shift: Shift
    day: dt.date  # the day the shift starts (the sheet's 填表时间)
    start: dt.datetime
    end: dt.datetime

    @property
    def key(self) -> str:
        return f"{self.day:%Y%m%d}-{self.shift.name}"


def shift_window(shift: Shift, day: dt.date) -> ShiftWindow:
    start = dt.datetime.combine(day, shift.start)
    end = dt.datetime.combine(day, shift.end)
    if end <= start:  # a night shift ends the next morning
        end += dt.timedelta(days=1)
    return ShiftWindow(shift, day, start, end)


def current_shift(config: Config, now: dt.datetime) -> ShiftWindow:
    """The shift running at ``now``; between shifts, the one that ended last."""
    windows = [
        shift_window(shift, now.date() + dt.timedelta(days=back))
        for back in (-1, 0)
        for shift in config.shifts
    ]
    running = [w for w in windows if w.start <= now < w.end]
    if running:
        return max(running, key=lambda w: w.start)
    return max((w for w in windows if w.end <= now), key=lambda w: w.end)


def find_shift(config: Config, name: str) -> Shift | None:
    return next((s for s in config.shifts if s.name == name), None)


@dataclass(frozen=True)
class HandoverContent:
    """The prefilled items, keyed by the handover sheet's defined names."""

    window: ShiftWindow
    items: dict[str, str]


def _numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1)) or NOTHING


def _facts(row: FormRow) -> str:
    """文件编号, 手机号, 金额, 银行: what every line about a form names (spec §4)."""
    snap = row.snapshot
    return (
        f"{row.form_no},手机号 {snap.get('mobile') or '-'},"
        f"金额 {row.amount or '-'},银行 {snap.get('bank') or '-'}"
    )


def _moves(events: Sequence[EventRow], start: dt.datetime, end: dt.datetime) -> list[EventRow]:
    return [e for e in events if e.kind == EventKind.ACCEPTED and e.to_step and start <= e.at < end]


def _follow_up(
    row: FormRow, events: Sequence[EventRow], at: dt.datetime, config: Config, cal: WorkCalendar
) -> str | None:
    step = step_at(events, at)
    if step is None or step is Step.CLOSED:
        return None
    running = [
        s
        for s in spans(row, events, config=config, calendar=cal)
        if s.started <= at and (s.done_at is None or s.done_at > at)
    ]
    overdue = [s for s in running if s.due <= at]
    if WAITING_ON[step] != "cs" and not overdue:
        return None
    line = (
        f"{row.form_no}:故障现象 {row.snapshot.get('fault') or '-'};"
        f"目前环节:{STEP_NAMES[step]}(等待{ROLE_NAMES.get(WAITING_ON[step] or '', '')});"
        f"下一步:{NEXT_ACTIONS.get(step, '-')}"
    )
    if running:
        first = min(running, key=lambda s: s.due)
        line += f",期限 {first.due:%Y-%m-%d %H:%M}"
    mobile = row.snapshot.get("mobile") or "-"
    line += (
        f";客户联系方式 {mobile};故障手机号 {mobile};"
        f"金额 {row.amount or '-'};银行 {row.snapshot.get('bank') or '-'}"
    )
    if overdue:
        line += ";已逾期:" + "、".join(rule_text(s.kind, config) for s in overdue)
    return line


def handover_content(
    ledger: Ledger, config: Config, window: ShiftWindow, *, now: dt.datetime
) -> HandoverContent:
    """Everything the ledger knows for this shift's sheet, as of the shift's end (or now)."""
    at = min(now, window.end)
    day_start = dt.datetime.combine(window.day, dt.time())
    day_end = min(day_start + dt.timedelta(days=1), at + dt.timedelta(seconds=1))
    cal = WorkCalendar(config)
    done: list[tuple[dt.datetime, str]] = []
    follow: list[tuple[dt.datetime, str]] = []
    processed: list[tuple[dt.datetime, str]] = []
    submitted: list[tuple[dt.datetime, str]] = []
    returned: list[tuple[dt.datetime, str]] = []
    # Forms closed before the day began cannot be in any item.
    for row in ledger.forms_active_since(min(window.start, day_start)):
        if row.created_at > at:
            continue
        events = ledger.events(row.form_no)
        for e in _moves(events, window.start, min(window.end, at + dt.timedelta(seconds=1))):
            if e.from_role == "cs" and e.from_step:
                action = DONE_ACTIONS.get(Step(e.from_step), STEP_NAMES[Step(e.to_step or "")])
                done.append((e.at, f"{_facts(row)}:{action}({e.at:%H:%M})"))
        line = _follow_up(row, events, at, config, cal)
        if line:
            follow.append((row.step_since, line))
        for e in _moves(events, day_start, day_end):
            if e.to_step == Step.REFUNDED:
                who = f"{ROLE_NAMES.get(e.from_role or '', '')} {e.actor or ''}".strip()
                processed.append((e.at, f"{_facts(row)},处理结果:已退款({who} {e.at:%H:%M})"))
            if e.stamp == Stamp.FINANCE:
                now_at = STEP_NAMES[step_at(events, at) or Step.AT_CASHIER]
                submitted.append((e.at, f"{_facts(row)},{e.at:%H:%M} 提交,目前:{now_at}"))
            if e.to_step == Step.FINANCE_RETURNED:
                reason = (e.detail or "").splitlines()[0] if e.detail else ""
                reason = reason.removeprefix("财务退回:") or "-"
                returned.append((e.at, f"{_facts(row)},退回原因:{reason}"))

    def ordered(entries: list[tuple[dt.datetime, str]]) -> str:
        return _numbered([text for _, text in sorted(entries, key=lambda x: x[0])])

    items = {
        "work_done": ordered(done),
        "follow_ups": ordered(follow),
        "fin_processed": ordered(processed),
        "fin_submitted": ordered(submitted),
        "fin_returned": ordered(returned),
    }
    return HandoverContent(window, items)


def _text_width(text: str) -> float:
    """Column-width units the text takes: a CJK character is about two digits wide, and a
    little more (rounded up generously, since a clipped line is lost on paper)."""
    return sum(2.2 if ord(c) > 0x2E80 else 1.2 for c in text)


def _row_height(text: str, *, width: float, minimum: float) -> float:
    """Points for wrapped text in a merged cell (spreadsheet programs do not autofit those)."""
    lines = sum(max(1, math.ceil(_text_width(line) / width)) for line in text.splitlines())
    return max(minimum, 15.0 * lines + 8)


def handover_file_name(window: ShiftWindow) -> str:
    return f"{layout.HANDOVER_SHEET}-{window.day:%Y%m%d}-{window.shift.name}.xlsx"


def input_cell(wb: Any, name: str) -> str:
    """Where the template's defined name ``name`` points: a site that inserted a row in Excel
    moved the names with the cells. The layout's cell when the name is missing."""
    defined = wb.defined_names.get(name)
    for sheet, ref in defined.destinations if defined is not None else ():
        if sheet == layout.HANDOVER_SHEET:
            return str(ref).replace("$", "").split(":")[0]
    return layout.HANDOVER_CELLS[name]


def write_handover_file(template: Path, dest: Path, content: HandoverContent) -> None:
    """Fill the template's input cells (by their defined names) and save it to ``dest``."""
    wb = openpyxl.load_workbook(template)
    ws = wb[layout.HANDOVER_SHEET]
    ws[input_cell(wb, "filled_on")].value = content.window.day
    ws[input_cell(wb, "shift")].value = content.window.shift.name
    for name, text in content.items.items():
        cell = ws[input_cell(wb, name)]
        cell.value = text
        width = sum(HANDOVER_WIDTHS[cell.column - 1 :])  # the long items run to the last column
        current = ws.row_dimensions[cell.row].height or 21
        ws.row_dimensions[cell.row].height = _row_height(text, width=width, minimum=current)
    wb.save(dest)


class HandoverWriter:
    """Writes handover sheets into ``outbox/<cs>/``; remembers which shifts it wrote."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._written: set[str] = set()

    def _template(self, scratch: Path) -> Path:
        committed = self._workspace.templates / layout.HANDOVER_TEMPLATE_FILE
        if committed.is_file():
            return committed
        # A workspace whose templates/ was never filled: make one just for this sheet.
        made = scratch / layout.HANDOVER_TEMPLATE_FILE
        write_handover_template(made, self._workspace.config)
        return made

    def write(self, ledger: Ledger, window: ShiftWindow, *, now: dt.datetime) -> Path:
        """Write the sheet under a free name (an earlier one, maybe being filled, is kept)."""
        content = handover_content(ledger, self._workspace.config, window, now=now)
        folder = self._workspace.outbox("cs")
        dest = next(free_names(folder / handover_file_name(window)))
        # Written aside in refundsheets/ (same disk), never half-written in a person's folder.
        with tempfile.TemporaryDirectory(
            dir=self._workspace.sheets, prefix=".handover-"
        ) as scratch:
            temp = Path(scratch) / "sheet.xlsx"
            template = self._template(Path(scratch))
            try:
                write_handover_file(template, temp, content)
            except OSError:
                raise  # the disk or a folder: said as a storage problem by the caller
            except Exception as exc:  # a template a site changed or replaced beyond use
                shown = template.relative_to(self._workspace.root)
                raise RefundflowError(
                    f"值班交接单模板 {shown} 无法填写({type(exc).__name__}: {exc})",
                    reason=Reason.OLD_TEMPLATE,
                    hint="用 refundflow templates 重新生成模板(先备份改过的模板),"
                    f"或检查其中的“{layout.HANDOVER_SHEET}”工作表和各项的名称",
                ) from exc
            os.replace(temp, dest)
        self._written.add(window.key)
        return dest

    def due(self, now: dt.datetime) -> ShiftWindow | None:
        """The running shift when it ends within ``before_end_minutes`` and has no sheet yet."""
        config = self._workspace.config
        if not config.handover_auto:
            return None
        window = current_shift(config, now)
        lead = dt.timedelta(minutes=config.handover_before_end_minutes)
        if not (window.start <= now < window.end and now >= window.end - lead):
            return None
        if window.key in self._written:
            return None
        if (self._workspace.outbox("cs") / handover_file_name(window)).exists():
            self._written.add(window.key)  # written before a restart, or by the command
            return None
        return window

    def write_due(self, ledger: Ledger, *, now: dt.datetime) -> Path | None:
        """What the watcher calls periodically: the sheet of a shift about to end, once."""
        window = self.due(now)
        if window is None:
            return None
        try:
            path = self.write(ledger, window, now=now)
        except RefundflowError as exc:
            # Said once for this shift, not at every pass until it ends.
            self._written.add(window.key)
            log.error("值班交接单未能生成:%s(%s)", exc.message, exc.hint)
            return None
        log.info("值班交接单已生成: %s", path)
        return path
