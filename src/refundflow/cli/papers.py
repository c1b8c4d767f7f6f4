"""``handover`` and ``report``: the shift handover sheet and the monthly statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from ..calendar import Month, WorkCalendar
from ..ledger import Ledger
from ..monthend import produce
from .base import (
    _errors,
    _parse_day,
    _parse_month,
    _relative,
    _workspace,
    cli,
    global_options,
    root_option,
)
from .run import _say_made


@cli.command()
@root_option
@global_options
@click.option("--shift", "shift_name", metavar="白班|中班", help="班次 (default: by the clock)")
@click.option(
    "--date",
    "day",
    callback=_parse_day,
    metavar="YYYY-MM-DD",
    help="班次开始的日期 (default: today)",
)
@click.pass_obj
def handover(obj: dict[str, Any], root: Path, shift_name: str | None, day: dt.date | None) -> None:
    """生成值班交接单到 outbox/ 的客服部文件夹 (the shift handover sheet, prefilled).

    Without --shift/--date: the shift running now (--now), or the one that ended last. An
    earlier sheet of the same shift is kept; the new one gets a numbered name.

    Example:

    \b
        refundflow handover --root /srv/share/refunds
        refundflow handover --root /srv/share/refunds --shift 中班 --date 2026-11-23
    """
    from ..handover import HandoverWriter, current_shift, find_shift, shift_window

    with _errors():
        workspace = _workspace(root)
        config = workspace.config
        now = obj["clock"]()
        shift = current_shift(config, now).shift
        if shift_name is not None:
            found = find_shift(config, shift_name)
            if found is None:
                names = "、".join(s.name for s in config.shifts)
                raise click.BadParameter(
                    f"没有名为 {shift_name} 的班次(可用:{names})", param_hint="--shift"
                )
            shift = found
        if shift_name is None and day is None:
            window = current_shift(config, now)
        else:
            window = shift_window(shift, day or now.date())
        ledger = Ledger(workspace.ledger_path)
        try:
            path = HandoverWriter(workspace).write(ledger, window, now=now)
        finally:
            ledger.close()
    span = f"{window.start:%Y-%m-%d %H:%M}-{window.end:%H:%M}"
    click.echo(f"已生成值班交接单 {_relative(path, workspace.root)}({window.shift.name} {span})")


@cli.command()
@root_option
@global_options
@click.option(
    "--month",
    required=True,
    callback=_parse_month,
    metavar="YYYY-MM",
    help="统计哪个月提交的退款单 (the month, by 提交日期)",
)
@click.pass_obj
def report(obj: dict[str, Any], root: Path, month: Month) -> None:
    """生成月度统计:客服/财务退单统计表和行政部月度退款报表 (monthly statistics).

    Writes, from the ledger, 客服退单统计表-YYYY-MM.xlsx into the 客服部 folder,
    财务退单统计表-YYYY-MM.xlsx into the finance compiler's folder and
    月度退款报表-YYYY-MM.xlsx into the 行政部 folder; a copy of each is archived.
    Run it again to bring the files up to date.

    Example:

    \b
        refundflow report --root /srv/share/refunds --month 2026-11
    """
    now = obj["clock"]()
    if month.first > now.date():
        raise click.BadParameter(
            f"{month.label} 还没有开始,没有可统计的退款单;请写已开始的月份,例如 "
            f"{Month.before(now.date()).label}",
            param_hint="'--month'",
        )
    with _errors():
        workspace = _workspace(root)
        calendar = WorkCalendar(workspace.config)
        due = calendar.statistics_due(month.next_first.year, month.next_first.month)
        # No workspace lock: it only reads the ledger and replaces whole files atomically, so
        # it runs beside the watcher (which is always running) without harm.
        made = produce(workspace, month, now=now)
    _say_made(made, workspace.root)
    rule = (
        "遇双休日和法定节假日顺延" if workspace.config.report_due_over_holidays else "遇双休日顺延"
    )
    click.echo(f"报送期限:{due:%Y-%m-%d}(每月1日,{rule})")
    for year in calendar.fallback_years:
        click.echo(
            f"警告:日历库没有 {year} 年的法定节假日数据,报送期限只按周一至周五计算"
            "\n处理办法:升级 chinese_calendar,"
            "或在 refundflow.toml 的 [calendar] 中写明放假和调休日期",
            err=True,
        )
