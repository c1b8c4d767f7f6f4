"""``process``, ``watch`` and ``rebuild``: the commands that take the workspace lock and
run the processor; one ``[已流转] …`` line per file (on stdout for ``process``, as a log line on
stderr for ``watch``, a service)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..errors import RefundflowError
from ..monthend import ReportFiles, produce_due
from ..processor import Outcome, Processor, Result
from ..sandbox import ParserPool, stop_helper_processes
from ..servicelog import FILE_LOG, use_service_log
from ..upkeep import Upkeep, keep_up
from ..watcher import InboxWatcher
from ..workspace import Workspace, WorkspaceLock
from .base import (
    _errors,
    _relative,
    _warn_about_roster,
    _workspace,
    cli,
    global_options,
    log,
    root_option,
)

watch_log = logging.getLogger(FILE_LOG)


def _report_lines(result: Result) -> list[str]:
    """What became of one file (what, where to, why): a line, and one for deliveries held up."""
    marks = {
        Outcome.ROUTED: "已流转",
        Outcome.CLOSED: "已归档",
        Outcome.RETURNED: "已退回",
        Outcome.REJECTED: "已拒收",
        Outcome.DUPLICATE: "重复件",
        Outcome.RECOVERED: "已恢复",
    }
    if result.outcome is Outcome.WAITING:
        return []  # still being written: it is answered when complete, nothing to say yet
    lines = [f"[{marks[result.outcome]}] {result.file_name}: {result.message}"]
    if result.pending and result.outcome is not Outcome.RECOVERED:
        lines.append(f"  投递失败,稍后自动重试:{';'.join(result.pending)}")
    return lines


def _report(result: Result) -> None:
    for line in _report_lines(result):
        click.echo(line)


def _log_report(result: Result) -> None:
    """``watch``: the same, as one log line on stderr (a service's log)."""
    lines = _report_lines(result)
    if lines:
        level = logging.WARNING if len(lines) > 1 else logging.INFO
        watch_log.log(level, ";".join(line.strip() for line in lines))


def _say_failure(text: str) -> None:
    click.echo(text, err=True)


def _log_failure(text: str) -> None:
    watch_log.error(text)


@contextmanager
def _processor(
    workspace: Workspace,
    clock: Callable[[], dt.datetime],
    command: str,
    *,
    report: Callable[[Result], None] = _report,
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
                report(result)
            yield processor
        finally:
            processor.close()


def _handler(
    processor: Processor,
    failures: list[str],
    *,
    report: Callable[[Result], None] = _report,
    say_failure: Callable[[str], None] = _say_failure,
) -> Callable[[Path], None]:
    def handle(path: Path) -> None:
        try:
            report(processor.process_file(path))
        except FileNotFoundError:
            if path.exists():
                raise
            # Taken back by whoever dropped it before we read it: nothing to answer.
            log.info("%s 在读取前已从 inbox/ 移走", path.name)
        except RefundflowError as exc:
            # Disk full, a folder we cannot write, a file we cannot read: say so in Chinese,
            # leave the file where it is; the watcher tries it again later.
            failures.append(path.name)
            text = f"[未处理] {path.name}: 错误:{exc.message}"
            say_failure(text + (f"\n  处理办法:{exc.hint}" if exc.hint else ""))
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
        workspace.check_writable()
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
    use_service_log(verbose=logging.NOTSET < logging.getLogger().level <= logging.DEBUG)  # -v
    with _errors():
        workspace = _workspace(root)
        workspace.check_writable()
        stop = threading.Event()
        with (
            _stop_on_signals(stop),
            _processor(workspace, obj["clock"], "watch", report=_log_report) as processor,
        ):
            busy = threading.Lock()  # one file or one retry at a time: the ledger is not shared
            handle = _handler(processor, [], report=_log_report, say_failure=_log_failure)
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
                log.warning("解析进程尚未启动:%s", exc.message)
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
            log.exception("重试投递时出错,稍后再试")
            continue
        for result in results:
            _log_report(result)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (a service manager) and SIGINT (Ctrl-C) end the watch loop cleanly: the file in
    hand is finished, never cut off half-way. Signals can only be set from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopping(signum: int, _frame: object) -> None:
        watch_log.info("收到 %s,处理完当前文件后停止", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
        log.exception("生成上月统计表时出错,稍后再试")
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
@click.pass_obj
def rebuild(obj: dict[str, Any], root: Path) -> None:
    """从存档重建账本 (rebuild the ledger by replaying the archive of received files).

    The current ledger is kept beside it as a backup. Nothing is delivered again.

    Example:

    \b
        refundflow rebuild --root /srv/share/refunds
    """
    from ..progress import progress
    from ..rebuild import rebuild_ledger

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
