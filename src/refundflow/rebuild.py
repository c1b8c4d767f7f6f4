"""``refundflow rebuild``: the ledger is an index; the archive of received files is the truth.

Replaying every archived received file, in the order it arrived and as of the moment it was
processed, through the same decisions gives back the same forms, steps, numbers and events.

The new ledger is built in a file of its own and renamed over the old one only when complete:
a rebuild killed half way leaves the old ledger as it was, and running it again completes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sqlite3
from pathlib import Path

from .archive import ORPHANS, RECEIVED, SENT, _fsync_dir, archived_files, parse_archive_name
from .breaches import restore_after_rebuild
from .errors import LedgerError, Reason
from .ledger import Ledger, ledger_errors
from .ledgercheck import interrupted_attempts
from .processor import Processor
from .sandbox import ParserPool
from .workspace import Workspace

log = logging.getLogger(__name__)

BUILDING_SUFFIX = ".rebuilding"
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def archived_receipts(sheets: Path) -> list[tuple[dt.datetime, str, Path]]:
    """Every archived received file as (time processed, original name, path), in arrival order.

    Arrival order is the sequence recorded in the name, not the time: the clock (or --now)
    may have gone back between two files.
    """
    found = []
    for _sequence, path in archived_files(sheets, RECEIVED):
        parsed = parse_archive_name(path)
        assert parsed is not None  # archived_files keeps only names it can parse
        found.append((parsed[0], parsed[3], path))
    return found


def rebuild_ledger(workspace: Workspace, *, pool: ParserPool) -> tuple[Path | None, int]:
    """Replace the ledger by one rebuilt from the archive; keep the old one as a backup."""
    ledger_path = workspace.ledger_path
    building = ledger_path.with_name(ledger_path.name + BUILDING_SUFFIX)
    _remove_database(building)  # what a rebuild killed half way left
    interrupted = interrupted_attempts(workspace)  # their inbox files are processed next run
    ledger = Ledger(building, root=workspace.root)
    # Sequences given from now on must stay above every one in the archive.
    ledger.set_arrival_mark(
        max(
            (
                seq
                for kind in (RECEIVED, SENT, ORPHANS)
                for seq, _ in archived_files(workspace.sheets, kind)
            ),
            default=0,
        )
    )
    # replay() passes each file's own arrival time; the clock is never read while rebuilding.
    processor = Processor(workspace, clock=dt.datetime.now, pool=pool, deliver=False, ledger=ledger)
    count = 0
    last: dt.datetime | None = None
    try:
        for at, name, path in archived_receipts(workspace.sheets):
            if path in interrupted:
                log.info("not replayed: %s, still waiting in inbox/", path.name)
                continue
            processor.replay(path, at, name)
            count += 1
            last = at
        if last is not None:
            _restore_breaches(ledger, workspace, now=last)
        ledger.prepare_for_swap()
    finally:
        processor.close()  # closing the swapped-ready ledger again is harmless
    backup = _set_old_aside(workspace)
    os.replace(building, ledger_path)
    _fsync_dir(ledger_path.parent)
    log.info("rebuilt %s from %d archived files", ledger_path, count)
    return backup, count


def _restore_breaches(ledger: Ledger, workspace: Workspace, *, now: dt.datetime) -> None:
    """The rebuilt ledger keeps the breaches (and their alerts) the old one recorded.

    The archive cannot say when a breach was found or whether it was alerted; a damaged or
    missing old ledger gives none, and the breaches are derived from the history instead.
    """
    old = workspace.ledger_path if workspace.ledger_path.exists() else None
    try:
        restore_after_rebuild(ledger, workspace.config, now=now, backup=old)
    except sqlite3.DatabaseError as exc:
        log.warning("breaches of the old ledger could not be read (%s): derived again", exc)
        restore_after_rebuild(ledger, workspace.config, now=now, backup=None)


def _set_old_aside(workspace: Workspace) -> Path | None:
    """Back the old ledger up and make it a single file that can be renamed over.

    A readable ledger is copied with VACUUM INTO (which includes what is still in its WAL)
    and its WAL folded in by SQLite itself, so a kill at any moment leaves it whole. A damaged
    one is copied byte for byte, WAL included, and its WAL removed: it is not used again.
    """
    path = workspace.ledger_path
    if not path.exists():
        return None
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    for n in range(2, 10_000):  # two rebuilds in one second: never replace a backup
        if not any(Path(f"{backup}{suffix}").exists() for suffix in _SIDE_FILES):
            break
        backup = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    try:
        with ledger_errors(path, workspace.root):
            old = sqlite3.connect(path, isolation_level=None)
            try:
                old.execute("PRAGMA busy_timeout=3000")
                old.execute("PRAGMA quick_check").fetchall()
                old.execute("VACUUM INTO ?", (str(backup),))
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                old.execute("PRAGMA journal_mode=DELETE")
            finally:
                old.close()
    except LedgerError as exc:
        if exc.reason is Reason.LEDGER_BUSY:
            raise
        log.warning("old ledger unreadable (%s): kept byte for byte as %s", exc.message, backup)
        backup.unlink(missing_ok=True)
        for suffix in _SIDE_FILES:
            side = Path(f"{path}{suffix}")
            if side.exists():
                shutil.copyfile(side, Path(f"{backup}{suffix}"))
        for suffix in _SIDE_FILES[1:]:
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return backup


def _remove_database(path: Path) -> None:
    for suffix in _SIDE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
