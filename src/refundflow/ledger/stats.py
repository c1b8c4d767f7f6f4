"""Read-only queries for the monthly statistics (reports.py, monthend.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3

from .rows import EventRow, FormRow, event_row, form_row

# 提交日期 of a form: the 时间 its submitter wrote, else when it was reported, else received.
_SUBMITTED = (
    "COALESCE(NULLIF(json_extract(snapshot, '$.submitted_at'), ''), reported_at, created_at)"
)


class StatsQueries:
    """The month's forms and hand-offs, handed out by :attr:`Ledger.stats`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def forms_submitted_between(self, start: dt.date, end: dt.date) -> list[FormRow]:
        """Forms whose 提交日期 falls in ``[start, end)``, in order of that date."""
        rows = self._db.execute(
            f"SELECT * FROM forms WHERE {_SUBMITTED} >= ? AND {_SUBMITTED} < ?"
            f" ORDER BY {_SUBMITTED}, form_no",
            (start.isoformat(), end.isoformat()),
        ).fetchall()
        return [form_row(r) for r in rows]

    def accepted_events_between(self, start: dt.date, end: dt.date) -> list[EventRow]:
        """The accepted hand-offs of the forms :meth:`forms_submitted_between` returns, by id."""
        rows = self._db.execute(
            "SELECT * FROM events WHERE kind = 'accepted' AND form_no IN"
            f" (SELECT form_no FROM forms WHERE {_SUBMITTED} >= ? AND {_SUBMITTED} < ?)"
            " ORDER BY id",
            (start.isoformat(), end.isoformat()),
        ).fetchall()
        return [event_row(r) for r in rows]

    def months_with_forms(self) -> list[str]:
        """Every ``YYYY-MM`` in which some form's 提交日期 falls, in order."""
        rows = self._db.execute(f"SELECT DISTINCT substr({_SUBMITTED}, 1, 7) FROM forms ORDER BY 1")
        return [r[0] for r in rows.fetchall()]
