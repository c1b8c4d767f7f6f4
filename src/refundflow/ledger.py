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
from enum import StrEnum
from pathlib import Path

from .archive import next_sequence
from .errors import LedgerError, Reason

SCHEMA = """
CREATE TABLE IF NOT EXISTS forms (
    form_no      TEXT PRIMARY KEY,
    order_no     TEXT NOT NULL,             -- one open form per order: see form_by_order
    step         TEXT NOT NULL,
    waiting_on   TEXT,
    step_since   TEXT NOT NULL,
    reported_at  TEXT,
    amount       TEXT,
    created_at   TEXT NOT NULL,
    closed_at    TEXT,
    transitions  INTEGER NOT NULL DEFAULT 0,
    last_sent_sha TEXT,
    snapshot     TEXT NOT NULL,           -- canonical field values at the last accepted step (JSON)
    supersedes   TEXT                     -- the earlier form of the same order, closed as returned
);
CREATE INDEX IF NOT EXISTS forms_order ON forms(order_no, created_at);
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    form_no    TEXT,
    kind       TEXT NOT NULL,             -- EventKind: accepted | returned | rejected | duplicate
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
-- A form's copies in people's folders: events by form, then their receipts' deliveries.
CREATE INDEX IF NOT EXISTS receipts_event ON receipts(event_id);
-- arrival_seq: the highest arrival sequence handed out (Ledger.reserve_arrival). Every
-- received file is archived under a sequence reserved here first, so an archived file above
-- it proves the ledger is older than the archive (deleted, restored from a backup, or lost
-- commits), while one at or below it with no receipt is an attempt a kill interrupted.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Each time limit of the procedure a form overran (see breaches.py): recorded once, when it is
-- first seen, whether or not the step is done later, with the role the form waited on, so
-- administration's 绩效登记 and the monthly 超时 sheet can rely on it. alerted_at is set once the
-- configured alert command has been run for it (NULL: not yet).
CREATE TABLE IF NOT EXISTS breaches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    form_no     TEXT NOT NULL,
    kind        TEXT NOT NULL,             -- fill | forward | finance | refund | overall
    started     TEXT NOT NULL,             -- when the limit began to run
    due         TEXT NOT NULL,
    waited_on   TEXT,                      -- role key holding the form when it fell due
    step        TEXT NOT NULL,             -- the form's step when it fell due
    detected_at TEXT NOT NULL,
    alerted_at  TEXT,
    UNIQUE (form_no, kind)
);
CREATE INDEX IF NOT EXISTS breaches_unalerted ON breaches(id) WHERE alerted_at IS NULL;
"""
ARRIVAL = "arrival_seq"
# Waiting this long for another program's write lock at start is enough to tell "busy" from
# "locked by someone": our own processes never hold it long, and they hold the workspace lock.
START_BUSY_MS = 3000


class EventKind(StrEnum):
    """What happened to one received file (events.kind)."""

    ACCEPTED = "accepted"  # the form moved on (or closed)
    RETURNED = "returned"  # a form with problems went back to whoever must fix them
    REJECTED = "rejected"  # not a form we can take: outbox/rejected/ with a reason
    DUPLICATE = "duplicate"  # the very same bytes again


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
    supersedes: str | None = None  # the order's earlier form, closed as returned


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
    supersedes: str | None = None  # the order's earlier form, closed as returned


