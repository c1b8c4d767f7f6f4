"""The ``refundflow`` command: a thin layer over the library.

Library errors become a message with a fix hint and exit status 1; each command's docstring
is its --help.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .calendar import Month, WorkCalendar
from .config import CONFIG_FILE, ROLE_NAMES, load_config
from .errors import RefundflowError, storage_error
from .ledger import Ledger, breaches, iso
from .ledgercheck import open_ledger
from .monthend import ReportFiles, late_tables, produce, produce_due
from .processor import Outcome, Processor, Result
from .routing import STEP_NAMES, Step
from .sandbox import ParserPool, stop_helper_processes
from .status import (
    FormStatus,
    StatusFilter,
    form_status,
    overdue_text,
    readable_detail,
    returned_new_forms,
    roster_warning,
    select_forms,
)
from .templates import write_templates
from .upkeep import Upkeep, keep_up
from .watcher import InboxWatcher, stuck_entries
from .workspace import Workspace, WorkspaceLock, init_templates, init_workspace

log = logging.getLogger("refundflow")

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="工作区文件夹 (workspace folder)",
)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RefundflowError as exc:
        message = f"错误:{exc.message}"
        if exc.hint:
            message += f"\n处理办法:{exc.hint}"
        raise click.ClickException(message) from exc
    except OSError as exc:  # a full disk or an unwritable folder at start-up: no traceback
        error = storage_error(exc, doing="准备工作区")
        raise click.ClickException(f"错误:{error.message}\n处理办法:{error.hint}") from exc


def _parse_now(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise click.BadParameter('格式应为 "YYYY-MM-DD HH:MM",例如 "2026-11-23 14:05"') from None


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter('格式应为 "YYYY-MM-DD",例如 "2026-11-23"') from None


NOW_HELP = "按这个时刻处理,而不是当前时钟 (act as of this moment)"
VERBOSE_HELP = "输出详细日志 (debug logging)"


def _now_here(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """A subcommand's own --now: it overrides the one given before the subcommand."""
    moment = _parse_now(ctx, param, value)
    if moment is not None:
        ctx.ensure_object(dict)["clock"] = _clock(moment)


