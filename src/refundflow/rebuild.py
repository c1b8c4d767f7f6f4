"""``refundflow rebuild``: the ledger is an index; the archive of received files is the truth.

Replaying every archived received file, in the order and at the moment it arrived, through
the same decisions gives back the same forms, steps, numbers and events.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

from .archive import RECEIVED, parse_archive_name
from .breaches import restore_after_rebuild
from .ledger import Ledger
from .processor import Processor
from .sandbox import ParserPool
from .workspace import Workspace

log = logging.getLogger(__name__)


def archived_receipts(sheets: Path) -> list[tuple[dt.datetime, str, Path]]:
    """Every archived received file as (time received, original name, path), oldest first."""
    found = []
    for path in (sheets / "archive" / RECEIVED).glob("*/*"):
        parsed = parse_archive_name(path)
        if parsed is None or path.name.startswith("."):
            continue
        at, sequence, _sha12, name = parsed
        found.append((at, sequence, name, path))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(at, name, path) for at, _seq, name, path in found]


def rebuild_ledger(workspace: Workspace, *, pool: ParserPool) -> tuple[Path | None, int]:
    """Replace the ledger by one rebuilt from the archive; keep the old one as a backup."""
    ledger_path = workspace.ledger_path
    backup: Path | None = None
    if ledger_path.exists():
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        backup = ledger_path.with_name(f"{ledger_path.name}.{stamp}.bak")
        old = sqlite3.connect(ledger_path)
        try:
            old.execute("VACUUM INTO ?", (str(backup),))  # includes what is still in the WAL
        finally:
            old.close()
        for suffix in ("", "-wal", "-shm"):
            ledger_path.with_name(ledger_path.name + suffix).unlink(missing_ok=True)
    # replay() passes each file's own arrival time; the clock is never read while rebuilding.
    processor = Processor(workspace, clock=dt.datetime.now, pool=pool, deliver=False)
    count = 0
    last: dt.datetime | None = None
    try:
        for at, name, path in archived_receipts(workspace.sheets):
            processor.replay(path, at, name)
            count += 1
            last = at
    finally:
        processor.close()
    if last is not None:
        ledger = Ledger(ledger_path)
        try:
            restore_after_rebuild(ledger, workspace.config, now=last, backup=backup)
        finally:
            ledger.close()
    log.info("rebuilt %s from %d archived files", ledger_path, count)
    return backup, count
