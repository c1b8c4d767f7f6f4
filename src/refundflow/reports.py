"""The data of the monthly statistics (spec step 7), as pandas DataFrames, from the ledger.

One row per refund whose 提交日期 falls in the month, with every field and stamped hand-off
time; every step each form sat at, with its limit (routing.step_deadline's rules) and whether
it went over; the rows of both statistics tables; and the reconciliation (核对) of a table —
generated, or read back from a file people signed — against the ledger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from . import layout
from .calendar import Month, WorkCalendar
from .config import ROLE_NAMES, Config
from .errors import FormReadError
from .layout import rc_to_cell
from .ledger import EventRow, FormRow, Ledger
from .routing import (
    FINANCE_STEPS,
    STAMP_LABELS,
    STEP_NAMES,
    WAITING_ON,
    Stamp,
    Step,
    step_deadline,
)
from .statsread import TableSheet, examine

# The stamp columns, named as the tables name them (the ledger stores the codes).
STAMPS = tuple(STAMP_LABELS.values())
FINANCE_SUBMITTED = STAMP_LABELS[Stamp.FINANCE]
FINANCE_FEEDBACK = STAMP_LABELS[Stamp.FINANCE_FEEDBACK]

# What each step is called in 超时 / 人员 / 汇总: the work done there, not the waiting.
STEP_WORK: dict[Step, str] = {
    Step.NEW: "填写退款单",
    Step.AT_TECH: "技术部核实",
    Step.TECH_VERIFIED: "值班负责人提交财务",
    Step.TECH_REFUSED: "反馈用户(技术部不同意)",
    Step.AT_CASHIER: "出纳初核",
    Step.AT_ACCOUNTANT: "会计复核",
    Step.AT_DIRECTOR: "财务总监审批",
    Step.AT_PRESIDENT: "总裁审批",
    Step.REFUNDED: "反馈用户(已退款)",
    Step.FINANCE_RETURNED: "反馈用户(财务退回)",
    Step.AT_ADMIN: "行政部跟踪归档",
}
FINANCE_CHECKS: dict[str, Step] = {
    "出纳核实": Step.AT_CASHIER,
    "会计复核": Step.AT_ACCOUNTANT,
    "财务总监审核": Step.AT_DIRECTOR,
}

REFUNDED = "已退款"
RETURNED = "财务退回"
TECH_REFUSED = "技术部不同意"
OPEN = "未办结"


@dataclass(frozen=True)
class MonthData:
    """Everything the month's tables and workbook are made of."""

    month: Month
    as_of: dt.datetime  # when the report was made: open steps are measured up to here
    refunds: pd.DataFrame  # one row per refund (明细), in 提交日期 order
    steps: pd.DataFrame  # one row per step a form sat at, with its limit and duration
    skipped: pd.DataFrame  # forms that skipped a required step (退单编号, 问题)