def _verbose_here(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        logging.getLogger().setLevel(logging.DEBUG)


def global_options(command: Callable[..., None]) -> Callable[..., None]:
    """--now and -v after the subcommand too: people write `refundflow status --now ...`."""
    command = click.option(
        "-v", "--verbose", is_flag=True, expose_value=False, callback=_verbose_here,
        help=VERBOSE_HELP,
    )(command)  # fmt: skip
    return click.option(
        "--now", callback=_now_here, expose_value=False, metavar='"YYYY-MM-DD HH:MM"',
        help=NOW_HELP,
    )(command)  # fmt: skip


@click.group()
@click.version_option(package_name="refundflow")
@click.option("--now", callback=_parse_now, metavar='"YYYY-MM-DD HH:MM"', help=NOW_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.pass_context
def cli(ctx: click.Context, now: dt.datetime | None, verbose: bool) -> None:
    """refundflow: 客户退款流程 — Excel 表单的收件、校验、流转与统计。

    The customer-refund procedure on Excel files in a shared folder. Every command takes
    --root DIR (the workspace, default: the current folder); --now and -v may be given
    before or after the command.

    Example:

    \b
        refundflow init --root /srv/share/refunds
        refundflow watch --root /srv/share/refunds
        refundflow status --root /srv/share/refunds
        refundflow --now "2026-11-23 14:05" process --root /srv/share/refunds
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = {"clock": _clock(now)}


def _clock(start: dt.datetime | None) -> Callable[[], dt.datetime]:
    if start is None:
        return lambda: dt.datetime.now().replace(microsecond=0)
    began = time.monotonic()
    # --now sets the moment the command starts; time then runs on from there.
    return lambda: start + dt.timedelta(seconds=int(time.monotonic() - began))


def _workspace(root: Path, *, check: bool = True) -> Workspace:
    root = root.resolve()
    workspace = Workspace(root, load_config(root))
    if check:
        workspace.check()
    return workspace


@cli.command()
@root_option
@global_options
def init(root: Path) -> None:
    """创建工作区:文件夹、refundflow.toml 和四张模板 (create a ready workspace).

    Creates inbox/, outbox/<role>/, refundsheets/, templates/ with the four templates, and a
    commented refundflow.toml; fill in its [roster] at once. Never overwrites a file that
    exists; says what it created.

    Example:

    \b
        refundflow init --root /srv/share/refunds
    """
    with _errors():
        root.mkdir(parents=True, exist_ok=True)
        workspace = _workspace(root, check=False)
        created = init_workspace(workspace)
        created += init_templates(workspace)
    for path in created:
        click.echo(f"已创建 {path.relative_to(workspace.root)}")
    if not created:
        click.echo(f"工作区 {workspace.root} 已完整,无需创建")


@cli.command()
@root_option
@global_options
def templates(root: Path) -> None:
    """重新生成四张 Excel 模板到 templates/ (regenerate the four templates).

    退款申请表, 客服部值班交接单, 客服退单统计表, 财务退单统计表, from refundflow.toml (banks,
    faults, shifts); run it after changing those. Overwrites the files in templates/.

    Example:

    \b
        refundflow templates --root /srv/share/refunds
    """
    with _errors():
        workspace = _workspace(root, check=False)
        workspace.templates.mkdir(parents=True, exist_ok=True)
        written = write_templates(workspace.templates, workspace.config)
    for path in written:
        click.echo(f"已生成 {path.relative_to(workspace.root)}")


def _report(result: Result) -> None:
    marks = {
        Outcome.ROUTED: "已流转",
        Outcome.CLOSED: "已归档",
        Outcome.RETURNED: "已退回",
        Outcome.REJECTED: "已拒收",
        Outcome.DUPLICATE: "重复件",
        Outcome.RECOVERED: "已恢复",
    }
    if result.outcome is Outcome.WAITING:
        return  # still being written: it is answered when complete, nothing to say yet
    click.echo(f"[{marks[result.outcome]}] {result.file_name}: {result.message}")
    if result.pending and result.outcome is not Outcome.RECOVERED:
        click.echo(f"  投递失败,稍后自动重试:{';'.join(result.pending)}")


def _warn_about_roster(workspace: Workspace) -> None:
    """Roles anyone may sign for: on stderr, so scripts reading stdout are not disturbed."""
    lines = roster_warning(workspace.config, config_file=workspace.root / CONFIG_FILE)
    for line in lines:
        click.echo(line, err=True)


@contextmanager
def _processor(
    workspace: Workspace, clock: Callable[[], dt.datetime], command: str
) -> Iterator[Processor]:
    config = workspace.config
    with (
        WorkspaceLock(workspace, command=command),
        ParserPool(memory_mb=config.parse_memory_mb, timeout=config.parse_timeout_seconds) as pool,
    ):
        _warn_about_roster(workspace)  # once per run, before anything is processed
        processor = Processor(workspace, clock=clock, pool=pool)
        try:
            for result in processor.recover():
                _report(result)
            yield processor
        finally:
            processor.close()


def _handler(processor: Processor, failures: list[str]) -> Callable[[Path], None]:
    def handle(path: Path) -> None:
        try:
            _report(processor.process_file(path))
        except FileNotFoundError:
            if path.exists():
                raise
            # Taken back by whoever dropped it before we read it: nothing to answer.
            log.info("%s was removed from inbox/ before it was read", path.name)
        except RefundflowError as exc:
            # Disk full, a folder we cannot write, a file we cannot read: say so in Chinese,
            # leave the file where it is; the watcher tries it again later.
            failures.append(path.name)
            text = f"[未处理] {path.name}: 错误:{exc.message}"
            click.echo(text + (f"\n  处理办法:{exc.hint}" if exc.hint else ""), err=True)
        except Exception:
            failures.append(path.name)
            raise  # the watcher logs it and retries the file later; the file stays in inbox

    return handle


@cli.command()
@root_option
@global_options
@click.pass_obj
def process(obj: dict[str, Any], root: Path) -> None:
    """处理 inbox/ 中现有的文件一次后退出 (one pass over inbox/, for a scheduled task).

    Exit status 0 when every file was either accepted or returned with reasons; non-zero
    only when the tool itself failed.

    Example:

    \b
        refundflow process --root /srv/share/refunds
        refundflow process --root /srv/share/refunds --now "2026-11-23 14:05"
    """
    with _errors():
        workspace = _workspace(root)
        failures: list[str] = []
        with _processor(workspace, obj["clock"], "process") as processor:
            watcher = InboxWatcher(
                workspace.inbox,
                _handler(processor, failures),
                stable_seconds=workspace.config.stable_seconds,
                rescan_seconds=workspace.config.rescan_seconds,
                incomplete_seconds=workspace.config.incomplete_seconds,
            )
            config = workspace.config
            # Long enough for a file still being written to be waited for, then answered.
            settle = config.stable_seconds + config.incomplete_seconds
            watcher.drain(
                timeout=max(60.0, config.stable_seconds * 10, settle + 5.0),
                give_up_on_failure=True,
            )
            waiting = [name for name in watcher.pending() if name not in failures]
            pending = processor.pending_deliveries()
            Upkeep(workspace, processor.ledger).after_change(obj["clock"]())
            _month_end(workspace, obj["clock"])
        stop_helper_processes()  # a scheduled task leaves nothing running behind it
    if waiting:
        click.echo(f"仍在 inbox/ 中等待(文件未保存完或被占用,下次再处理):{'、'.join(waiting)}")
    if pending:
        click.echo(
            f"{len(pending)} 个文件未能投递(目标文件夹无法写入),已存档,下次运行时自动重试:"
            + "、".join(_relative(Path(d.dest), workspace.root) for d in pending)
        )
    if failures:
        raise click.ClickException(
            f"{len(set(failures))} 个文件处理失败,仍留在 inbox/ 中:"
            + "、".join(sorted(set(failures)))
            + "\n处理办法:文件没有丢失,下次运行会再处理;用 refundflow -v process 查看详细原因,"
            "或联系维护人员"
        )


@cli.command()
@root_option
@global_options
@click.option(
    "--polling",
    type=float,
    metavar="SECONDS",
    help="用轮询代替文件系统事件 (poll every SECONDS; for network shares)",
)
@click.pass_obj
def watch(obj: dict[str, Any], root: Path, polling: float | None) -> None:
    """持续监视 inbox/,处理放入的每个文件 (run until Ctrl-C / SIGTERM).

    Processes what is already in inbox/ at start; native events on local disks, polling on
    network shares (detected, or forced by --polling), and a periodic full rescan.

    Example:

    \b
        refundflow watch --root /srv/share/refunds
        refundflow watch --root /mnt/share/refunds --polling 2
    """
    with _errors():
        workspace = _workspace(root)
        stop = threading.Event()
        with _stop_on_sigterm(stop), _processor(workspace, obj["clock"], "watch") as processor:
            busy = threading.Lock()  # one file or one retry at a time: the ledger is not shared
            handle = _handler(processor, [])
            changed = threading.Event()  # wakes the upkeep thread (board, time limits)

            def handle_one(path: Path) -> None:
                with busy:
                    handle(path)
                changed.set()

            watcher = InboxWatcher(
                workspace.inbox,
                handle_one,
                stable_seconds=workspace.config.stable_seconds,
                rescan_seconds=workspace.config.rescan_seconds,
                incomplete_seconds=workspace.config.incomplete_seconds,
                polling=polling,
            )

            def month_end() -> None:
                with busy:
                    _month_end(workspace, obj["clock"])

            month_end()
            retrying = threading.Thread(
                target=_retry_deliveries,
                args=(processor, busy, stop, workspace.config.rescan_seconds, month_end),
                name="refundflow-retry",
                daemon=True,
            )
            retrying.start()
            upkeep = Upkeep(workspace, processor.ledger, busy=busy)
            upkeep.periodic(obj["clock"]())  # the board and late work as of start-up
            keeping = threading.Thread(
                target=keep_up,
                args=(upkeep,),
                kwargs={
                    "clock": obj["clock"],
                    "stop": stop,
                    "changed": changed,
                    "every": workspace.config.rescan_seconds,
                },
                name="refundflow-upkeep",
                daemon=True,
            )
            keeping.start()
            try:
                processor.pool.start()  # ready before the first drop
            except RefundflowError as exc:  # the first file will try again, and say so
                log.warning("parser worker not started yet: %s", exc.message)
            click.echo(f"正在监视 {workspace.inbox}(按 Ctrl-C 停止)")
            try:
                watcher.run(stop)
            except KeyboardInterrupt:
                stop.set()
            changed.set()  # wake the upkeep thread so that it sees the stop
            retrying.join()
            keeping.join()
    click.echo("已停止监视")


def _retry_deliveries(
    processor: Processor,
    busy: threading.Lock,
    stop: threading.Event,
    every: float,
    month_end: Callable[[], None],
) -> None:
    """Deliver again, every rescan interval, what a folder that could not be written held up;
    and make last month's statistics when a month has just ended."""
    while not stop.wait(every):
        month_end()
        try:
            with busy:
                results = processor.retry_deliveries()
        except Exception:
            log.exception("retrying deliveries failed; trying again later")
            continue
        for result in results:
            _report(result)


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM ends the watch loop cleanly (signals can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
                "等待客服部按「退回原因」修改后重新放入 inbox/"
            )
    stuck = stuck_entries(workspace.inbox)
    if stuck:
        click.echo(f"收件箱中无法处理的文件({len(stuck)} 个):")
        for entry in stuck:
            click.echo(f"  {entry.name}:{entry.cause}")


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
        recorded=breaches(ledger, form_no),
    )
    if as_json:
        payload = state.to_json()
        payload["history"] = [
            {
                "at": iso(e.at),
                "kind": e.kind,
                "from_step": e.from_step,
                "to_step": e.to_step,
                "to_role": e.to_role,
                "actor": e.actor,
                "stamp": e.stamp,
                "file": e.file_name,
                "detail": e.detail,
            }
            for e in events
        ]
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
    from .handover import HandoverWriter, current_shift, find_shift, shift_window

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


def _parse_month(_ctx: click.Context, _param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except ValueError:
        raise click.BadParameter(f'"{value}" 不是月份,格式应为 YYYY-MM,例如 2026-11') from None


def _say_made(files: ReportFiles, root: Path) -> None:
    click.echo(
        f"已生成 {files.month.label} 月度统计:{files.count} 张退款单,"
        f"金额合计 {files.amount:,.2f} 元,核对问题 {files.issues} 处"
    )
    for path in files.delivered:
        click.echo(f"  {_relative(path, root)}")


def _month_end(workspace: Workspace, clock: Callable[[], dt.datetime]) -> None:
    """The watcher's month-end hook: last month's statistics, once (see monthend.py)."""
    try:
        made = produce_due(workspace, now=clock())
    except RefundflowError as exc:  # said, and tried again at the next pass
        click.echo(f"错误:{exc.message}\n处理办法:{exc.hint}", err=True)
        return
    except Exception:  # a bug here must not stop the watcher handling inbox/
        log.exception("making last month's statistics failed; trying again later")
        click.echo(
            "错误:生成上月统计表时出错\n处理办法:稍后会自动重试;也可以运行 refundflow -v report"
            " --month YYYY-MM 查看原因,或联系维护人员",
            err=True,
        )
        return
    if made:
        _say_made(made, workspace.root)


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


@cli.command()
@root_option
@global_options
@click.pass_obj
def rebuild(obj: dict[str, Any], root: Path) -> None:
    """从存档重建账本 (rebuild the ledger by replaying the archive of received files).

    The current ledger is kept beside it as a backup. Nothing is delivered again.

    Example:

    \b
        refundflow rebuild --root /srv/share/refunds
    """
    from .progress import progress
    from .rebuild import rebuild_ledger

    with _errors():
        workspace = _workspace(root)
        config = workspace.config
        with (
            WorkspaceLock(workspace, command="rebuild"),
            ParserPool(
                memory_mb=config.parse_memory_mb, timeout=config.parse_timeout_seconds
            ) as pool,
        ):
            backup, count = rebuild_ledger(
                workspace,
                pool=pool,
                track=lambda files, total: progress(files, total=total, label="重放存档"),
            )
        stop_helper_processes()
    if backup:
        click.echo(f"原账本已备份为 {backup.name}")
    click.echo(f"已从存档重放 {count} 个文件,账本已重建")


if __name__ == "__main__":  # python -m refundflow.cli (used by the tests' subprocesses)
    cli(prog_name="refundflow")
