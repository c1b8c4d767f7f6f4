"""A monthly statistics table a department head signed, dropped in inbox/ (spec step 7).

The processor's ``check_other_document`` gate sends the bytes to the sandboxed worker
(:func:`statsread.examine`); for a 客服退单统计表 or 财务退单统计表 it gets the table back and
:func:`plan_signed_table` decides here:

- problems (编号 names no finished month with refunds, the wrong kind, 审批人 empty, labels,
  column headings or 合计 not as generated) send the file back to whoever compiles that table
  (客服部; the configured finance compiler) with a 退回原因 sheet naming each cell, exactly as
  a refund form is returned;
- a good table is filed under ``monthend.signed_dir`` (replacing an earlier signed one of the
  same month, which stays archived) and goes to 行政部 as it came; when the month's other table
  is already filed, the monthly workbook is made again with 核对 against the two signed tables.

Everything is recorded as one ledger event (``EventKind.TABLE_SIGNED``, ``form_no`` = the
table's 编号), and every file goes out through the plan's outputs: ``rebuild`` replays the
received archive and reproduces the outcome, delivering nothing again. The other signed table
is found through the ledger (its event's received archive copy), never through the folder, so
a replay sees the tables of its own past.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import sha256
from .calendar import Month
from .config import ROLE_NAMES
from .errors import Reason
from .layout import (
    STATS_AMOUNT_COLUMN,
    STATS_CELLS,
    STATS_FIRST_DATA_ROW,
    STATS_HEADER_ROW,
    STATS_LABELS,
    TOTAL_LABEL,
    rc_to_cell,
)
from .ledger import EventKind, NewEvent
from .monthend import (
    BOOK_NAME,
    CS_NAME,
    FINANCE_NAME,
    archive_dir,
    file_name,
    signed_dir,
)
from .plans import Intake, Outcome, Plan, Result
from .replies import RETURN_HEADER, returned_name
from .statsread import TableSheet, examine
from .xlsxpatch import Patch, apply_patch

if TYPE_CHECKING:
    from .processor import Processor

log = logging.getLogger(__name__)

_TABLE_NO = re.compile(r"(KFTJ|CWTJ)-(\d{4}-\d{1,2})")


@dataclass(frozen=True)
class TableProblem:
    """One row of the 退回原因 sheet of a returned table."""

    label: str  # the item as printed on the table
    cell: str  # where it is (or should be)
    reason: Reason
    message: str  # 错误: what is wrong
    fix: str  # 处理办法: how to put it right


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _kind_name(finance: bool) -> str:
    return FINANCE_NAME if finance else CS_NAME


def _month_of(table: TableSheet, processor: Processor, now: dt.datetime) -> Month | TableProblem:
    """The month the table's 编号 names, if it is one the ledger has refunds of and is over."""
    cell = STATS_CELLS["table_no"]
    label = STATS_LABELS["table_no"]
    typed = _text(table.header.get("table_no"))
    prefix = "CWTJ" if table.finance else "KFTJ"
    example = f"{prefix}-{Month.before(now.date()).label}"
    match = _TABLE_NO.fullmatch(typed.upper())
    month = None
    if match is not None:
        try:
            month = Month.parse(match[2])
        except ValueError:
            month = None
    if match is None or month is None:
        return TableProblem(
            label,
            cell,
            Reason.TABLE_MONTH,
            f"{label}({cell})是“{typed or '空'}”,看不出是哪个月的统计表",
            f"改回生成时的编号,如 {example};或用 refundflow 生成的该月统计表重新签字",
        )
    if match[1] != prefix:
        other = _kind_name(not table.finance)
        return TableProblem(
            label,
            cell,
            Reason.TABLE_MONTH,
            f"{label}({cell})“{typed}”是{other}的编号,本表是{table.name}",
            f"{table.name}的编号应为 {prefix}-{month.label};请用 refundflow 生成的{table.name}签字",
        )
    current = Month(now.year, now.month)
    if (month.year, month.month) >= (current.year, current.month):
        return TableProblem(
            label,
            cell,
            Reason.TABLE_MONTH,
            f"{label}({cell})是 {month.label} 的统计表,该月尚未结束,不能审批报送",
            f"月末之后用 refundflow 生成的 {month.label} 统计表签字报送",
        )
    if month.label not in processor.ledger.stats.months_with_forms():
        return TableProblem(
            label,
            cell,
            Reason.TABLE_MONTH,
            f"{label}({cell})是 {month.label} 的统计表,但账本中没有该月提交的退款单",
            f"核对月份:应报送的是 {Month.before(now.date()).label} 等有退款单的月份的统计表,"
            "请用 refundflow 生成的该月统计表签字",
        )
    return month


