"""Where every open form is, whom it waits on, its deadline and whether it is late.

Also what the site must be told before any of that: roles whose signers nobody checks.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .breaches import BREACH_NAMES, BreachKind, describe, earliest_open, rule_text, spans
from .calendar import Month, WorkCalendar
from .config import ROLE_NAMES, UNCHECKED_SIGNER, Config
from .errors import Reason
from .ledger import BreachRow, EventRow, FormRow, Ledger, ReturnedNew, iso
from .routing import FINANCE_STEPS, STEP_NAMES, Stamp, Step, stamp_label, step_deadline


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
    overdue_minutes: int = 0  # how late, rounded up to the minute; 0 when not late
    closed_at: dt.datetime | None = None

    def remarks(self) -> list[str]:
        """The notes that are not recorded breaches, one per line and each once: a step's
        detail may hold several, and 填单超时 is said by its recorded breach when there is one."""
        fill = BREACH_NAMES[BreachKind.FILL]
        said = any(line.startswith(fill) for line in self.breaches)
        lines = [
            line
            for note in self.notes
            if note not in self.breaches
            for line in note.splitlines()
            if not (said and line.startswith(fill))
        ]
        return list(dict.fromkeys(lines))

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["since"] = iso(self.since)
        data["deadline"] = iso(self.deadline)
        data["closed_at"] = iso(self.closed_at)
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
        (e.at for e in reversed(events) if e.kind == "accepted" and e.stamp == Stamp.FINANCE),
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
    if row.closed_at is not None:  # a closed form has no deadline left to miss
        due, rule = None, ""
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
        overdue_minutes=math.ceil((now - due).total_seconds() / 60) if due and now > due else 0,
        closed_at=row.closed_at,
    )


def history_json(events: Sequence[EventRow]) -> list[dict[str, object]]:
    """A form's events for ``status FORM_NO --json``; a stamp by its column's label."""
    return [
        {
            "at": iso(e.at),
            "kind": e.kind,
            "from_step": e.from_step,
            "to_step": e.to_step,
            "to_role": e.to_role,
            "actor": e.actor,
            "stamp": stamp_label(e.stamp),
            "file": e.file_name,
            "detail": e.detail,
        }
        for e in events
    ]


def overdue_text(minutes: int) -> str:
    """How late, as people say it: 逾期 3 小时 20 分, 逾期 2 天 5 分."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} 天"] if days else []
    parts += [f"{hours} 小时"] if hours else []
    parts += [f"{mins} 分"] if mins or not parts else []
    return "逾期 " + " ".join(parts)


_CODED = re.compile(r"([a-z_]+): ")


def readable_detail(detail: str | None) -> str:
    """An event's detail as people read it: without the reason code a rejection carries
    for scripts (``stale_copy: 这是…`` -> ``这是…``; --json keeps it)."""
    text = detail or ""
    coded = _CODED.match(text)
    if coded and coded[1] in {r.value for r in Reason}:
        text = text[coded.end() :]
    return text.replace("\n", ";")


@dataclass(frozen=True)
class StatusFilter:
    """What `status` lists: open forms (or every form), narrowed by role, person, month."""

    role: str | None = None  # the role key the form waits on
    person: str | None = None  # signed one of its blocks, or must act on it (in that roster)
    month: Month | None = None  # its 提交日期 (as in the monthly tables) falls in this month
    closed_too: bool = False


def select_forms(
    ledger: Ledger, *, now: dt.datetime, config: Config, which: StatusFilter
) -> list[FormStatus]:
    """The forms `status` lists: open ones by when they reached their step, then (with
    ``closed_too``) closed ones in the order they were created."""
    rows = ledger.open_forms()
    if which.closed_too:
        rows += [r for r in ledger.all_forms() if r.closed_at is not None]
    calendar = WorkCalendar(config)
    chosen = []
    for row in rows:
        if which.role is not None and row.waiting_on != which.role:
            continue
        if which.month is not None and _submitted(row)[:7] != which.month.label:
            continue
        events = ledger.events(row.form_no)
        if which.person is not None and not _concerns(row, events, which.person, config):
            continue
        state = form_status(
            row,
            events,
            now=now,
            config=config,
            calendar=calendar,
            recorded=ledger.breaches.recorded(row.form_no),
        )
        chosen.append(state)
    return chosen


def _submitted(row: FormRow) -> str:
    """提交日期 as the monthly tables take it (ledger.stats._SUBMITTED): the 时间 beside 提交人,
    else when it was reported, else when it was received."""
    moment = row.snapshot.get("submitted_at") or iso(row.reported_at) or iso(row.created_at)
    return moment or ""


def _concerns(row: FormRow, events: list[EventRow], person: str, config: Config) -> bool:
    """Whether ``person`` signed the form (提交人 or any block's 执行人) or must act on it now
    (the role it waits on lists them)."""
    signed = {e.actor for e in events} | {
        value for key, value in row.snapshot.items() if key == "submitter" or key.endswith("_by")
    }
    waiting = row.closed_at is None and row.waiting_on is not None
    return person in signed or (waiting and person in config.roster.get(row.waiting_on or "", ()))


def returned_new_forms(ledger: Ledger, *, config: Config, which: StatusFilter) -> list[ReturnedNew]:
    """New forms returned to 客服部 before they got a number, while the returned copy is still
    in its outbox folder (once fixed and dropped again it leaves, and the form is numbered)."""
    if which.role not in (None, "cs"):
        return []
    if which.person is not None and which.person not in config.roster.get("cs", ()):
        return []
    found = [r for r in ledger.returned_new_forms() if Path(r.dest).is_file()]
    if which.month is not None:
        found = [r for r in found if r.at.strftime("%Y-%m") == which.month.label]
    return found


def open_forms(ledger: Ledger, *, now: dt.datetime, config: Config) -> list[FormStatus]:
    calendar = WorkCalendar(config)
    return [
        form_status(
            row,
            ledger.events(row.form_no),
            now=now,
            config=config,
            calendar=calendar,
            recorded=ledger.breaches.recorded(row.form_no),
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
        effect = f"任何人都能签署这些环节,签名人不会被核对;流转记录中会注明“{UNCHECKED_SIGNER}”"
    return (
        f"警告:未配置名单的角色:{names}。{effect}。",
        f"处理办法:在 {config_file} 的 [roster] 中填写这些角色的人员名单"
        f'(例如 {roles[0]} = ["姓名1", "姓名2"]),然后重新启动 refundflow。',
    )
