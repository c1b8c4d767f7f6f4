"""``demo``: a month of refunds played through the real pipeline in a new workspace."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..calendar import Month
from ..demoplan import MIN_FORMS
from ..sandbox import stop_helper_processes
from .base import _errors, _parse_month, cli, global_options


def _parse_month_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Month | None:
    return None if value is None else _parse_month(ctx, param, value)


@contextmanager
def _breaches_told_in_the_summary() -> Iterator[None]:
    """The month's late hand-offs are part of the story and the summary counts them: their
    one warning line each (meant for a watcher's log) would bury the summary. -v shows them."""
    breach_log = logging.getLogger("refundflow.breaches")
    level = breach_log.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        breach_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        breach_log.setLevel(level)


@cli.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="演示工作区 (a new folder, or a previous demo's)",
)
@global_options
@click.option(
    "--month",
    callback=_parse_month_option,
    metavar="YYYY-MM",
    help="演示哪个月 (default: last month)",
)
@click.option(
    "--forms",
    type=click.IntRange(min=MIN_FORMS, max=2000),
    default=60,
    show_default=True,
    help="退款单张数 (how many refunds)",
)
@click.pass_obj
def demo(obj: dict[str, Any], root: Path, month: Month | None, forms: int) -> None:
    """演示:在新工作区里用真实流程走完一个月的退款 (a month played through, to look at).

    Builds a workspace (default: demo/ here; a folder that is not empty is refused unless
    it is a previous demo, which is made afresh) with a sample roster, and plays the month's
    refunds through the same processing as watch, with its own clock: forms filed by both
    shifts, signed role by role, some returned by 技术部 or finance, late hand-offs, a
    mistyped mobile number returned and fixed, a duplicate order number, and one form saved
    with LibreOffice when it is installed. Then it writes the handover sheets, the status
    board and the month's statistics, and says which files to open first.

    Example:

    \b
        refundflow demo
        refundflow demo --root /tmp/refunds-demo --month 2026-11 --forms 200

    Then: refundflow status --root demo
    """
    # Here, not at the top: the demo loads openpyxl (handover sheets), which other commands
    # do not pay for.
    from ..demo import check_folder, demo_size, play_demo

    month = month or Month.before(obj["clock"]().date())
    soffice = shutil.which("soffice")
    with _errors(), _breaches_told_in_the_summary():
        check_folder(root)
        with click.progressbar(
            length=demo_size(forms),
            label=f"正在演示 {month.label}",
            hidden=not sys.stdout.isatty(),
        ) as bar:
            report = play_demo(root, month=month, forms=forms, soffice=soffice, progress=bar.update)
        stop_helper_processes()  # like process: nothing left running behind it
    click.echo(f"演示工作区:{root}")
    for line in report.summary():
        click.echo(line)
    click.echo(f"接着可以运行:refundflow status --root {root}")
