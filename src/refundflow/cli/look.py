"""``status``: where each form is, or one form's whole history, as a table or JSON."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from pathlib import Path
from typing import Any

import click

from ..calendar import Month, WorkCalendar
from ..config import ROLE_NAMES
from ..errors import RefundflowError
from ..handover_intake import HandoverReceived, handovers_received
from ..ledger import Ledger
from ..ledgercheck import open_ledger
from ..monthend import late_tables
from ..routing import STEP_NAMES, Step
from ..status import (
    FormStatus,
    StatusFilter,
    form_status,
    history_json,
    overdue_text,
    readable_detail,
    returned_new_forms,
    select_forms,
)
from ..watcher import stuck_entries
from ..workspace import Workspace
from .base import (
    _errors,
    _parse_month,
    _relative,
    _warn_about_roster,
    _workspace,
    cli,
    global_options,
    root_option,
)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def _fmt(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _parse_role(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A role by its key (cs) or by the department's name people use (客服部)."""
    if value is None:
        return None
    for key, name in ROLE_NAMES.items():
        if value.strip() in (key, name):
            return key
    choices = "、".join(f"{key}({name})" for key, name in ROLE_NAMES.items())
    raise click.BadParameter(f'没有 "{value}" 这个角色,可用:{choices}')


def _parse_month_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Month | None:
    return None if value is None else _parse_month(ctx, param, value)


@cli.command()
@root_option
@global_options
@click.argument("form_no", required=False)
@click.option(
    "--role",
    callback=_parse_role,
    metavar="ROLE",
    help="只看等待这个角色的单,如 cs 或 客服部 (forms waiting on ROLE)",
)
@click.option(
    "--person",
    metavar="NAME",
    help="只看这个人签过或现在要处理的单 (forms NAME signed or must act on)",
)
@click.option("--all", "closed_too", is_flag=True, help="包括已办结的单 (closed forms too)")
@click.option(
    "--month",
    callback=_parse_month_option,
    metavar="YYYY-MM",
    help="只看这个月提交的单 (forms submitted in that month)",
)
@click.option("--json", "as_json", is_flag=True, help="输出 JSON (machine-readable)")
@click.pass_obj
def status(
    obj: dict[str, Any],
    root: Path,
    form_no: str | None,
    role: str | None,
    person: str | None,
    closed_too: bool,
    month: Month | None,
    as_json: bool,
) -> None:
    """查看退款单:在哪个环节、等谁、期限、是否逾期 (where each form is, late or not).

    Without FORM_NO: every open form (with --all, closed ones too), narrowed by --role,
    --person and --month; late forms say by how much, and their notes follow the table.
    New forms returned to 客服部 before they got a number are listed while their returned
    copy is in its folder. With FORM_NO (any letter case): that form's whole history.

    Example:

    \b
        refundflow status --root /srv/share/refunds
        refundflow status --role 客服部
        refundflow status --person 王五 --all --month 2026-11
        refundflow status TKD20261123-001
        refundflow status tkd20261123-001 --json
        refundflow status --now "2026-11-24 09:00"
    """
    which = StatusFilter(role=role, person=person, month=month, closed_too=closed_too)
    if form_no and which != StatusFilter():
        raise click.UsageError("查看一张单(FORM_NO)时不能同时用 --role/--person/--all/--month")
    with _errors():
        workspace = _workspace(root)
        _warn_about_roster(workspace)
        now = obj["clock"]()
        ledger = open_ledger(workspace)
        try:
            if form_no:
                _show_form(ledger, workspace, form_no, now=now, as_json=as_json)
                return
            forms = select_forms(ledger, now=now, config=workspace.config, which=which)
            returned = returned_new_forms(ledger, config=workspace.config, which=which)
            handovers = handovers_received(ledger, now.date()) if which.role in (None, "cs") else []
            pending = ledger.pending_deliveries()
        finally:
            ledger.close()
        late_months = late_tables(workspace, now=now)
    if as_json:
        click.echo(json.dumps([f.to_json() for f in forms], ensure_ascii=False, indent=2))
        return
    for line in late_months:  # first, where people look: a month's tables not in by their due date
        click.echo(line)
    if pending:
        click.echo("未能投递的文件(已存档,目标文件夹可写后自动补发):")
        for delivery in pending:
            click.echo(f"  {_relative(Path(delivery.dest), workspace.root)}")
    if forms:
        _forms_table(forms, closed_too=closed_too)
    elif which == StatusFilter():
        click.echo("没有未办结的退款单")
    else:
        click.echo("没有符合条件的退款单")
    if returned:
        click.echo(f"退回客服部修改、尚未编号的新退款单({len(returned)} 张):")
        for form in returned:
            click.echo(
                f"  {_relative(Path(form.dest), workspace.root)}  {_fmt(form.at)} 退回,"
                "等待客服部按“退回原因”修改后重新放入 inbox/"
            )
    if handovers:
        click.echo(f"今天收到的值班交接单({len(handovers)} 张):")
        for sheet in handovers:
            click.echo(f"  {_handover_line(sheet, workspace.root)}")
    stuck = stuck_entries(workspace.inbox)
    if stuck:
        click.echo(f"收件箱中无法处理的文件({len(stuck)} 个):")
        for entry in stuck:
            click.echo(f"  {entry.name}:{entry.cause}")


