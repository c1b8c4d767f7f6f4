"""What runs besides processing files: the breach check and its alerts, the status board, and
the shift handover sheet due before a shift ends.

``process`` runs it once after its pass; ``watch`` after every processed file and on every
periodic pass. None of it may stop the watcher: a failure is logged and tried again on the
next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .alerts import run_alert
from .board import StatusBoard
from .breaches import BreachChecker
from .ledger import BreachRow, Ledger
from .workspace import Workspace

if TYPE_CHECKING:
    from .handover import HandoverWriter

log = logging.getLogger(__name__)


class Upkeep:
    """``busy``: the lock that guards the processor's ledger connection (watch shares it with
    the file handler); alert commands run outside it, so a slow one never holds up a file."""

    def __init__(
        self, workspace: Workspace, ledger: Ledger, *, busy: threading.Lock | None = None
    ) -> None:
        self._workspace = workspace
        self._ledger = ledger
        self._busy = busy or threading.Lock()
        self._checker = BreachChecker(ledger, workspace.config)
        self.board = StatusBoard(workspace)
        self._handover: HandoverWriter | None = None  # made by the first periodic pass

    @property
    def handover(self) -> HandoverWriter:
        if self._handover is None:
            # openpyxl takes 0.2 s to import: `process`, which never writes the sheet, skips it.
            from .handover import HandoverWriter

            self._handover = HandoverWriter(self._workspace)
        return self._handover

    def after_change(self, now: dt.datetime) -> list[BreachRow]:
        """After a processed file, or once after ``process``: breaches, board, alerts."""
        with self._busy:
            new = self._check_and_show(now)
        self._alert(now)
        return new

    def periodic(self, now: dt.datetime) -> Path | None:
        """The watcher's periodic pass: the same, and the handover sheet when one is due."""
        written = None
        with self._busy:
            self._check_and_show(now)
            try:
                written = self.handover.write_due(self._ledger, now=now)
            except Exception:
                log.exception("生成值班交接单时出错,下一轮再试")
        self._alert(now)
        return written

    def _check_and_show(self, now: dt.datetime) -> list[BreachRow]:
        new: list[BreachRow] = []
        try:
            new = self._checker.check(now)
        except Exception:
            log.exception("检查时限时出错,下一轮再试")
        try:
            self.board.update(self._ledger, now=now)
        except Exception:
            log.exception("更新状态看板时出错,下一轮再试")
        return new

    def _alert(self, now: dt.datetime) -> None:
        """Run the alert command for each breach not alerted yet, once each."""
        config = self._workspace.config
        try:
            with self._busy:
                pending = self._ledger.breaches.unalerted()
            for breach in pending:
                run_alert(breach, config)
                # Marked whatever the result: a broken command must not repeat every pass.
                with self._busy:
                    self._ledger.breaches.mark_alerted(breach.id, now)
        except Exception:
            log.exception("发送超时提醒时出错,下一轮再试")


def keep_up(
    upkeep: Upkeep,
    *,
    clock: Callable[[], dt.datetime],
    stop: threading.Event,
    changed: threading.Event,
    every: float,
    settle: float = 1.0,
) -> None:
    """The watcher's upkeep thread: a pass after files were processed, and every ``every``.

    Files processed in a burst share one pass: after a change the thread lets ``settle``
    seconds of processing go by before it takes the ledger for its pass. A pass reads every
    open form and rewrites the board, so one a file would make a burst of n files cost n²
    (1,000 renamed into inbox/ at once took 139 s with a pass after each). The board is then
    at most ``settle`` seconds behind. The periodic pass (which also writes the handover
    sheet) runs on time even while files keep arriving.
    """
    due = time.monotonic() + every
    while not stop.is_set():
        changed.wait(max(0.0, due - time.monotonic()))
        if stop.is_set():
            return
        if changed.is_set() and stop.wait(min(settle, max(0.0, due - time.monotonic()))):
            return
        changed.clear()
        if time.monotonic() >= due:
            upkeep.periodic(clock())
            due = time.monotonic() + every
        else:
            upkeep.after_change(clock())
