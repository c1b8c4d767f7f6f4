"""The SQLite ledger: forms, an append-only event log, receipts and pending deliveries.

The workbooks stay the documents of record; the ledger is the index that lets the watcher
know each form's step, recognise duplicates, and finish interrupted work after a crash.
Every file's outcome is committed in ONE transaction (receipt + event + form + deliveries),
so a kill at any instant leaves either nothing or everything recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS forms (
    form_no      TEXT PRIMARY KEY,
    order_no     TEXT NOT NULL UNIQUE,
    step         TEXT NOT NULL,
    waiting_on   TEXT,
    step_since   TEXT NOT NULL,
    reported_at  TEXT,
    amount       TEXT,
    created_at   TEXT NOT NULL,
    closed_at    TEXT,
    transitions  INTEGER NOT NULL DEFAULT 0,
    last_sent_sha TEXT,
    snapshot     TEXT NOT NULL            -- canonical field values at the last accepted step (JSON)
);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    form_no    TEXT,
    kind       TEXT NOT NULL,             -- accepted | returned | rejected | duplicate | stale
    from_step  TEXT,
    to_step    TEXT,
    from_role  TEXT,
    to_role    TEXT,
    actor      TEXT,
    stamp      TEXT,                      -- the statistics column this hand-off fills, if any
    file_name  TEXT NOT NULL,
    file_sha   TEXT NOT NULL,
    out_sha    TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS events_form ON events(form_no, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE IF NOT EXISTS sent (
    sha      TEXT NOT NULL,
    form_no  TEXT NOT NULL,
    step     TEXT NOT NULL,
    event_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_sha ON sent(sha);
CREATE TABLE IF NOT EXISTS receipts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha         TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    archive     TEXT NOT NULL,
    event_id    INTEGER NOT NULL,
    state       TEXT NOT NULL             -- committed | delivering (a delivery failed) | done
);
CREATE INDEX IF NOT EXISTS receipts_sha ON receipts(sha);
CREATE TABLE IF NOT EXISTS deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    receipt_id INTEGER NOT NULL,
    source     TEXT NOT NULL,             -- archived copy
    dest       TEXT NOT NULL,             -- where the person finds it
    sha        TEXT NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0
);
-- Every processed file looks up its own deliveries and, at restart, the unfinished receipts:
-- without these, each lookup scans every row the ledger ever recorded.
CREATE INDEX IF NOT EXISTS deliveries_receipt ON deliveries(receipt_id);
CREATE INDEX IF NOT EXISTS receipts_unfinished ON receipts(state) WHERE state != 'done';
"""


def iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def parse_iso(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class FormRow:
    form_no: str
    order_no: str
    step: str
    waiting_on: str | None
    step_since: dt.datetime
    reported_at: dt.datetime | None
    amount: str | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    transitions: int
    last_sent_sha: str | None
    snapshot: dict[str, str]


@dataclass(frozen=True)
class EventRow:
    id: int
    at: dt.datetime
    form_no: str | None
    kind: str
    from_step: str | None
    to_step: str | None
    from_role: str | None
    to_role: str | None
    actor: str | None
    stamp: str | None
    file_name: str
    file_sha: str
    out_sha: str | None
    detail: str | None


@dataclass(frozen=True)
class Receipt:
    id: int
    sha: str
    name: str
    size: int
    mtime_ns: int
    received_at: dt.datetime
    archive: str
    event_id: int
    state: str


@dataclass(frozen=True)
class Delivery:
    id: int
    receipt_id: int
    source: str
    dest: str
    sha: str
    done: bool


@dataclass(frozen=True)
class NewEvent:
    """What one processed file adds to the ledger (see :meth:`Ledger.record`)."""

    at: dt.datetime
    kind: str
    file_name: str
    file_sha: str
    form_no: str | None = None
    from_step: str | None = None
    to_step: str | None = None
    from_role: str | None = None
    to_role: str | None = None
    actor: str | None = None
    stamp: str | None = None
    out_sha: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class FormUpdate:
    """The form's new state after an accepted hand-off."""

    form_no: str
    order_no: str
    step: str
    waiting_on: str | None
    reported_at: dt.datetime | None
    amount: str | None
    snapshot: dict[str, str]
    closed: bool


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, one transaction per file.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a process kill; only a power
        # cut may lose the last commits, and the archive + rebuild covers that.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- reads -------------------------------------------------------------------------
    def form(self, form_no: str) -> FormRow | None:
        row = self._db.execute("SELECT * FROM forms WHERE form_no = ?", (form_no,)).fetchone()
        return _form_row(row) if row else None

    def form_by_order(self, order_no: str) -> FormRow | None:
        row = self._db.execute("SELECT * FROM forms WHERE order_no = ?", (order_no,)).fetchone()
        return _form_row(row) if row else None

    def open_forms(self) -> list[FormRow]:
        rows = self._db.execute(
            "SELECT * FROM forms WHERE closed_at IS NULL ORDER BY step_since, form_no"
        ).fetchall()
        return [_form_row(r) for r in rows]

    def all_forms(self) -> list[FormRow]:
        rows = self._db.execute("SELECT * FROM forms ORDER BY created_at, form_no").fetchall()
        return [_form_row(r) for r in rows]

    def events(self, form_no: str | None = None) -> list[EventRow]:
        if form_no is None:
            rows = self._db.execute("SELECT * FROM events ORDER BY id").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM events WHERE form_no = ? ORDER BY id", (form_no,)
            ).fetchall()
        return [_event_row(r) for r in rows]

    def receipts_for(self, sha: str) -> list[Receipt]:
        rows = self._db.execute("SELECT * FROM receipts WHERE sha = ? ORDER BY id", (sha,))
        return [_receipt(r) for r in rows.fetchall()]

    def unfinished_receipts(self) -> list[Receipt]:
        rows = self._db.execute("SELECT * FROM receipts WHERE state != 'done' ORDER BY id")
        return [_receipt(r) for r in rows.fetchall()]

    def deliveries(self, receipt_id: int) -> list[Delivery]:
        rows = self._db.execute(
            "SELECT * FROM deliveries WHERE receipt_id = ? ORDER BY id", (receipt_id,)
        ).fetchall()
        return [
            Delivery(r["id"], r["receipt_id"], r["source"], r["dest"], r["sha"], bool(r["done"]))
            for r in rows
        ]

    def sent_copy(self, sha: str) -> tuple[str, str] | None:
        """(form_no, step at which it was sent) for a copy the watcher sent out."""
        row = self._db.execute(
            "SELECT form_no, step FROM sent WHERE sha = ? ORDER BY event_id DESC LIMIT 1", (sha,)
        ).fetchone()
        return (row["form_no"], row["step"]) if row else None

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
        receipt: tuple[str, int, int, str],  # (name, size, mtime_ns, archive)
        update: FormUpdate | None,
        deliveries: list[tuple[str, str, str]],  # (source, dest, sha)
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
            name, size, mtime_ns, archive = receipt
            cur = db.execute(
                "INSERT INTO receipts (sha, name, size, mtime_ns, received_at, archive, event_id,"
                " state) VALUES (?,?,?,?,?,?,?, 'committed')",
                (event.file_sha, name, size, mtime_ns, iso(event.at), archive, event_id),
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
            for source, dest, sha in deliveries:
                db.execute(
                    "INSERT INTO deliveries (receipt_id, source, dest, sha) VALUES (?,?,?,?)",
                    (receipt_id, source, dest, sha),
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
                " amount, created_at, closed_at, transitions, last_sent_sha, snapshot)"
                " VALUES (?,?,?,?,?,?,?,?,?,1,?,?)",
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

    def pending_deliveries(self) -> list[Delivery]:
        """Deliveries that failed and wait for a retry (their receipt is ``delivering``)."""
        rows = self._db.execute(
            "SELECT d.* FROM receipts r JOIN deliveries d ON d.receipt_id = r.id"
            " WHERE r.state = 'delivering' AND d.done = 0 ORDER BY d.id"
        ).fetchall()
        return [
            Delivery(r["id"], r["receipt_id"], r["source"], r["dest"], r["sha"], bool(r["done"]))
            for r in rows
        ]


def _form_row(r: sqlite3.Row) -> FormRow:
    return FormRow(
        form_no=r["form_no"],
        order_no=r["order_no"],
        step=r["step"],
        waiting_on=r["waiting_on"],
        step_since=dt.datetime.fromisoformat(r["step_since"]),
        reported_at=parse_iso(r["reported_at"]),
        amount=r["amount"],
        created_at=dt.datetime.fromisoformat(r["created_at"]),
        closed_at=parse_iso(r["closed_at"]),
        transitions=r["transitions"],
        last_sent_sha=r["last_sent_sha"],
        snapshot=json.loads(r["snapshot"]),
    )


def _event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        id=r["id"],
        at=dt.datetime.fromisoformat(r["at"]),
        form_no=r["form_no"],
        kind=r["kind"],
        from_step=r["from_step"],
        to_step=r["to_step"],
        from_role=r["from_role"],
        to_role=r["to_role"],
        actor=r["actor"],
        stamp=r["stamp"],
        file_name=r["file_name"],
        file_sha=r["file_sha"],
        out_sha=r["out_sha"],
        detail=r["detail"],
    )


def _receipt(r: sqlite3.Row) -> Receipt:
    return Receipt(
        id=r["id"],
        sha=r["sha"],
        name=r["name"],
        size=r["size"],
        mtime_ns=r["mtime_ns"],
        received_at=dt.datetime.fromisoformat(r["received_at"]),
        archive=r["archive"],
        event_id=r["event_id"],
        state=r["state"],
    )


# ---- read-only queries for the monthly statistics (reports.py) ------------------------------

# 提交日期 of a form: the 时间 its submitter wrote, else when it was reported, else received.
_SUBMITTED = (
    "COALESCE(NULLIF(json_extract(snapshot, '$.submitted_at'), ''), reported_at, created_at)"
)


def forms_submitted_between(ledger: Ledger, start: dt.date, end: dt.date) -> list[FormRow]:
    """Forms whose 提交日期 falls in ``[start, end)``, in order of that date."""
    rows = ledger._db.execute(
        f"SELECT * FROM forms WHERE {_SUBMITTED} >= ? AND {_SUBMITTED} < ?"
        f" ORDER BY {_SUBMITTED}, form_no",
        (start.isoformat(), end.isoformat()),
    ).fetchall()
    return [_form_row(r) for r in rows]


def accepted_events_between(ledger: Ledger, start: dt.date, end: dt.date) -> list[EventRow]:
    """The accepted hand-offs of the forms :func:`forms_submitted_between` returns, by id."""
    rows = ledger._db.execute(
        "SELECT * FROM events WHERE kind = 'accepted' AND form_no IN"
        f" (SELECT form_no FROM forms WHERE {_SUBMITTED} >= ? AND {_SUBMITTED} < ?)"
        " ORDER BY id",
        (start.isoformat(), end.isoformat()),
    ).fetchall()
    return [_event_row(r) for r in rows]


def months_with_forms(ledger: Ledger) -> list[str]:
    """Every ``YYYY-MM`` in which some form's 提交日期 falls, in order."""
    rows = ledger._db.execute(f"SELECT DISTINCT substr({_SUBMITTED}, 1, 7) FROM forms ORDER BY 1")
    return [r[0] for r in rows.fetchall()]