def _handover_line(sheet: HandoverReceived, root: Path) -> str:
    where = _relative(Path(sheet.dest), root) if sheet.dest else ""
    if sheet.accepted:
        return f"{sheet.at:%H:%M} {sheet.file_name}:已核对,交给接班人员 {where}"
    problems = (sheet.detail or "").replace("\n", ";")
    return f"{sheet.at:%H:%M} {sheet.file_name}:退回客服部({problems}) {where}"


def _state(form: FormStatus) -> str:
    if form.closed_at is not None:
        return "已办结"
    return overdue_text(form.overdue_minutes) if form.late else "正常"


def _forms_table(forms: list[FormStatus], *, closed_too: bool) -> None:
    rows = [["编号", "订单号", "金额", "环节", "等待", "自", "期限", "状态"]]
    for f in forms:
        rows.append(
            [
                f.form_no,
                f.order_no,
                f.amount or "",
                f.step_name,
                f.waiting_on_name,
                _fmt(f.since),
                _fmt(f.deadline),
                _state(f),
            ]
        )
    for line in _table(rows):
        click.echo(line)
    late = sum(f.late for f in forms)
    still_open = sum(f.closed_at is None for f in forms)
    if closed_too:
        click.echo(
            f"共 {len(forms)} 张,其中未办结 {still_open} 张(逾期 {late} 张),"
            f"已办结 {len(forms) - still_open} 张"
        )
    else:
        click.echo(f"共 {len(forms)} 张未办结,其中逾期 {late} 张")
    recorded = [(f.form_no, line) for f in forms for line in f.breaches]
    if recorded:
        click.echo("超时记录:")
        for form, line in recorded:
            click.echo(f"  {form} {line}")
    notes = [(f.form_no, line) for f in forms for line in f.remarks()]
    if notes:
        click.echo("备注:")
        for form, line in notes:
            click.echo(f"  {form} {line}")


def _show_form(
    ledger: Ledger, workspace: Workspace, form_no: str, *, now: dt.datetime, as_json: bool
) -> None:
    # People type numbers in any case; ours are upper case (TKD…), a prefix may not be.
    row = ledger.form(form_no.strip()) or ledger.form(form_no.strip().upper())
    if row is None:
        raise RefundflowError(
            f"没有编号为 {form_no} 的退款单", hint="用 refundflow status --all 查看所有编号"
        )
    form_no = row.form_no
    events = ledger.events(form_no)
    state = form_status(
        row,
        events,
        now=now,
        config=workspace.config,
        calendar=WorkCalendar(workspace.config),
        recorded=ledger.breaches.recorded(form_no),
    )
    if as_json:
        payload = state.to_json()
        payload["history"] = history_json(events)
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    click.echo(f"编号 {row.form_no}  订单号 {row.order_no}  金额 {row.amount or '-'}")
    if row.closed_at:
        click.echo(f"已办结:{_fmt(row.closed_at)}")
    else:
        late = f"  {overdue_text(state.overdue_minutes)}" if state.late else ""
        click.echo(
            f"当前:{state.step_name},等待{state.waiting_on_name},"
            f"期限 {_fmt(state.deadline)}({state.rule}){late}"
        )
    rows = [["时间", "结果", "环节", "去向", "经办人", "文件", "说明"]]
    kinds = {"accepted": "通过", "returned": "退回", "rejected": "拒收", "duplicate": "重复"}
    for e in events:
        rows.append(
            [
                _fmt(e.at),
                kinds.get(e.kind, e.kind),
                STEP_NAMES[Step(e.to_step)] if e.to_step else "",
                ROLE_NAMES.get(e.to_role or "", "归档" if e.kind == "accepted" else ""),
                e.actor or "",
                e.file_name,
                readable_detail(e.detail),
            ]
        )
    for line in _table(rows):
        click.echo(line)
    for line in state.breaches:
        click.echo(f"超时记录:{line}")
