"""Cleaning up after a run that was killed: nothing half-done stays, nothing done is lost.

Called by :meth:`Processor.recover` at start, under the workspace lock, before any file is
processed: entries a killed run held aside in the inbox go back (or go, when their outcome
was committed), temporaries of interrupted writes are removed where only we write, and the
archive copies of an attempt killed before its commit are set aside (its file is still in
the inbox and is processed again).
"""

from __future__ import annotations

import logging
import os

from .archive import ORPHANS, RECEIVED, SENT, archived_files, remove_partial_writes
from .inboxfile import HOLD_SUFFIX, EntryKind, kind_of, original_name, put_back, sha256_of
from .ledger import Ledger
from .ledgercheck import unrecorded
from .workspace import Workspace

log = logging.getLogger(__name__)


def release_held_files(ws: Workspace, ledger: Ledger) -> None:
    """Entries a killed run had renamed aside in the inbox: done ones go, others come back."""
    for hold in ws.inbox.glob(f".*{HOLD_SUFFIX}"):
        original = ws.inbox / original_name(hold)
        try:
            # Only a plain file is ever read: a held link or FIFO simply goes back.
            regular = kind_of(os.lstat(hold)) is EntryKind.FILE
            done = regular and any(
                r.state != "committed" for r in ledger.receipts_for(sha256_of(hold))
            )
            if done:
                hold.unlink()
            else:
                put_back(hold, original)
        except OSError as exc:
            log.warning("无法放回收件箱中暂存的 %s:%s", hold.name, exc)


def remove_partial_writes_of(ws: Workspace) -> None:
    # Only where place_new writes: never the inbox, which holds what people dropped.
    folders = [
        *(folder for folder in ws.folders() if folder != ws.inbox),
        *(ws.sheets / "archive").glob("*/*"),
        *(ws.sheets / "归档").glob("*"),
    ]
    for folder in folders:
        try:
            if folder.is_dir() and remove_partial_writes(folder):
                log.info("已清理 %s 中上次中断留下的未写完文件", folder)
        except OSError as exc:  # an unwritable folder must not stop the start-up
            log.warning("无法清理 %s 中中断时留下的临时文件:%s", folder, exc)


def set_aside_orphans(ws: Workspace, ledger: Ledger) -> None:
    # open_ledger() made sure that each received copy the ledger does not know is an
    # attempt a kill interrupted before its commit, whose file is still in the inbox and is
    # processed again (its month follows --now, so every month is looked at). The copies
    # that attempt archived as sent were never delivered: their numbers were not given.
    sheets = ws.sheets
    received = archived_files(sheets, RECEIVED)
    orphans = unrecorded(ledger, received, sheets)
    if not orphans:
        return
    first = min(sequence for sequence, _ in orphans)
    sent = [
        path
        for sequence, path in archived_files(sheets, SENT)
        if sequence > first and not ledger.is_delivery_source(str(path.relative_to(sheets)))
    ]
    for path in [*(p for _, p in orphans), *sent]:
        target = sheets / "archive" / ORPHANS / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        log.info("已移开未提交的存档副本 %s", path.name)