def _shape_problems(table: TableSheet) -> list[TableProblem]:
    """Labels, column headings and 合计 as the table was generated."""
    problems = [
        TableProblem(
            label,
            cell,
            Reason.TABLE_SHAPE,
            f"{cell} 应为“{label}”,表头被改动或移动了",
            "请用 refundflow 生成的统计表签字,不要插入、删除行列或改动表头",
        )
        for label, cell in table.labels_missing
    ]
    expected = table.expected_columns
    for i in range(max(len(expected), len(table.columns))):
        want = expected[i] if i < len(expected) else ""
        got = table.columns[i] if i < len(table.columns) else ""
        if want != got:
            cell = rc_to_cell(STATS_HEADER_ROW - 1, i)
            problems.append(
                TableProblem(
                    f"列标题“{want}”" if want else "列标题",
                    cell,
                    Reason.TABLE_SHAPE,
                    f"{cell} 的列标题是“{got or '空'}”,应为“{want or '空'}”",
                    f"把第 {STATS_HEADER_ROW} 行的列标题改回生成时的样子(依次为"
                    f"{'、'.join(expected)}),不要插入、删除或移动列",
                )
            )
    if table.total_row is None:
        problems.append(
            TableProblem(
                TOTAL_LABEL,
                "A列",
                Reason.TABLE_SHAPE,
                f"找不到“{TOTAL_LABEL}”行(A列最后一行退款记录下面)",
                f"请用 refundflow 生成的统计表签字,不要删除“{TOTAL_LABEL}”行",
            )
        )
    elif table.approver_cell is None:
        problems.append(
            TableProblem(
                STATS_LABELS["approver"],
                f"{TOTAL_LABEL}行下方",
                Reason.TABLE_SHAPE,
                f"{TOTAL_LABEL}行下方找不到“{STATS_LABELS['approver']}”",
                f"请用 refundflow 生成的统计表,由部门负责人在“{STATS_LABELS['approver']}”右侧签名",
            )
        )
    return problems


def _amount_problems(table: TableSheet) -> list[TableProblem]:
    """金额 cells that hold no amount at all (text, a date): 核对 could not compare them."""
    if STATS_AMOUNT_COLUMN not in table.columns:
        return []  # said by the column headings
    col = table.columns.index(STATS_AMOUNT_COLUMN)
    problems = []
    for i, row in enumerate(table.rows):
        value = row[col]
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            continue
        try:
            if Decimal(str(value).strip()).is_finite():
                continue
        except ArithmeticError:
            pass
        cell = rc_to_cell(STATS_FIRST_DATA_ROW - 1 + i, col)
        problems.append(
            TableProblem(
                STATS_AMOUNT_COLUMN,
                cell,
                Reason.BAD_AMOUNT,
                f"{STATS_AMOUNT_COLUMN}({cell})是“{_text(value)}”,不是金额",
                "填写数字金额(元),不要带单位或文字;不清楚时改回生成时的金额",
            )
        )
    return problems


def problems_of(
    table: TableSheet, processor: Processor, now: dt.datetime
) -> tuple[Month | None, list[TableProblem]]:
    """The table's month (when 编号 names a good one) and everything that sends it back."""
    found = _month_of(table, processor, now)
    problems = [] if isinstance(found, Month) else [found]
    problems += _shape_problems(table)
    problems += _amount_problems(table)
    label = STATS_LABELS["approver"]
    if table.approver_cell is not None and not _text(table.approver):
        cell = table.approver_cell
        problems.append(
            TableProblem(
                label,
                cell,
                Reason.TABLE_UNSIGNED,
                f"{label}({cell})为空:本表还没有经部门负责人审批",
                f"请部门负责人核对本表后在{label}({cell})处签名,再放入 inbox",
            )
        )
    return (found if isinstance(found, Month) else None), problems


