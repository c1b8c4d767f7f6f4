"""Read-only queries for the monthly statistics (reports.py, monthend.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

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
        return [form for form, _events in self.month_of_forms(start, end)]

    def month_of_forms(
        self, start: dt.date, end: dt.date
    ) -> Iterator[tuple[FormRow, list[EventRow]]]:
        """Each form whose 提交日期 falls in ``[start, end)``, in order of that date, with its
        accepted hand-offs in order.

        Streamed: a month of 100,000 refunds has some 800,000 hand-offs, and holding them all
        as rows at once costs gigabytes. Both queries walk the forms in the same order.
        """
        span = (start.isoformat(), end.isoformat())
        forms = self._db.execute(
            f"SELECT *, {_SUBMITTED} AS submitted FROM forms"
            f" WHERE {_SUBMITTED} >= ? AND {_SUBMITTED} < ? ORDER BY submitted, form_no",
            span,
        )
        # A cursor of its own: the two are read in step.
        events = self._db.cursor().execute(
            f"SELECT e.*, {_SUBMITTED} AS submitted FROM events e JOIN forms f"
            " ON f.form_no = e.form_no"
            f" WHERE e.kind = 'accepted' AND {_SUBMITTED} >= ? AND {_SUBMITTED} < ?"
            " ORDER BY submitted, f.form_no, e.id",
            span,
        )
        pending = events.fetchone()
        for row in forms:
            form = form_row(row)
            mine: list[EventRow] = []
            while pending is not None and pending["form_no"] == form.form_no:
                mine.append(event_row(pending))
                pending = events.fetchone()
            yield form, mine

    def months_with_forms(self) -> list[str]:
        """Every ``YYYY-MM`` in which some form's 提交日期 falls, in order."""
        rows = self._db.execute(f"SELECT DISTINCT substr({_SUBMITTED}, 1, 7) FROM forms ORDER BY 1")
        return [r[0] for r in rows.fetchall()]