class Ledger:
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
                self._db.executescript(SCHEMA)
                self._migrate()
            except BaseException:
                self._db.close()
                raise

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        """Bring a ledger written by an earlier version up to this schema, in place.

        Forms once held a UNIQUE order number; a new form for an order whose form was closed
        as returned is now allowed (and linked by ``supersedes``).
        """
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(forms)")}
        (sql,) = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'forms'"
        ).fetchone()
        if "supersedes" in columns and "UNIQUE" not in sql:
            return
        with self.transaction() as db:
            kept = ", ".join(sorted(columns - {"supersedes"}))
            db.execute("ALTER TABLE forms RENAME TO forms_before_migration")
            db.execute("DROP INDEX IF EXISTS forms_order")
            create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS forms") :]
            create = create[: create.index(");") + 2]
            db.execute(create)
            db.execute(f"INSERT INTO forms ({kept}) SELECT {kept} FROM forms_before_migration")
            db.execute("DROP TABLE forms_before_migration")
            db.execute("CREATE INDEX IF NOT EXISTS forms_order ON forms(order_no, created_at)")

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
        return _form_row(row) if row else None

    def form_by_order(self, order_no: str) -> FormRow | None:
        """The newest form of an order (an order may have an earlier one closed as returned)."""
        row = self._db.execute(
            "SELECT * FROM forms WHERE order_no = ? ORDER BY created_at DESC, form_no DESC LIMIT 1",
            (order_no,),
        ).fetchone()
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

    def form_copies(self, form_no: str) -> list[tuple[str, str]]:
        """(dest, sha) of every copy of the form given to a person, newest first."""
        rows = self._db.execute(
            "SELECT d.dest, d.sha FROM events e JOIN receipts r ON r.event_id = e.id"
            " JOIN deliveries d ON d.receipt_id = r.id"
            " WHERE e.form_no = ? AND e.kind IN ('accepted', 'returned') ORDER BY d.id DESC",
            (form_no,),
        ).fetchall()
        return [(r["dest"], r["sha"]) for r in rows]

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
        supersedes=r["supersedes"],
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


@contextmanager
def ledger_errors(path: Path, root: Path | None = None) -> Iterator[None]:
    """SQLite's failures as LedgerError with a message staff can act on."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise ledger_error(path, exc, root) from exc


def rebuild_hint(root: Path | None) -> str:
    command = f"refundflow rebuild --root {root}" if root else "refundflow rebuild"
    return f"请运行 {command},从存档重建账本(原有的账本文件会先自动备份)"


def ledger_error(path: Path, exc: sqlite3.DatabaseError, root: Path | None) -> LedgerError:
    text = str(exc)
    rebuild = rebuild_hint(root)
    if "locked" in text or "busy" in text:
        return LedgerError(
            f"账本文件 {path} 正被其他程序占用,无法写入({text})",
            reason=Reason.LEDGER_BUSY,
            hint="请关闭打开了账本的程序(例如数据库查看工具)后重试;不要用其他程序修改账本",
        )
    if isinstance(exc, sqlite3.OperationalError) and (
        "unable to open" in text or "disk I/O" in text or "readonly" in text
    ):
        return LedgerError(
            f"无法读写账本文件 {path}({text})",
            reason=Reason.LEDGER_UNREADABLE,
            hint="请检查该文件和所在文件夹的读写权限与磁盘;如果文件已损坏," + rebuild,
        )
    return LedgerError(
        f"账本文件 {path} 已损坏,无法读取({text})",
        reason=Reason.LEDGER_CORRUPT,
        hint=rebuild,
    )


# ---- breaches of the time limits (breaches.py) -------------------------------------------------


@dataclass(frozen=True)
class BreachRow:
    id: int
    form_no: str
    kind: str
    started: dt.datetime
    due: dt.datetime
    waited_on: str | None
    step: str
    detected_at: dt.datetime
    alerted_at: dt.datetime | None


def _breach_row(r: sqlite3.Row) -> BreachRow:
    return BreachRow(
        id=r["id"],
        form_no=r["form_no"],
        kind=r["kind"],
        started=dt.datetime.fromisoformat(r["started"]),
        due=dt.datetime.fromisoformat(r["due"]),
        waited_on=r["waited_on"],
        step=r["step"],
        detected_at=dt.datetime.fromisoformat(r["detected_at"]),
        alerted_at=parse_iso(r["alerted_at"]),
    )


def record_breach(
    ledger: Ledger,
    *,
    form_no: str,
    kind: str,
    started: dt.datetime,
    due: dt.datetime,
    waited_on: str | None,
    step: str,
    detected_at: dt.datetime,
) -> BreachRow | None:
    """Record a breach once; the new row, or None when this form's breach was already known."""
    with ledger.transaction() as db:
        cur = db.execute(
            "INSERT OR IGNORE INTO breaches (form_no, kind, started, due, waited_on, step,"
            " detected_at) VALUES (?,?,?,?,?,?,?)",
            (form_no, kind, iso(started), iso(due), waited_on, step, iso(detected_at)),
        )
        if not cur.rowcount:
            return None
        row = db.execute("SELECT * FROM breaches WHERE id = ?", (cur.lastrowid,)).fetchone()
    return _breach_row(row)