def plan_signed_table(processor: Processor, intake: Intake, table: TableSheet) -> Plan:
    """What to do with a statistics table dropped in inbox/ (see the module docstring)."""
    month, problems = problems_of(table, processor, intake.now)
    if problems or month is None:
        return _plan_return(processor, intake, table, problems)
    return _plan_filing(processor, intake, table, month)


def _compiler(processor: Processor, table: TableSheet) -> str:
    """Whose folder a returned table goes to: who compiles (and had it signed)."""
    return processor.config.report_finance_compiler if table.finance else "cs"


def _plan_return(
    processor: Processor, intake: Intake, table: TableSheet, problems: list[TableProblem]
) -> Plan:

    to_role = _compiler(processor, table)
    rows = [(str(i), p.label, p.cell, p.message, p.fix) for i, p in enumerate(problems, 1)]
    which = _text(table.header.get("table_no")) or intake.name
    patched = apply_patch(
        intake.content,
        Patch(
            sheet=table.sheet,
            return_rows=[RETURN_HEADER, *rows],
            title=f"{table.name} {which} 退回原因(退回时间:{intake.now:%Y-%m-%d %H:%M})",
            highlight_cells=[p.cell for p in problems if re.fullmatch(r"[A-Z]+\d+", p.cell)],
        ),
    )
    deliverer = processor.deliverer
    earlier = deliverer.earlier_copies(None, intake.name, intake.sha, to_role)
    dest = _free(processor, processor.ws.outbox(to_role) / returned_name(intake.name), earlier)
    return Plan(
        NewEvent(
            intake.now,
            EventKind.RETURNED,
            intake.name,
            intake.sha,
            to_role=to_role,
            out_sha=sha256(patched),
            detail="\n".join(f"{p.label}:{p.message}" for p in problems),
        ),
        outputs=[(dest, patched)],
        result=Result(
            Outcome.RETURNED,
            intake.name,
            f"退回{ROLE_NAMES[to_role]}:{table.name} {len(problems)} 个问题",
            to_role=to_role,
        ),
        take_away=earlier,
    )


def _free(processor: Processor, dest: Path, earlier: list[tuple[Path, str]]) -> Path:
    """Where a file goes in a person's folder; while rebuilding, the name it went to then.

    A replay finds the files it delivered long ago in the folders: a free name would be
    "x (2).xlsx", which is not where the file went.
    """
    if not processor.deliverer.enabled:
        return dest
    return processor.deliverer.free_name(dest, reusing=earlier)


def _filed(processor: Processor, number: str) -> list[tuple[int, str, str]]:
    """Each filing of the table with 编号 ``number``: (event id, received archive, approver)."""
    out = []
    for event in processor.ledger.events(number):
        if event.kind != EventKind.TABLE_SIGNED:
            continue
        for receipt in processor.ledger.receipts_for(event.file_sha):
            if receipt.event_id == event.id:
                out.append((event.id, receipt.archive, event.actor or ""))
    return out


def _earlier_deliveries(processor: Processor, numbers: tuple[str, ...]) -> list[tuple[Path, str]]:
    """Our earlier filings' files (signed tables, workbooks), where they were delivered."""
    copies = []
    for number in numbers:
        for event in processor.ledger.events(number):
            if event.kind != EventKind.TABLE_SIGNED:
                continue
            for receipt in processor.ledger.receipts_for(event.file_sha):
                if receipt.event_id == event.id:
                    copies += [
                        (Path(d.dest), d.sha) for d in processor.ledger.deliveries(receipt.id)
                    ]
    return copies


