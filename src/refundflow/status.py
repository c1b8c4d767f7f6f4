"""Where every open form is, whom it waits on, its deadline and whether it is late."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from .calendar import WorkCalendar
from .config import ROLE_NAMES, Config
from .ledger import EventRow, FormRow, Ledger, iso
from .routing import FINANCE_STEPS, STAMP_FINANCE, STEP_NAMES, Step, step_deadline


@dataclass(frozen=True)
class FormStatus:
    form_no: str
    order_no: str
    amount: str | None
    step: str
    step_name: str
    waiting_on: str | None
    waiting_on_name: str
    since: dt.datetime
    deadline: dt.datetime | None
    rule: str
    late: bool
    notes: tuple[str, ...]  # lateness already recorded (e.g. the form was filled late)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = iso(self.since)
        data["deadline"] = iso(self.deadline)
        data["notes"] = list(self.notes)
        return data


def form_status(
    row: FormRow,
    events: list[EventRow],
    *,
    now: dt.datetime,
    config: Config,
    calendar: WorkCalendar,
) -> FormStatus:
    step = Step(row.step)
    finance_since = next(
        (e.at for e in reversed(events) if e.kind == "accepted" and e.stamp == STAMP_FINANCE),
        None,
    )
    deadline = step_deadline(
        step,
        step_since=row.step_since,
        reported_at=row.reported_at,
        finance_since=finance_since if step in FINANCE_STEPS else None,
        config=config,
        calendar=calendar,
    )
    notes = tuple(e.detail for e in events if e.kind == "accepted" and e.detail)
    return FormStatus(
        form_no=row.form_no,
        order_no=row.order_no,
        amount=row.amount,
        step=row.step,
        step_name=STEP_NAMES[step],
        waiting_on=row.waiting_on,
        waiting_on_name=ROLE_NAMES.get(row.waiting_on or "", ""),
        since=row.step_since,
        deadline=deadline.due,
        rule=deadline.rule,
        late=deadline.due is not None and now > deadline.due,
        notes=notes,
    )


def open_forms(ledger: Ledger, *, now: dt.datetime, config: Config) -> list[FormStatus]:
    calendar = WorkCalendar(config)
    return [
        form_status(row, ledger.events(row.form_no), now=now, config=config, calendar=calendar)
        for row in ledger.open_forms()
    ]
