"""The Ledger: one SQLite file, one transaction per processed file.

Forms, the append-only event log, receipts and pending deliveries; the breaches and the
statistics queries are handed out as :attr:`Ledger.breaches` and :attr:`Ledger.stats`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..archive import next_sequence
from .breachlog import BreachLog
from .failures import ledger_errors
from .rows import (
    AnsweredFile,
    Delivery,
    EventRow,
    FormRow,
    FormUpdate,
    GivenCopy,
    NewEvent,
    NewReceipt,
    PlannedDelivery,
    Receipt,
    ReturnedNew,
    SentCopy,
    delivery_row,
    event_row,
    form_row,
    iso,
    receipt_row,
)
from .schema import ARRIVAL, START_BUSY_MS, create_and_migrate
from .stats import StatsQueries


class Ledger:
    """The workspace's ledger file, opened (created, migrated) once per process."""

    def __init__(self, path: Path, *, root: Path | None = None) -> None:
        """``root``: the workspace, named in the messages that say how to rebuild."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._root = root
        self._batched = False  # inside batch(): transactions are savepoints of one
        with ledger_errors(path, root):
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, one transaction per file.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA busy_timeout=10000")
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a committed transaction survives a process kill; only a
                # power cut may lose the last commits, and the archive + rebuild covers that.
                self._db.execute("PRAGMA synchronous=NORMAL")
                create_and_migrate(self._db, self.transaction)
            except BaseException:
                self._db.close()
                raise
        self.breaches = BreachLog(self._db, self.transaction)
        self.stats = StatsQueries(self._db)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._batched:
            with ledger_errors(self.path, self._root):
                self._db.execute("SAVEPOINT one")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO one")
                    self._db.execute("RELEASE one")
                    raise
                self._db.execute("RELEASE one")
            return
        with ledger_errors(self.path, self._root):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Commit every transaction inside as one (``rebuild``: a commit a file is most of
        the cost of recording it). Each still applies whole or not at all, as a savepoint."""
        with self.transaction():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    # ---- trust -------------------------------------------------------------------------
    def verify(self) -> None:
        """Fail with LEDGER_CORRUPT / LEDGER_BUSY unless every page reads back consistent.

        Also takes and gives back the write lock once, with a short wait, so that a ledger
        another program holds locked is said at start, not after the first file's timeout.
        """
        with ledger_errors(self.path, self._root):
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
            self._db.execute(f"PRAGMA busy_timeout={START_BUSY_MS}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
            finally:
                self._db.execute("PRAGMA busy_timeout=10000")

    def arrival_mark(self) -> int | None:
        """The highest arrival sequence reserved, or None for a ledger that never had one."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (ARRIVAL,)).fetchone()
        return int(row[0]) if row else None

    def set_arrival_mark(self, value: int) -> None:
        """Raise the mark to ``value`` (never lower it)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                (ARRIVAL, value),
            )

    def reserve_arrival(self) -> int:
        """The next arrival sequence, committed before the received file is archived under it.

        Strictly increasing whatever the clock does: above the last one reserved in this
        ledger, even after a restart with the clock set back.
        """
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (ARRIVAL,)).fetchone()
            sequence = next_sequence(int(row[0]) if row else 0)
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (ARRIVAL, sequence),
            )
        return sequence

    def has_receipts(self) -> bool:
        return self._db.execute("SELECT 1 FROM receipts LIMIT 1").fetchone() is not None

    def prepare_for_swap(self) -> None:
        """Fold the WAL into the main file and leave rollback mode, then close.

        A ledger file is only renamed over or away as a single file: a WAL left beside a
        different main file would be applied to it.
        """
        with ledger_errors(self.path, self._root):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.close()

    # ---- reads -------------------------------------------------------------------------
    def form(self, form_no: str) -> FormRow | None:
        row = self._db.execute("SELECT * FROM forms WHERE form_no = ?", (form_no,)).fetchone()
        return form_row(row) if row else None

    def form_by_order(self, order_no: str) -> FormRow | None:
        """The newest form of an order (an order may have an earlier one closed as returned)."""
        row = self._db.execute(
            "SELECT * FROM forms WHERE order_no = ? ORDER BY created_at DESC, form_no DESC LIMIT 1",
            (order_no,),
        ).fetchone()
        return form_row(row) if row else None

    def open_forms(self) -> list[FormRow]:
        rows = self._db.execute(
            "SELECT * FROM forms WHERE closed_at IS NULL ORDER BY step_since, form_no"
        ).fetchall()
        return [form_row(r) for r in rows]

    def forms_active_since(self, since: dt.datetime) -> list[FormRow]:
        """Open forms, and closed ones that moved at or after ``since``: the breach check's
        scope."""
        rows = self._db.execute(
            "SELECT * FROM forms WHERE closed_at IS NULL OR step_since >= ?"
            " ORDER BY step_since, form_no",
            (iso(since),),
        ).fetchall()
        return [form_row(r) for r in rows]

    def all_forms(self) -> list[FormRow]:
        rows = self._db.execute("SELECT * FROM forms ORDER BY created_at, form_no").fetchall()
        return [form_row(r) for r in rows]

    def events(self, form_no: str | None = None) -> list[EventRow]:
        if form_no is None:
            rows = self._db.execute("SELECT * FROM events ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM events WHERE form_no = ? ORDER BY id", (form_no,)
            ).fetchall()
        return [event_row(r) for r in rows]

    def returned_new_forms(self) -> list[ReturnedNew]:
        """Every returned new form, oldest first (``form_no IS NULL`` uses the events index)."""
        rows = self._db.execute(
            "SELECT e.at, e.file_name, e.detail, d.dest FROM events e"
            " JOIN receipts r ON r.event_id = e.id JOIN deliveries d ON d.receipt_id = r.id"
            " WHERE e.form_no IS NULL AND e.kind = 'returned' AND e.from_step = 'new'"
            " ORDER BY e.id, d.id"
        ).fetchall()
        return [
            ReturnedNew(dt.datetime.fromisoformat(r["at"]), r["file_name"], r["dest"], r["detail"])
            for r in rows
        ]

    def answered_between(
        self, kinds: tuple[str, ...], start: dt.datetime, end: dt.datetime
    ) -> list[AnsweredFile]:
        """Files answered by events of ``kinds`` in [start, end), in order, each with its first
        delivery (one read: ``at`` is ISO text, so the range uses the events index)."""
        marks = ", ".join("?" for _ in kinds)
        rows = self._db.execute(
            "SELECT e.id, e.at, e.kind, e.file_name, e.detail, d.dest FROM events e"
            " LEFT JOIN receipts r ON r.event_id = e.id"
            " LEFT JOIN deliveries d ON d.receipt_id = r.id"
            f" WHERE e.at >= ? AND e.at < ? AND e.kind IN ({marks}) ORDER BY e.id, d.id",
            (iso(start), iso(end), *kinds),
        ).fetchall()
        seen: dict[int, AnsweredFile] = {}
        for r in rows:
            if r["id"] not in seen:
                at = dt.datetime.fromisoformat(r["at"])
                seen[r["id"]] = AnsweredFile(at, r["kind"], r["file_name"], r["dest"], r["detail"])
        return list(seen.values())

    def receipts_for(self, sha: str) -> list[Receipt]:
        rows = self._db.execute("SELECT * FROM receipts WHERE sha = ? ORDER BY id", (sha,))
        return [receipt_row(r) for r in rows.fetchall()]

    def unfinished_receipts(self) -> list[Receipt]:
        rows = self._db.execute("SELECT * FROM receipts WHERE state != 'done' ORDER BY id")
        return [receipt_row(r) for r in rows.fetchall()]

    def deliveries(self, receipt_id: int) -> list[Delivery]:
        rows = self._db.execute(
            "SELECT * FROM deliveries WHERE receipt_id = ? ORDER BY id", (receipt_id,)
        ).fetchall()
        return [delivery_row(r) for r in rows]

    def sent_copy(self, sha: str) -> SentCopy | None:
        """The form and step of a copy the watcher sent out (None: not one of ours)."""
        row = self._db.execute(
            "SELECT form_no, step FROM sent WHERE sha = ? ORDER BY event_id DESC LIMIT 1", (sha,)
        ).fetchone()
        return SentCopy(row["form_no"], row["step"]) if row else None

    def is_delivery_source(self, archived: str) -> bool:
        """Whether a delivery was planned from this archived copy (only used at restart)."""
        row = self._db.execute("SELECT 1 FROM deliveries WHERE source = ? LIMIT 1", (archived,))
        return row.fetchone() is not None

    def archived_names(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT archive FROM receipts")}

    def forms_created_on(self, prefix: str) -> int:
        """How many form numbers start with ``prefix`` (e.g. ``TKD20261123-``).

        A range over the primary key rather than ``LIKE``, which SQLite answers by scanning
        every form ever recorded.
        """
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first string past the prefix
        row = self._db.execute(
            "SELECT COUNT(*) FROM forms WHERE form_no >= ? AND form_no < ?", (prefix, after)
        ).fetchone()
        return int(row[0])

    # ---- writes --------------------------------------------------------------------------
    def record(
        self,
        *,
        event: NewEvent,
        receipt: NewReceipt,
        update: FormUpdate | None,
        deliveries: list[PlannedDelivery],
        sent_shas: list[str],
    ) -> int:
        """Commit everything one processed file changes, atomically. Returns the receipt id."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO events (at, form_no, kind, from_step, to_step, from_role, to_role,"
                " actor, stamp, file_name, file_sha, out_sha, detail)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    iso(event.at),
                    event.form_no,
                    event.kind,
                    event.from_step,
                    event.to_step,
                    event.from_role,
                    event.to_role,
                    event.actor,
                    event.stamp,
                    event.file_name,
                    event.file_sha,
                    event.out_sha,
                    event.detail,
                ),
            )
            event_id = int(cur.lastrowid or 0)
            cur = db.execute(
                "INSERT INTO receipts (sha, name, size, mtime_ns, received_at, archive, event_id,"
                " state) VALUES (?,?,?,?,?,?,?, 'committed')",
                (
                    event.file_sha,
                    receipt.name,
                    receipt.size,
                    receipt.mtime_ns,
                    iso(event.at),
                    receipt.archive,
                    event_id,
                ),
            )
            receipt_id = int(cur.lastrowid or 0)
            if update is not None:
                self._upsert_form(db, update, event)
            for sha in sent_shas:
                if update is not None:
                    db.execute(
                        "INSERT INTO sent (sha, form_no, step, event_id) VALUES (?,?,?,?)",
                        (sha, update.form_no, update.step, event_id),
                    )
            for delivery in deliveries:
                db.execute(
                    "INSERT INTO deliveries (receipt_id, source, dest, sha) VALUES (?,?,?,?)",
                    (receipt_id, delivery.source, delivery.dest, delivery.sha),
                )
        return receipt_id

    def _upsert_form(self, db: sqlite3.Connection, update: FormUpdate, event: NewEvent) -> None:
        snapshot = json.dumps(update.snapshot, ensure_ascii=False, sort_keys=True)
        closed_at = iso(event.at) if update.closed else None
        if db.execute("SELECT 1 FROM forms WHERE form_no = ?", (update.form_no,)).fetchone():
            db.execute(
                "UPDATE forms SET step=?, waiting_on=?, step_since=?, snapshot=?, closed_at=?,"
                " transitions = transitions + 1, last_sent_sha=? WHERE form_no=?",
                (
                    update.step,
                    update.waiting_on,
                    iso(event.at),
                    snapshot,
                    closed_at,
                    event.out_sha,
                    update.form_no,
                ),
            )
        else:
            db.execute(
                "INSERT INTO forms (form_no, order_no, step, waiting_on, step_since, reported_at,"
                " amount, created_at, closed_at, transitions, last_sent_sha, snapshot, supersedes)"
                " VALUES (?,?,?,?,?,?,?,?,?,1,?,?,?)",
                (
                    update.form_no,
                    update.order_no,
                    update.step,
                    update.waiting_on,
                    iso(event.at),
                    iso(update.reported_at),
                    update.amount,
                    iso(event.at),
                    closed_at,
                    event.out_sha,
                    snapshot,
                    update.supersedes,
                ),
            )

    def finish_receipt(self, receipt_id: int, delivered: list[int], *, complete: bool) -> None:
        """Mark ``delivered`` done; the receipt is ``done`` when ``complete``, else
        ``delivering`` (the file is out of the inbox, some deliveries wait for a retry)."""
        with self.transaction() as db:
            db.executemany("UPDATE deliveries SET done = 1 WHERE id = ?", [(i,) for i in delivered])
            db.execute(
                "UPDATE receipts SET state = ? WHERE id = ?",
                ("done" if complete else "delivering", receipt_id),
            )

    def form_copies(self, form_no: str) -> list[GivenCopy]:
        """Every copy of the form given to a person, newest first."""
        rows = self._db.execute(
            "SELECT d.dest, d.sha FROM events e JOIN receipts r ON r.event_id = e.id"
            " JOIN deliveries d ON d.receipt_id = r.id"
            " WHERE e.form_no = ? AND e.kind IN ('accepted', 'returned') ORDER BY d.id DESC",
            (form_no,),
        ).fetchall()
        return [GivenCopy(r["dest"], r["sha"]) for r in rows]

    def pending_deliveries(self) -> list[Delivery]:
        """Deliveries that failed and wait for a retry (their receipt is ``delivering``)."""
        rows = self._db.execute(
            "SELECT d.* FROM receipts r JOIN deliveries d ON d.receipt_id = r.id"
            " WHERE r.state = 'delivering' AND d.done = 0 ORDER BY d.id"
        ).fetchall()
        return [delivery_row(r) for r in rows]
