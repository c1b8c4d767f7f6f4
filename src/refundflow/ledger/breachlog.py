"""The breaches of the procedure's time limits the ledger recorded (see breaches.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .rows import iso, parse_iso
from .schema import Transaction


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


class BreachLog:
    """The ``breaches`` table, handed out by :attr:`Ledger.breaches`."""

    def __init__(self, db: sqlite3.Connection, transaction: Transaction) -> None:
        self._db = db
        self._transaction = transaction

    def record(
        self,
        *,
        form_no: str,
        kind: str,
        started: dt.datetime,
        due: dt.datetime,
        waited_on: str | None,
        step: str,
        detected_at: dt.datetime,
    ) -> BreachRow | None:
        """Record a breach once; the new row, or None when this form's breach of this limit,
        started at ``started``, was already known."""
        with self._transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO breaches (form_no, kind, started, due, waited_on, step,"
                " detected_at) VALUES (?,?,?,?,?,?,?)",
                (form_no, kind, iso(started), iso(due), waited_on, step, iso(detected_at)),
            )
            if not cur.rowcount:
                return None
            row = db.execute("SELECT * FROM breaches WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _breach_row(row)

    def recorded(self, form_no: str | None = None) -> list[BreachRow]:
        """Every recorded breach (of one form), in the order they were detected."""
        db = self._db
        if form_no is None:
            rows = db.execute("SELECT * FROM breaches ORDER BY id").fetchall()
        else:
            rows = db.execute(
                "SELECT * FROM breaches WHERE form_no = ? ORDER BY id", (form_no,)
            ).fetchall()
        return [_breach_row(r) for r in rows]

    def unalerted(self) -> list[BreachRow]:
        rows = self._db.execute(
            "SELECT * FROM breaches WHERE alerted_at IS NULL ORDER BY id"
        ).fetchall()
        return [_breach_row(r) for r in rows]

    def mark_alerted(self, breach_id: int, at: dt.datetime) -> None:
        with self._transaction() as db:
            db.execute("UPDATE breaches SET alerted_at = ? WHERE id = ?", (iso(at), breach_id))

    def copy_from(self, source: Path) -> int:
        """Copy the breaches recorded in another ledger file (a backup ``rebuild`` made).

        The archive of received files cannot say when a breach was found or whether it was
        alerted, so a rebuilt ledger takes them from the ledger it replaces.
        """
        db = self._db
        db.execute("ATTACH DATABASE ? AS old", (str(source),))
        try:
            known = db.execute(
                "SELECT 1 FROM old.sqlite_master WHERE type = 'table' AND name = 'breaches'"
            ).fetchone()
            if not known:
                return 0
            with self._transaction():
                cur = db.execute(
                    "INSERT OR IGNORE INTO breaches (form_no, kind, started, due, waited_on, step,"
                    " detected_at, alerted_at) SELECT form_no, kind, started, due, waited_on, step,"
                    " detected_at, alerted_at FROM old.breaches ORDER BY id"
                )
            return int(cur.rowcount)
        finally:
            db.execute("DETACH DATABASE old")