def _when(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def mask_mobile(number: object) -> object:
    """``13800138000`` -> ``138****8000``; anything else unchanged."""
    if isinstance(number, str) and len(number) == 11 and number.isdigit():
        return f"{number[:3]}****{number[7:]}"
    return number


def _outcome(events: list[EventRow]) -> str:
    reached = {e.to_step for e in events}
    if Step.REFUNDED in reached:
        return REFUNDED
    if Step.FINANCE_RETURNED in reached:
        return RETURNED
    if Step.TECH_REFUSED in reached:
        return TECH_REFUSED
    return OPEN


def _remark(form: FormRow, events: list[EventRow], outcome: str) -> str:
    notes = []
    if outcome == RETURNED:
        reason = next(
            (e.detail for e in reversed(events) if e.to_step == Step.FINANCE_RETURNED), None
        )
        notes.append(reason.split("\n")[0] if reason else RETURNED)
    elif outcome == TECH_REFUSED:
        notes.append("技术部不同意退款")
    else:
        # Returned by finance, then resubmitted: the row shows the latest cycle's times and
        # says the earlier return here.
        for e in events:
            if e.to_step == Step.FINANCE_RETURNED and e.detail:
                notes.append(f"曾{e.detail.split(chr(10))[0]},已重新提交财务")
    if form.closed_at is None:
        notes.append(f"未办结,当前环节:{STEP_NAMES[Step(form.step)]}")
    return ";".join(notes)


def _refund_row(form: FormRow, events: list[EventRow]) -> dict[str, Any]:
    snap = form.snapshot
    stamps: dict[str, dt.datetime] = {}
    for e in events:
        if e.stamp:
            stamps[e.stamp] = e.at  # a later cycle's stamp replaces an earlier one
    checks: dict[Step, EventRow] = {}
    for e in events:
        if e.from_step:
            checks[Step(e.from_step)] = e
    outcome = _outcome(events)
    submitted = _when(snap.get("submitted_at")) or form.reported_at or form.created_at
    row: dict[str, Any] = {
        "提交日期": submitted,
        "退单编号": form.form_no,
        "订单号": form.order_no,
        "联系方式": snap.get("mobile", ""),
        "开户行": snap.get("bank", ""),
        "金额": float(Decimal(form.amount)) if form.amount else 0.0,
        "提交人": snap.get("submitter", ""),
        "故障现象": snap.get("fault", ""),
        "上报时间": form.reported_at,
        "购买时间": _when(snap.get("purchase_time")),
        "客户意见": snap.get("customer_request", ""),
        "问题处理部门": snap.get("handling_dept", ""),
        "结果": outcome,
        "当前环节": STEP_NAMES[Step(form.step)],
        "办结时间": form.closed_at,
    }
    for code, label in STAMP_LABELS.items():
        row[label] = stamps.get(code)
    for column, step in (*FINANCE_CHECKS.items(), ("总裁审批", Step.AT_PRESIDENT)):
        event = checks.get(step)
        row[f"{column}人"] = event.actor if event else None
        row[f"{column}时间"] = event.at if event else None
    row["备注"] = _remark(form, events, outcome)
    return row


def _steps_of(
    form: FormRow, events: list[EventRow], *, as_of: dt.datetime, config: Config, cal: WorkCalendar
) -> list[dict[str, Any]]:
    """Every step the form sat at: entered, left (or still there at ``as_of``), limit, over."""
    out: list[dict[str, Any]] = []
    reported = form.reported_at
    if reported is not None and events:
        limit = dt.timedelta(minutes=config.limits.fill_minutes)
        out.append(
            _step_row(
                form, Step.NEW, reported, events[0].at, reported + limit,
                f"上报后{config.limits.fill_minutes}分钟内填好并提交", events[0].actor, as_of,
            )
        )  # fmt: skip
    finance_since: dt.datetime | None = None
    for i, entered in enumerate(events):
        if not entered.to_step:
            continue
        step = Step(entered.to_step)
        if entered.stamp == Stamp.FINANCE:
            finance_since = entered.at
        if step is Step.CLOSED:
            continue
        left = events[i + 1] if i + 1 < len(events) else None
        deadline = step_deadline(
            step,
            step_since=entered.at,
            reported_at=reported,
            finance_since=finance_since if step in FINANCE_STEPS else None,
            config=config,
            calendar=cal,
        )
        out.append(
            _step_row(
                form, step, entered.at, left.at if left else None, deadline.due, deadline.rule,
                left.actor if left else None, as_of,
            )
        )  # fmt: skip
    return out


def _step_row(
    form: FormRow,
    step: Step,
    start: dt.datetime,
    end: dt.datetime | None,
    due: dt.datetime | None,
    rule: str,
    actor: str | None,
    as_of: dt.datetime,
) -> dict[str, Any]:
    until = end or as_of
    role = WAITING_ON[step]
    return {
        "退单编号": form.form_no,
        "环节": STEP_WORK[step],
        "step": step.value,
        "等待": ROLE_NAMES.get(role or "", ""),
        "role": role,
        "经办人": actor,
        "开始": start,
        "结束": end,
        "期限": due,
        "时限": rule,
        "用时(小时)": round((until - start).total_seconds() / 3600, 2),
        "超时": due is not None and until > due,
        "仍未完成": end is None,
    }


def _skipped(form: FormRow, events: list[EventRow], config: Config) -> list[str]:
    """Required steps a form went past without: the route the procedure prescribes."""
    left = {Step(e.from_step) for e in events if e.from_step}
    stamps = {e.stamp for e in events if e.stamp}
    reached = {Step(e.to_step) for e in events if e.to_step}
    missing: list[str] = []
    if events and Stamp.TECH not in stamps:
        missing.append(STAMP_LABELS[Stamp.TECH])
    if Step.REFUNDED in reached:
        required = [Step.AT_TECH, Step.TECH_VERIFIED, *FINANCE_STEPS[:3]]
        amount = Decimal(form.amount) if form.amount else None
        if amount is not None and amount >= config.president_threshold:
            required.append(Step.AT_PRESIDENT)
        missing += [STEP_WORK[s] for s in required if s not in left]
        if Stamp.FINANCE not in stamps:
            missing.append(STAMP_LABELS[Stamp.FINANCE])
    if (Step.AT_ADMIN in reached or Step.CLOSED in reached) and Stamp.CUSTOMER not in stamps:
        missing.append(STAMP_LABELS[Stamp.CUSTOMER])
    return missing


REFUND_COLUMNS = (
    "提交日期", "退单编号", "订单号", "联系方式", "开户行", "金额", "提交人", "故障现象",
    "上报时间", "购买时间", "客户意见", "问题处理部门", "结果", "当前环节", "办结时间", *STAMPS,
    "出纳核实人", "出纳核实时间", "会计复核人", "会计复核时间", "财务总监审核人",
    "财务总监审核时间", "总裁审批人", "总裁审批时间", "备注",
)  # fmt: skip
STEP_COLUMNS = (
    "退单编号", "环节", "step", "等待", "role", "经办人", "开始", "结束", "期限", "时限",
    "用时(小时)", "超时", "仍未完成",
)  # fmt: skip


def collect(ledger: Ledger, month: Month, *, as_of: dt.datetime, config: Config) -> MonthData:
    """Read the month's refunds and their hand-offs from the ledger."""
    cal = WorkCalendar(config)
    # Rows as tuples, not dicts: at 100,000 refunds the dicts alone take a gigabyte.
    refunds: list[tuple[object, ...]] = []
    steps: list[tuple[object, ...]] = []
    skipped: list[tuple[str, str]] = []
    for form, events in ledger.stats.month_of_forms(month.first, month.next_first):
        row = _refund_row(form, events)
        refunds.append(tuple(row[c] for c in REFUND_COLUMNS))
        steps += [
            tuple(step[c] for c in STEP_COLUMNS)
            for step in _steps_of(form, events, as_of=as_of, config=config, cal=cal)
        ]
        skipped += [
            (form.form_no, f"未经过必经环节:{step}") for step in _skipped(form, events, config)
        ]
    # Typed even when empty: a month without refunds still gets its (empty) sheets.
    step_frame = pd.DataFrame(steps, columns=list(STEP_COLUMNS)).astype(
        {"超时": bool, "仍未完成": bool, "用时(小时)": float}
    )
    return MonthData(
        month=month,
        as_of=as_of,
        refunds=pd.DataFrame(refunds, columns=list(REFUND_COLUMNS)).astype({"金额": float}),
        steps=step_frame,
        skipped=pd.DataFrame(skipped, columns=["退单编号", "问题"]),
    )


# ---- the two statistics tables -------------------------------------------------------------


def _checked(who: object, when: object) -> str:
    if not isinstance(who, str) or not isinstance(when, dt.datetime):
        return ""
    return f"{who} {when:%Y-%m-%d %H:%M}"


def cs_table(data: MonthData) -> pd.DataFrame:
    """客服退单统计表's rows: every refund submitted in the month."""
    r = data.refunds
    table = pd.DataFrame(
        {
            "序号": range(1, len(r) + 1),
            "提交日期": [d.date() for d in r["提交日期"]],
            "退单编号": r["退单编号"],
            "订单号": r["订单号"],
            "联系方式": r["联系方式"],
            "开户行": r["开户行"],
            "金额": r["金额"],
            "提交人": r["提交人"],
            **{stamp: r[stamp] for stamp in STAMPS},
            "备注": r["备注"],
        },
        columns=list(layout.CS_STATS_COLUMNS),
    )
    return table


def finance_table(data: MonthData) -> pd.DataFrame:
    """财务退单统计表's rows: the refunds submitted to finance, with who checked and when."""
    r = data.refunds[data.refunds[FINANCE_SUBMITTED].notna()].reset_index(drop=True)
    return pd.DataFrame(
        {
            "序号": range(1, len(r) + 1),
            "提交日期": [d.date() for d in r["提交日期"]],
            "退单编号": r["退单编号"],
            "订单号": r["订单号"],
            "开户行": r["开户行"],
            "金额": r["金额"],
            "提交人": r["提交人"],
            **{
                column: [
                    _checked(w, t)
                    for w, t in zip(r[f"{column}人"], r[f"{column}时间"], strict=True)
                ]
                for column in FINANCE_CHECKS
            },
            "反馈客服": r[FINANCE_FEEDBACK],
            "备注": r["备注"],
        },
        columns=list(layout.FINANCE_STATS_COLUMNS),
    )


def total(amounts: pd.Series) -> float:
    """Sum to the cent, in Decimal: what a 合计 must show."""
    return float(sum((Decimal(str(a)).quantize(Decimal("0.01")) for a in amounts), Decimal(0)))


# ---- reading a table back and checking it (核对) -----------------------------------------


@dataclass(frozen=True)
class TableReadBack:
    rows: pd.DataFrame  # the data rows, columns as printed
    total: float | None  # the 合计 as the file holds it (cached value)


def read_stats_table(path: Path) -> TableReadBack:
    """Read a statistics table the way administration's tools do (calamine: cached values)."""
    table = examine(path.read_bytes())
    missing = [
        c
        for c in ("退单编号", "订单号", "开户行", "金额")
        if table is None or c not in table.columns
    ]
    if table is None or missing:
        raise FormReadError(
            f"{path.name} 不是退单统计表:第 {layout.STATS_HEADER_ROW} 行缺少列标题"
            f"{'、'.join(missing)}",
            hint="请使用 refundflow 生成的统计表,不要在列标题上方插入或删除行",
        )
    return readback(table)


def readback(table: TableSheet) -> TableReadBack:
    """A table read by :mod:`statsread` as rows and 合计, the way :func:`reconcile` takes it."""
    frame = pd.DataFrame(list(table.rows), columns=list(table.columns), dtype=object)
    if "退单编号" in frame.columns:
        numbers = frame["退单编号"].astype(str).str.strip()
        frame = frame[frame["退单编号"].notna() & (numbers != "")]
    cached = table.total
    if cached is None and table.total_row is not None and _total_is_plain_sum(table):
        # Saved by a program that does not compute formulas (no cached value): the 合计 is
        # still right when it is the plain SUM over every data row.
        cached = total(frame["金额"].fillna(0))
    return TableReadBack(frame.reset_index(drop=True), cached)


def _total_is_plain_sum(table: TableSheet) -> bool:
    if table.total_formula is None or layout.STATS_AMOUNT_COLUMN not in table.columns:
        return False
    assert table.total_row is not None
    col = rc_to_cell(0, table.columns.index(layout.STATS_AMOUNT_COLUMN))[:-1]
    plain = f"SUM({col}{layout.STATS_FIRST_DATA_ROW}:{col}{table.total_row - 1})"
    return table.total_formula.replace(" ", "").upper().removeprefix("=") == plain


ISSUE_COLUMNS = ["表", "退单编号", "问题", "表中", "账本中"]


def _cent(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def reconcile(
    table: pd.DataFrame, table_total: float | None, *, name: str, expected: pd.DataFrame
) -> pd.DataFrame:
    """What differs between a statistics table (generated or read back) and the ledger.

    ``expected`` is the table generated from the ledger. One row per difference: refunds
    missing from the table, rows matching no refund, amount / order number / bank
    differences, a 合计 that is not the sum of its rows.
    """
    issues: list[dict[str, str]] = []

    def issue(form_no: str, problem: str, shown: str = "", ledger: str = "") -> None:
        issues.append(
            {"表": name, "退单编号": form_no, "问题": problem, "表中": shown, "账本中": ledger}
        )

    # Plain dicts, not iterrows(): a Series per row costs more than the whole comparison.
    want = {_text(r["退单编号"]): r for r in expected.to_dict("records")}
    seen: set[str] = set()
    for row in table.to_dict("records"):
        form_no = _text(row["退单编号"])
        if form_no in seen:
            issue(form_no, "表中重复列出")
            continue
        seen.add(form_no)
        if form_no not in want:
            issue(form_no, "表中有,账本中没有这张退款单", _text(row.get("金额")))
            continue
        ledger_row = want[form_no]
        got, should = _cent(row.get("金额")), _cent(ledger_row["金额"])
        if got != should:
            issue(form_no, "金额不一致", f"{got}" if got is not None else _text(row.get("金额")),
                  f"{should}")  # fmt: skip
        for column in ("订单号", "开户行"):
            if _text(row.get(column)) != _text(ledger_row[column]):
                issue(form_no, f"{column}不一致", _text(row.get(column)), _text(ledger_row[column]))
    for form_no in want:
        if form_no not in seen:
            issue(form_no, "账本中有,表中缺少", "", _text(want[form_no]["金额"]))
    rows_sum = total(table["金额"].fillna(0)) if len(table) else 0.0
    if table_total is None or _cent(table_total) != _cent(rows_sum):
        issue(
            layout.TOTAL_LABEL,
            "合计与各行金额之和不符",
            "" if table_total is None else f"{_cent(table_total)}",
            f"{_cent(rows_sum)}(表中各行之和)",
        )
    return pd.DataFrame(issues, columns=ISSUE_COLUMNS)
