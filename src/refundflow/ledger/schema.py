"""The ledger's tables, and bringing a ledger an earlier version wrote up to them, in place.

Every ledger is opened through :func:`create_and_migrate`: the tables are created if missing,
then each migration below runs once. A migration only ever changes a ledger inside one
transaction, so a kill mid-way leaves it as it was, to be migrated at the next start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

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
    stamp      TEXT,                      -- routing.Stamp: the statistics column it fills, if any
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
-- configured alert command has been run for it (NULL: not yet). Once per limit and start: a
-- form finance returned and customer service resubmitted runs finance's 12 hours again.
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
    UNIQUE (form_no, kind, started)
);
CREATE INDEX IF NOT EXISTS breaches_unalerted ON breaches(id) WHERE alerted_at IS NULL;
"""

ARRIVAL = "arrival_seq"
# Waiting this long for another program's write lock at start is enough to tell "busy" from
# "locked by someone": our own processes never hold it long, and they hold the workspace lock.
START_BUSY_MS = 3000

# PRAGMA user_version of a ledger whose statistics stamps are codes (routing.Stamp). Ledgers
# from before it are 0; the forms migration tells its own case from the table itself.
STAMP_CODES_VERSION = 1
# What the code before stamp codes stored in events.stamp: the Chinese column labels of
# 客服退单统计表 at the time. Frozen here, not read from routing: rewording a label later must
# not change what the rows already written meant.
LABEL_STAMPS: dict[str, str] = {
    "提交技术部时间": "submitted_to_tech",
    "提交财务时间": "submitted_to_finance",
    "财务反馈时间": "finance_feedback",
    "反馈用户时间": "customer_feedback",
}

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]


def create_and_migrate(db: sqlite3.Connection, transaction: Transaction) -> None:
    """Create the tables a ledger lacks, then migrate what an earlier version wrote."""
    db.executescript(SCHEMA)
    _order_may_repeat(db, transaction)
    _stamps_as_codes(db, transaction)
    _breach_per_cycle(db, transaction)


def _statement(head: str) -> str:
    """The statement of SCHEMA that starts with ``head``, up to its closing ``;``."""
    text = SCHEMA[SCHEMA.index(head) :]
    end = "END;" if head.startswith("CREATE TRIGGER") else ");"
    return text[: text.index(end) + len(end)]


def _order_may_repeat(db: sqlite3.Connection, transaction: Transaction) -> None:
    """Forms once held a UNIQUE order number; a new form for an order whose form was closed
    as returned is now allowed (and linked by ``supersedes``)."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(forms)")}
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'forms'"
    ).fetchone()
    if "supersedes" in columns and "UNIQUE" not in sql:
        return
    with transaction() as db:
        kept = ", ".join(sorted(columns - {"supersedes"}))
        db.execute("ALTER TABLE forms RENAME TO forms_before_migration")
        db.execute("DROP INDEX IF EXISTS forms_order")
        db.execute(_statement("CREATE TABLE IF NOT EXISTS forms"))
        db.execute(f"INSERT INTO forms ({kept}) SELECT {kept} FROM forms_before_migration")
        db.execute("DROP TABLE forms_before_migration")
        db.execute("CREATE INDEX IF NOT EXISTS forms_order ON forms(order_no, created_at)")


def _stamps_as_codes(db: sqlite3.Connection, transaction: Transaction) -> None:
    """Events once stored their statistics stamp as the column's Chinese label.

    The events are append-only (a trigger refuses UPDATE): the trigger is dropped and made
    again inside the same transaction, so no other writer ever sees the log editable. Which
    ledgers need it is in ``user_version``: looking for labels would read every event at
    every start.
    """
    if db.execute("PRAGMA user_version").fetchone()[0] >= STAMP_CODES_VERSION:
        return
    with transaction() as db:
        # Looked at again under the write lock: another process may have just done it.
        if db.execute("PRAGMA user_version").fetchone()[0] >= STAMP_CODES_VERSION:
            return
        labels = ", ".join("?" for _ in LABEL_STAMPS)
        cases = " ".join("WHEN ? THEN ?" for _ in LABEL_STAMPS)
        db.execute("DROP TRIGGER events_no_update")
        db.execute(
            f"UPDATE events SET stamp = CASE stamp {cases} END WHERE stamp IN ({labels})",
            [*(x for pair in LABEL_STAMPS.items() for x in pair), *LABEL_STAMPS],
        )
        db.execute(_statement("CREATE TRIGGER IF NOT EXISTS events_no_update"))
        db.execute(f"PRAGMA user_version = {STAMP_CODES_VERSION}")


def _breach_per_cycle(db: sqlite3.Connection, transaction: Transaction) -> None:
    """Breaches were once UNIQUE per form and kind, so a resubmitted form's second finance
    cycle could never be recorded late; they are now unique per form, kind and start."""
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'breaches'"
    ).fetchone()
    if "UNIQUE (form_no, kind, started)" in sql:
        return
    with transaction() as db:
        db.execute("ALTER TABLE breaches RENAME TO breaches_before_migration")
        db.execute("DROP INDEX IF EXISTS breaches_unalerted")
        db.execute(_statement("CREATE TABLE IF NOT EXISTS breaches"))
        db.execute("INSERT INTO breaches SELECT * FROM breaches_before_migration ORDER BY id")
        db.execute("DROP TABLE breaches_before_migration")
        db.execute(
            "CREATE INDEX IF NOT EXISTS breaches_unalerted ON breaches(id) WHERE alerted_at IS NULL"
        )
