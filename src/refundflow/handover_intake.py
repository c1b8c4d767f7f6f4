"""A filled shift handover sheet (客服部值班交接单) dropped in ``inbox/``: read, checked, routed.

The sandboxed worker tells a handover sheet from a refund form and reads its items
(:mod:`handoverread`, called by :func:`examine.examine`): the parent never opens the untrusted
zip to read it, and openpyxl is not needed.

:func:`plan` then checks the items by the rules of :mod:`handover_check`:

* accepted: a copy goes to ``outbox/cs/`` for the next shift, named by its date and shift
  (``客服部值班交接单-2026-11-23-白班-已交接.xlsx``), and one is filed under
  ``refundsheets/交接单/YYYY-MM/``; a 退回原因 sheet left from an earlier return is removed;
* rules broken: it comes back to ``outbox/cs/`` with a 退回原因 sheet listing each problem (item,
  cell, what is wrong, how to fix it) and the items' cells highlighted, as refund forms do;
* a sheet whose items are not where the current template has them (an old or a home-made
  layout) is answered in ``outbox/rejected/``, naming what could not be found.

Every outcome is an event of the ledger (:data:`EventKind.HANDOVER_ACCEPTED` /
:data:`EventKind.HANDOVER_RETURNED`, no form number) with its receipt, like any dropped file,
so ``rebuild`` replays it to the same outcome and delivers nothing again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import layout, replies
from .archive import free_names, safe_name, sha256
from .errors import Reason
from .handover_check import HandoverProblem, check_handover
from .handoverread import HandoverReading
from .inboxfile import sha256_of
from .ledger import EventKind, Ledger, NewEvent
from .plans import Intake, Outcome, Plan, Result
from .replies import RETURN_HEADER
from .xlsxpatch import Patch, apply_patch

if TYPE_CHECKING:
    from .processor import Processor

FILED = "交接单"  # refundsheets/交接单/YYYY-MM/: every accepted sheet
ACCEPTED_SUFFIX = "已交接"
TEMPLATE_HINT = (
    f"请用 outbox/cs/ 中系统生成的{layout.HANDOVER_SHEET}"
    f"(或 templates/{layout.HANDOVER_TEMPLATE_FILE})填写后重新放入 inbox 文件夹"
)


# ---- the parent side: what happens to the sheet ------------------------------------------------


def sheet_day(values: dict[str, str], now: dt.datetime) -> dt.date:
    """The day the sheet is for (its 填表时间), or today when that is not a date."""
    try:
        return dt.date.fromisoformat(values.get("filled_on", "")[:10])
    except ValueError:
        return now.date()


def accepted_name(values: dict[str, str], now: dt.datetime) -> str:
    """What staff see in outbox/cs/: the sheet, its day and its shift, handed over."""
    shift = values.get("shift", "").strip()
    day = sheet_day(values, now)
    return safe_name(f"{layout.HANDOVER_SHEET}-{day:%Y-%m-%d}-{shift}-{ACCEPTED_SUFFIX}.xlsx")


def return_title(values: dict[str, str], at: dt.datetime) -> str:
    """The 退回原因 sheet's first row: which sheet (its day and shift), and when it came back."""
    which = [layout.HANDOVER_SHEET, values.get("filled_on", ""), values.get("shift", "")]
    return f"{' '.join(w for w in which if w)} 退回原因(退回时间:{at:%Y-%m-%d %H:%M})"


def layout_unknown(not_found: Sequence[str]) -> tuple[str, str]:
    """Why a sheet of an old or home-made layout is not read, and what to do."""
    shown = "".join(f"“{label}”" for label in not_found[:6])
    more = "等" if len(not_found) > 6 else ""
    return (
        f"这是{layout.HANDOVER_SHEET},但不是当前模板的格式:找不到{shown}{more}栏目"
        "(旧版或自制的表格无法核对)",
        TEMPLATE_HINT,
    )


def plan(processor: Processor, intake: Intake, reading: HandoverReading) -> Plan:
    """Check the sheet and plan its answer: to the next shift, or back with its problems."""
    if reading.not_found:
        what, hint = layout_unknown(reading.not_found)
        return processor.reject(intake, what, hint, Reason.OLD_TEMPLATE)
    problems = check_handover(reading.values, ledger=processor.ledger, config=processor.config)
    if problems:
        return _plan_return(processor, intake, reading, problems)
    return _plan_accept(processor, intake, reading)


