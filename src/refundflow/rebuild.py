"""``refundflow rebuild``: the ledger is an index; the archive of received files is the truth.

Replaying every archived received file, in the order it arrived and as of the moment it was
processed, through the same decisions gives back the same forms, steps, numbers and events.

The new ledger is built in a file of its own and renamed over the old one only when complete:
a rebuild killed half way leaves the old ledger as it was, and running it again completes it.

Speed: what depends on a file's bytes alone (the sniff and the sandboxed read, most of the
work) is done ahead, in parallel, by one sandboxed worker a core; the decisions, which need
the ledger as the files before left it, are taken one file after another in arrival order,
and recorded a batch of files to a transaction.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import os
import queue
import re
import shutil
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .archive import (
    ORPHANS,
    RECEIVED,
    SENT,
    _fsync_dir,
    archived_files,
    parse_archive_name,
    safe_name,
    sha256,
)
from .breaches import restore_after_rebuild
from .errors import LedgerError, Reason
from .examine import Examined, examine_archived
from .ledger import Ledger, ledger_errors
from .ledgercheck import interrupted_attempts
from .processor import Processor
from .sandbox import ParserFailed, ParserPool
from .workspace import Workspace
from .zipread import ZipLimits

log = logging.getLogger(__name__)

BUILDING_SUFFIX = ".rebuilding"
_SIDE_FILES = ("", "-wal", "-shm", "-journal")
BATCH_FILES = 500  # files recorded in one ledger transaction
_AHEAD_PER_WORKER = 8  # files read ahead of the replay, per worker: bounded memory

Receipt = tuple[dt.datetime, str, Path]
Track = Callable[[Iterable[Receipt], int], Iterable[Receipt]]
"""Wraps the files as they are replayed, given how many there are (the CLI's progress bar)."""


def read_ahead_workers() -> int:
    """One sandboxed reader a core the process may use (at most 4: the replay is serial)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


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


def rebuild_ledger(
    workspace: Workspace,
    *,
    pool: ParserPool,
    workers: int | None = None,
    track: Track | None = None,
) -> tuple[Path | None, int]:
    """Replace the ledger by one rebuilt from the archive; keep the old one as a backup.

    ``pool`` replays the files a read-ahead worker could not (a parser crash or timeout is
    answered the way the watcher answered it); ``workers`` read ahead (default: one a core,
    0: none).
    """
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
    processor.sent_copies = SentCopies(workspace.sheets)
    count = 0
    last: dt.datetime | None = None
    receipts = []
    for at, name, path in archived_receipts(workspace.sheets):
        if path in interrupted:
            log.info("未重放:%s 仍在 inbox/ 中等待处理", path.name)
        else:
            receipts.append((at, name, path))
    shown = track(receipts, len(receipts)) if track is not None else receipts
    max_bytes = workspace.config.max_file_mb * 1024 * 1024
    try:
        with _ReadAhead(
            workspace, read_ahead_workers() if workers is None else workers, max_bytes
        ) as ahead:
            prepared = ahead.results(shown)
            while True:
                took = 0
                with ledger.batch():
                    for (at, name, path), ready in _take(prepared, BATCH_FILES):
                        # Positional: the crash-safety test wraps replay(self, *args).
                        processor.replay(path, at, name, ready)
                        took += 1
                        last = at
                count += took
                if took < BATCH_FILES:
                    break
        if last is not None:
            _restore_breaches(ledger, workspace, now=last)
        ledger.prepare_for_swap()
    finally:
        processor.close()  # closing the swapped-ready ledger again is harmless
    backup = _set_old_aside(workspace)
    os.replace(building, ledger_path)
    _fsync_dir(ledger_path.parent)
    log.info("已重建账本 %s:重放了 %d 个存档文件", ledger_path, count)
    return backup, count


class SentCopies:
    """Finds the copy archived when a received file was first processed (rebuild's shortcut:
    reading it back costs a fraction of making it again, and it is what people were given).

    The copy of received file R is in ``archive/sent/`` under R's time, the name it was sent
    as (``name`` or ``name (2)``…: the folder decided), and a sequence between R's and the
    next received (or set-aside) file's: a process archives a file's outputs after
    reserving its sequence and before reserving the next one. Only a single such copy whose
    content matches the hash in its name is used (sent copies are not fsynced: a power cut
    may have cut one short); in any other case the copy is made again.
    """

    def __init__(self, sheets: Path) -> None:
        self._copies: dict[str, list[tuple[int, str, Path]]] = {}
        for sequence, path in archived_files(sheets, SENT):
            stamp, _seq, _sha, name = path.name.split("_", 3)
            self._copies.setdefault(stamp, []).append((sequence, _unnumbered(name), path))
        self._bounds = sorted(
            sequence for kind in (RECEIVED, ORPHANS) for sequence, _ in archived_files(sheets, kind)
        )

    def __call__(self, received: Path, at: dt.datetime, name: str) -> bytes | None:
        parsed = parse_archive_name(received)
        if parsed is None:
            return None
        after = parsed[1]
        i = bisect.bisect_right(self._bounds, after)
        before = self._bounds[i] if i < len(self._bounds) else None
        wanted = safe_name(name)
        found = [
            path
            for sequence, sent_as, path in self._copies.get(at.strftime("%Y%m%dT%H%M%S"), [])
            if sent_as == wanted and sequence > after and (before is None or sequence < before)
        ]
        if len(found) != 1:
            return None
        data = found[0].read_bytes()
        if sha256(data)[:12] != found[0].name.split("_", 3)[2]:
            log.warning("存档副本 %s 与其哈希不符:重新生成", found[0].name)
            return None
        return data


def _unnumbered(name: str) -> str:
    """``x (2).xlsx`` -> ``x.xlsx``: the name before a taken one was numbered (archive.numbered)."""
    return re.sub(r" \(\d+\)(\.[^.]*)$", r"\1", name)


class _ReadAhead:
    """Sniff and read the next files in sandboxed workers while earlier ones are replayed."""

    def __init__(self, workspace: Workspace, workers: int, max_bytes: int) -> None:
        config = workspace.config
        self._max_bytes = max_bytes
        self._limits = ZipLimits.for_max_file_mb(config.max_file_mb)
        self._pools: queue.SimpleQueue[ParserPool] = queue.SimpleQueue()
        self._all = [
            ParserPool(memory_mb=config.parse_memory_mb, timeout=config.parse_timeout_seconds)
            for _ in range(workers)
        ]
        for p in self._all:
            self._pools.put(p)
        self._threads = ThreadPoolExecutor(workers) if workers else None

    def __enter__(self) -> _ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._threads is not None:
            self._threads.shutdown(cancel_futures=True)
        for p in self._all:
            p.close()

    def _prepare(self, path: Path, name: str) -> Examined | None:
        pool = self._pools.get()
        try:
            return pool.run(examine_archived, path, name, self._limits, self._max_bytes)
        except ParserFailed:
            return None  # crashed or timed out: replayed the ordinary way, in order
        finally:
            self._pools.put(pool)

    def results(self, receipts: Iterable[Receipt]) -> Iterator[tuple[Receipt, Examined | None]]:
        """Each receipt in order with what was read ahead for it (None: read it in turn)."""
        if self._threads is None:
            for receipt in receipts:
                yield receipt, None
            return
        window: deque[tuple[Receipt, Future[Examined | None]]] = deque()
        ahead = _AHEAD_PER_WORKER * len(self._all)
        for receipt in receipts:
            window.append((receipt, self._threads.submit(self._prepare, receipt[2], receipt[1])))
            if len(window) >= ahead:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def _take(
    items: Iterator[tuple[Receipt, Examined | None]], count: int
) -> Iterator[tuple[Receipt, Examined | None]]:
    for _ in range(count):
        item = next(items, None)
        if item is None:
            return
        yield item


def _restore_breaches(ledger: Ledger, workspace: Workspace, *, now: dt.datetime) -> None:
    """The rebuilt ledger keeps the breaches (and their alerts) the old one recorded.

    The archive cannot say when a breach was found or whether it was alerted; a damaged or
    missing old ledger gives none, and the breaches are derived from the history instead.
    """
    old = workspace.ledger_path if workspace.ledger_path.exists() else None
    try:
        restore_after_rebuild(ledger, workspace.config, now=now, backup=old)
    except sqlite3.DatabaseError as exc:
        log.warning("旧账本中的超时记录无法读取(%s):重新推算", exc)
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
        log.warning("旧账本无法读取(%s):原样保留为 %s", exc.message, backup)
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