def breaches(ledger: Ledger, form_no: str | None = None) -> list[BreachRow]:
    """Every recorded breach (of one form), in the order they were detected."""
    db = ledger._db  # module-level: Ledger's own methods are edited elsewhere
    if form_no is None:
        rows = db.execute("SELECT * FROM breaches ORDER BY id").fetchall()
    else:
        rows = db.execute(
            "SELECT * FROM breaches WHERE form_no = ? ORDER BY id", (form_no,)
        ).fetchall()
    return [_breach_row(r) for r in rows]


def unalerted_breaches(ledger: Ledger) -> list[BreachRow]:
    rows = ledger._db.execute(
        "SELECT * FROM breaches WHERE alerted_at IS NULL ORDER BY id"
    ).fetchall()
    return [_breach_row(r) for r in rows]


def mark_alerted(ledger: Ledger, breach_id: int, at: dt.datetime) -> None:
    with ledger.transaction() as db:
        db.execute("UPDATE breaches SET alerted_at = ? WHERE id = ?", (iso(at), breach_id))


def forms_active_since(ledger: Ledger, since: dt.datetime) -> list[FormRow]:
    """Open forms, and closed ones that moved at or after ``since`` (the breach check's scope)."""
    rows = ledger._db.execute(
        "SELECT * FROM forms WHERE closed_at IS NULL OR step_since >= ?"
        " ORDER BY step_since, form_no",
        (iso(since),),
    ).fetchall()
    return [_form_row(r) for r in rows]


@dataclass(frozen=True)
class ReturnedNew:
    """A new form returned to its filler before it got a number, and where its copy went."""

    at: dt.datetime
    file_name: str  # the name it was dropped under
    dest: str  # the returned copy, with its 退回原因 sheet
    detail: str | None


def returned_new_forms(ledger: Ledger) -> list[ReturnedNew]:
    """Every returned new form, oldest first (``form_no IS NULL`` uses the events index)."""
    rows = ledger._db.execute(
        "SELECT e.at, e.file_name, e.detail, d.dest FROM events e"
        " JOIN receipts r ON r.event_id = e.id JOIN deliveries d ON d.receipt_id = r.id"
        " WHERE e.form_no IS NULL AND e.kind = 'returned' AND e.from_step = 'new'"
        " ORDER BY e.id, d.id"
    ).fetchall()
    return [
        ReturnedNew(dt.datetime.fromisoformat(r["at"]), r["file_name"], r["dest"], r["detail"])
        for r in rows
    ]


def copy_breaches(ledger: Ledger, source: Path) -> int:
    """Copy the breaches recorded in another ledger file (a backup ``rebuild`` made).

    The archive of received files cannot say when a breach was found or whether it was
    alerted, so a rebuilt ledger takes them from the ledger it replaces.
    """
    db = ledger._db
    db.execute("ATTACH DATABASE ? AS old", (str(source),))
    try:
        known = db.execute(
            "SELECT 1 FROM old.sqlite_master WHERE type = 'table' AND name = 'breaches'"
        ).fetchone()
        if not known:
            return 0
        with ledger.transaction():
            cur = db.execute(
                "INSERT OR IGNORE INTO breaches (form_no, kind, started, due, waited_on, step,"
                " detected_at, alerted_at) SELECT form_no, kind, started, due, waited_on, step,"
                " detected_at, alerted_at FROM old.breaches ORDER BY id"
            )
        return int(cur.rowcount)
    finally:
        db.execute("DETACH DATABASE old")


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