def _plan_accept(processor: Processor, intake: Intake, reading: HandoverReading) -> Plan:

    values, now = reading.values, intake.now
    # Only a 退回原因 sheet and our highlights left from an earlier return are taken out.
    copy = apply_patch(intake.content, Patch(sheet=reading.sheet))
    name = accepted_name(values, now)
    earlier = _left_in_folder(processor, intake)
    dest = processor.deliverer.free_name(processor.ws.outbox("cs") / name, reusing=earlier)
    month = f"{sheet_day(values, now):%Y-%m}"
    filed = next(free_names(processor.ws.sheets / FILED / month / name))
    day, shift = values.get("filled_on", ""), values.get("shift", "")
    handed, taken = values.get("handed_by", ""), values.get("taken_by", "")
    detail = f"{day} {shift} 交接人 {handed} → 接交人 {taken}"
    return Plan(
        NewEvent(
            now,
            EventKind.HANDOVER_ACCEPTED,
            intake.name,
            intake.sha,
            from_role="cs",
            to_role="cs",
            actor=values.get("handed_by") or None,
            out_sha=sha256(copy),
            detail=detail,
        ),
        outputs=[(dest, copy), (filed, copy)],
        result=Result(
            Outcome.ROUTED,
            intake.name,
            f"{layout.HANDOVER_SHEET}({day} {shift})已核对 → 客服部(接班人员)",
            to_role="cs",
        ),
        take_away=earlier,
    )


def _left_in_folder(processor: Processor, intake: Intake) -> list[tuple[Path, str]]:
    """The sheet as dropped, if the sender filled it in ``outbox/cs/`` and copied it into
    ``inbox/``: it goes once the sheet is answered, so the folder stays a to-do list.

    Only the very same bytes (hashed, never opened): any other file of that name is left.
    """
    left = processor.ws.outbox("cs") / intake.name
    if left.is_file() and not left.is_symlink() and sha256_of(left) == intake.sha:
        return [(left, intake.sha)]
    return []


def _plan_return(
    processor: Processor,
    intake: Intake,
    reading: HandoverReading,
    problems: list[HandoverProblem],
) -> Plan:

    now = intake.now
    rows = [
        (str(i), p.item, reading.cells.get(p.name, ""), p.message, p.hint)
        for i, p in enumerate(problems, 1)
    ]
    marked = list(dict.fromkeys(reading.cells[p.name] for p in problems if p.name in reading.cells))
    copy = apply_patch(
        intake.content,
        Patch(
            sheet=reading.sheet,
            return_rows=[RETURN_HEADER, *rows],
            title=return_title(reading.values, now),
            highlight_cells=marked,
        ),
    )
    earlier = _left_in_folder(processor, intake)
    dest = processor.deliverer.free_name(
        processor.ws.outbox("cs") / replies.returned_name(intake.name), reusing=earlier
    )
    return Plan(
        NewEvent(
            now,
            EventKind.HANDOVER_RETURNED,
            intake.name,
            intake.sha,
            to_role="cs",
            out_sha=sha256(copy),
            detail="\n".join(f"{p.item}:{p.message}" for p in problems),
        ),
        outputs=[(dest, copy)],
        result=Result(
            Outcome.RETURNED,
            intake.name,
            f"{layout.HANDOVER_SHEET}退回客服部:{len(problems)} 个问题",
            to_role="cs",
        ),
        take_away=earlier,
    )


# ---- what `status` says of the day's sheets -----------------------------------------------------


@dataclass(frozen=True)
class HandoverReceived:
    """A handover sheet received (and answered) on the day `status` looks at."""

    at: dt.datetime
    file_name: str
    accepted: bool
    dest: str | None  # where the person finds the answer (outbox/cs/…)
    detail: str | None  # accepted: day, shift and people; returned: each problem


def handovers_received(ledger: Ledger, day: dt.date) -> list[HandoverReceived]:
    """The handover sheets received on ``day``, in order, with the copy each was answered by
    (its copy in ``outbox/cs/``: the filed copy is delivered second)."""
    start = dt.datetime.combine(day, dt.time())
    kinds = (EventKind.HANDOVER_ACCEPTED, EventKind.HANDOVER_RETURNED)
    return [
        HandoverReceived(a.at, a.file_name, a.kind == EventKind.HANDOVER_ACCEPTED, a.dest, a.detail)
        for a in ledger.answered_between(kinds, start, start + dt.timedelta(days=1))
    ]
