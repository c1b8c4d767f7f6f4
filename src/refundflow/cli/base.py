"""The ``refundflow`` group and what every command shares: --root, --now/-v after the
command, the workspace, and library errors turned into 错误/处理办法 with exit status 1."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..calendar import Month
from ..config import CONFIG_FILE, load_config
from ..errors import RefundflowError, storage_error
from ..status import roster_warning
from ..workspace import Workspace

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


def _warn_about_roster(workspace: Workspace) -> None:
    """Roles anyone may sign for: on stderr, so scripts reading stdout are not disturbed."""
    lines = roster_warning(workspace.config, config_file=workspace.root / CONFIG_FILE)
    for line in lines:
        click.echo(line, err=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _parse_month(_ctx: click.Context, _param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except ValueError:
        raise click.BadParameter(f'"{value}" 不是月份,格式应为 YYYY-MM,例如 2026-11') from None