def _plan_filing(processor: Processor, intake: Intake, table: TableSheet, month: Month) -> Plan:
    from .statsbook import table_no  # loads pandas: only when a table is filed

    ws, now = processor.ws, intake.now
    mine, theirs = (
        table_no(month, finance=table.finance),
        table_no(month, finance=not table.finance),
    )
    name, book = file_name(table.name, month), file_name(BOOK_NAME, month)
    approver = _text(table.approver)
    admin, filed = ws.outbox("admin"), signed_dir(ws, month)
    detail = f"{table.name} {month.label},审批人:{approver}"
    message = f"{table.name} {month.label}(审批人 {approver})→ 行政部"
    book_data: bytes | None = None
    other = _filed(processor, theirs)
    kept = ws.sheets / other[-1][1] if other else None
    if kept is not None and not kept.is_file():
        # The archive lost it (someone deleted it): the table is filed all the same; the
        # workbook is made again when the other table is dropped again.
        log.warning("%s:存档副本 %s 不见了", theirs, kept)
    elif kept is not None:
        other_table = processor.pool.run(examine, kept.read_bytes())
        if other_table is not None:
            book_data, issues = _workbook(processor, month, now, table, other_table)
            found = f"核对问题 {issues} 处" if issues else "核对无误"
            detail += f"\n两张统计表均已审批,已重新生成{BOOK_NAME}({found})"
            message += f";已按两张已审批的统计表重新生成{BOOK_NAME}({found})"
    else:
        message += f";待{_kind_name(not table.finance)}审批后生成{BOOK_NAME}"
    # What this filing replaces: the earlier signed copy of this table and, when it is made
    # again, the workbook (by `report` / the watcher, or by an earlier filing). Each goes,
    # archived first when someone changed it; the SENT archive keeps ours.
    replaced = {admin / name, filed / name}
    if book_data is not None:
        replaced |= {admin / book, filed / book}
    earlier = [
        (path, sha)
        for path, sha in _earlier_deliveries(processor, (mine, theirs))
        if path in replaced and path.is_file()
    ]
    # Files there that no filing of ours delivered (the workbook `report` made, a copy put
    # there by hand) go too; one that is not the generated workbook is archived first.
    generated = archive_dir(ws, month) / book
    made = sha256(generated.read_bytes()) if generated.is_file() else ""
    ours = {path for path, _ in earlier}
    for path in sorted(replaced - ours):
        if path.is_file():
            earlier.append((path, made if path == admin / book else ""))
    outputs = [
        (_free(processor, admin / name, earlier), intake.content),
        (filed / name, intake.content),
    ]
    if book_data is not None:
        outputs += [(_free(processor, admin / book, earlier), book_data), (filed / book, book_data)]
    log.info("已归档签字的%s(%s,审批人 %s)", table.name, month.label, approver)
    return Plan(
        NewEvent(
            now,
            EventKind.TABLE_SIGNED,
            intake.name,
            intake.sha,
            form_no=mine,
            to_role="admin",
            actor=approver,
            detail=detail,
        ),
        outputs=outputs,
        result=Result(Outcome.ROUTED, intake.name, message, to_role="admin"),
        take_away=earlier,
    )


def _workbook(
    processor: Processor, month: Month, now: dt.datetime, table: TableSheet, other: TableSheet
) -> tuple[bytes, int]:
    """The monthly workbook made again, its two tables and 核对 those signed: bytes, issues."""
    import pandas as pd

    from .monthly import Tables, write_monthly
    from .reports import collect, cs_table, finance_table, readback, reconcile

    cs, finance = (other, table) if table.finance else (table, other)
    data = collect(processor.ledger, month, as_of=now, config=processor.config)
    frames = []
    shown = []
    for signed, name, expected in (
        (cs, CS_NAME, cs_table(data)),
        (finance, FINANCE_NAME, finance_table(data)),
    ):
        back = readback(signed)
        frames.append(reconcile(back.rows, back.total, name=name, expected=expected))
        rows = back.rows.copy()
        if "序号" in rows.columns:  # read back as 1.0, 2.0 …: shown as printed
            rows["序号"] = [
                int(v) if isinstance(v, float) and v.is_integer() else v for v in rows["序号"]
            ]
        shown.append(rows)
    issues = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    skipped = data.skipped.assign(表="账本", 表中="", 账本中="")
    issues = pd.concat([issues, skipped[issues.columns]], ignore_index=True)
    tables = Tables(
        shown[0],
        shown[1],
        issues,
        signed=True,
        approvers=(_text(cs.approver), _text(finance.approver)),
    )
    with tempfile.TemporaryDirectory(prefix="refundflow-book-") as scratch:
        path = Path(scratch) / file_name(BOOK_NAME, month)
        write_monthly(path, data, tables, mask=processor.config.report_mask_mobile)
        return path.read_bytes(), len(issues)
