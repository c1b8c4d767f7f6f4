"""Opening the ledger only when it can be the record of the archive it indexes.

The archive of received files is the truth and the ledger its index. A ledger that was
deleted, emptied, damaged, restored from an old backup or lost its last commits must stop the
tool: taken for a new one it would set received files aside as orphans and give new customers
form numbers already in use. ``refundflow rebuild`` makes a trustworthy one from the archive.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

from .archive import RECEIVED, archived_files, parse_archive_name, safe_name, sha256
from .errors import LedgerError, Reason
from .ledger import Ledger, rebuild_hint
from .workspace import Workspace

log = logging.getLogger(__name__)


def open_ledger(workspace: Workspace) -> Ledger:
    """The workspace's ledger, checked against its received archive (LedgerError if not).

    A brand-new workspace (nothing received yet) gets a new ledger.
    """
    path = workspace.ledger_path
    # Listed before the ledger's mark is read: a file archived meanwhile by a running watcher
    # had its sequence reserved (committed) before it was written, so the mark covers it.
    received = archived_files(workspace.sheets, RECEIVED)
    hint = rebuild_hint(workspace.root)
    if received and (not path.exists() or path.stat().st_size == 0):
        what = "找不到账本文件" if not path.exists() else "账本文件是空的"
        raise LedgerError(
            f"{what} {path},但存档中已有 {len(received)} 个收到的文件;"
            "不能当作新账本从头开始(会把已发出的编号再发一次)",
            reason=Reason.LEDGER_MISSING if not path.exists() else Reason.LEDGER_EMPTY,
            hint=hint,
        )
    ledger = Ledger(path, root=workspace.root)
    try:
        ledger.verify()
        _check_arrivals(ledger, received, workspace, hint)
    except BaseException:
        ledger.close()
        raise
    return ledger


def _check_arrivals(
    ledger: Ledger, received: list[tuple[int, Path]], workspace: Workspace, hint: str
) -> None:
    mark = ledger.arrival_mark()
    # A ledger from before marks existed is taken up as the record of what is archived now;
    # the check below still refuses it if it misses files it should know.
    first_mark = mark is None
    if mark is None:
        mark = received[-1][0] if received else 0
    lost = [
        (sequence, path)
        for sequence, path in unrecorded(ledger, received, workspace.sheets)
        if sequence > mark or not _still_in_inbox(path, workspace.inbox)
    ]
    if lost:
        # Looked at again: a watcher running meanwhile (status takes no lock) may have just
        # committed a file and taken it out of the inbox; its commit is visible by now.
        lost = unrecorded(ledger, lost, workspace.sheets)
    if lost:
        raise _behind(ledger, [path for _, path in lost], hint)
    if first_mark:
        ledger.set_arrival_mark(mark)
        log.info("账本 %s:已按存档设定到达序号", ledger.path)


def interrupted_attempts(workspace: Workspace) -> set[Path]:
    """Received copies a kill left uncommitted (their file still waits in the inbox).

    By the workspace ledger's own account, so ``rebuild`` does not replay them: the inbox
    file is processed, and answered, by the next run. Empty when the ledger is missing,
    damaged or from before arrival marks: nothing then tells them from files it lost.
    """
    path = workspace.ledger_path
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    try:
        ledger = Ledger(path, root=workspace.root)
    except LedgerError:
        return set()
    try:
        mark = ledger.arrival_mark()
        if mark is None:
            return set()
        received = archived_files(workspace.sheets, RECEIVED)
        return {
            p
            for sequence, p in unrecorded(ledger, received, workspace.sheets)
            if sequence <= mark and _still_in_inbox(p, workspace.inbox)
        }
    except sqlite3.DatabaseError:
        return set()
    finally:
        ledger.close()


def unrecorded(
    ledger: Ledger, received: list[tuple[int, Path]], sheets: Path
) -> list[tuple[int, Path]]:
    """The archived received files (sequence, path) the ledger has no receipt for."""
    known = ledger.archived_names()
    return [(seq, p) for seq, p in received if str(p.relative_to(sheets)) not in known]


def _still_in_inbox(archived: Path, inbox: Path) -> bool:
    """Whether the file archived at ``archived`` still waits in the inbox, unchanged.

    That is what a kill between archiving and committing leaves (the inbox file is removed
    only after the commit); a file that was answered and taken out of the inbox but is not
    in the ledger means the ledger lost that commit.
    """
    parsed = parse_archive_name(archived)
    if parsed is None or not inbox.is_dir():
        return False
    _at, _sequence, sha12, name = parsed
    for candidate in inbox.iterdir():
        if safe_name(candidate.name) != name or not candidate.is_file():
            continue
        with contextlib.suppress(OSError):
            if sha256(candidate.read_bytes())[:12] == sha12:
                return True
    return False


def _behind(ledger: Ledger, newer: list[Path], hint: str) -> LedgerError:
    if not ledger.has_receipts():
        what = f"账本 {ledger.path} 里没有任何记录"
        reason = Reason.LEDGER_EMPTY
    else:
        what = f"账本 {ledger.path} 比存档旧"
        reason = Reason.LEDGER_BEHIND
    first = parse_archive_name(newer[0])
    example = f"(最早的一个:{first[3]},{first[0]:%Y-%m-%d %H:%M} 收到)" if first else ""
    return LedgerError(
        f"{what}:存档中有 {len(newer)} 个收到的文件账本里没有{example}。"
        "账本可能被删除、被换成旧的备份或丢失了最近的记录,照它继续会重复发放编号",
        reason=reason,
        hint=hint,
    )
