"""Where every open form is, whom it waits on, its deadline and whether it is late.

Also what the site must be told before any of that: roles whose signers nobody checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .breaches import BreachKind, describe, earliest_open, rule_text, spans
from .calendar import WorkCalendar
from .config import ROLE_NAMES, UNCHECKED_SIGNER, Config
from .ledger import BreachRow, EventRow, FormRow, Ledger, breaches, iso
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
    notes: tuple[str, ...]  # lateness already recorded (filled late, every recorded breach)
    breaches: tuple[str, ...] = ()  # the recorded breaches alone, for `status`'s text output

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = iso(self.since)
        data["deadline"] = iso(self.deadline)
        data["notes"] = list(self.notes)
        data["breaches"] = list(self.breaches)
        return data


def form_status(
    row: FormRow,
    events: list[EventRow],
    *,
    now: dt.datetime,
    config: Config,
    calendar: WorkCalendar,
    recorded: Sequence[BreachRow] = (),
) -> FormStatus:
    """``recorded``: the form's breaches in the ledger, listed in its notes.

    The deadline is the first one still running of every limit (breaches.py), not only the
    current step's: a form at the cashier 25 hours after it was reported is late by the
    24-hour refund limit even though finance's 12 hours have not run out.
    """
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
    first = earliest_open(spans(row, events, config=config, calendar=calendar))
    due, rule = deadline.due, deadline.rule
    if first is not None and (due is None or first.due < due):
        due, rule = first.due, rule_text(first.kind, config)
    lines = tuple(describe(b, config) for b in recorded)
    notes = (
        *(e.detail for e in events if e.kind == "accepted" and e.detail),
        # 填单超时 is already in the accepted event's detail, written when the form arrived.
        *(line for b, line in zip(recorded, lines, strict=True) if b.kind != BreachKind.FILL),
    )
    return FormStatus(
        form_no=row.form_no,
        order_no=row.order_no,
        amount=row.amount,
        step=row.step,
        step_name=STEP_NAMES[step],
        waiting_on=row.waiting_on,
        waiting_on_name=ROLE_NAMES.get(row.waiting_on or "", ""),
        since=row.step_since,
        deadline=due,
        rule=rule,
        late=due is not None and now > due,
        notes=notes,
        breaches=lines,
    )


def open_forms(ledger: Ledger, *, now: dt.datetime, config: Config) -> list[FormStatus]:
    calendar = WorkCalendar(config)
    return [
        form_status(
            row,
            ledger.events(row.form_no),
            now=now,
            config=config,
            calendar=calendar,
            recorded=breaches(ledger, row.form_no),
        )
        for row in ledger.open_forms()
    ]


def roster_warning(config: Config, *, config_file: Path) -> tuple[str, ...]:
    """The lines to show first wherever people look (start-up, status, the status board).

    Empty when every role has a roster. Otherwise a 警告 line naming the roles whose block
    anyone may sign (or, with ``require_roster``, whose forms are all returned) and a
    处理办法 line naming the file to fill in.
    """
    roles = config.open_roles()
    if not roles:
        return ()
    names = "、".join(f"{ROLE_NAMES[r]}({r})" for r in roles)
    if config.require_roster:
        effect = "这些环节签名的退款单都会被退回(require_roster = true)"
    else:
        effect = f"任何人都能签署这些环节,签名人不会被核对;流转记录中会注明「{UNCHECKED_SIGNER}」"
    return (
        f"警告:未配置名单的角色:{names}。{effect}。",
        f"处理办法:在 {config_file} 的 [roster] 中填写这些角色的人员名单"
        f'(例如 {roles[0]} = ["姓名1", "姓名2"]),然后重新启动 refundflow。',
    )
