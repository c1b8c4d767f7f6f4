"""The procedure's time limits, checked against each form's history, and their breaches.

Every limit of spec §2 is a span with a start, a due moment and the hand-off that ends it:

========  ==========================================  =========================================
kind      runs from                                   ends when the form
========  ==========================================  =========================================
fill      上报时间 (reported)                          first reaches the watcher (10 minutes)
forward   technical department verified it            is forwarded to finance (60 minutes)
finance   submitted to finance (提交财务时间)          is refunded or returned by finance (12 h)
refund    上报时间                                     is refunded, returned or refused (24 h)
overall   上报时间                                     reaches administration: customer told
                                                      (3 working days, on the working calendar)
========  ==========================================  =========================================

The spans are computed from the ledger's accepted events, so a breach is found even when the
late step was done in the same pass that first looks (a forward 92 minutes after technical).
A breach is recorded once per form, kind and start (ledger ``breaches``) with the role the
form waited on when it fell due: a form finance returned and customer service resubmitted
starts finance's 12 hours again, and overrunning them again is a second 财务处理超时.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .calendar import WorkCalendar
from .config import ROLE_NAMES, Config
from .ledger import (
    BreachRow,
    EventKind,
    EventRow,
    FormRow,
    Ledger,
)
from .routing import STEP_NAMES, WAITING_ON, Stamp, Step

log = logging.getLogger(__name__)


class BreachKind(StrEnum):
    FILL = "fill"
    FORWARD = "forward"
    FINANCE = "finance"
    REFUND = "refund"
    OVERALL = "overall"


BREACH_NAMES: dict[BreachKind, str] = {
    BreachKind.FILL: "填单超时",
    BreachKind.FORWARD: "提交财务超时",
    BreachKind.FINANCE: "财务处理超时",
    BreachKind.REFUND: "退款超时",
    BreachKind.OVERALL: "办结超时",
}

_FINANCE_DONE = frozenset({Step.REFUNDED, Step.FINANCE_RETURNED})
_REFUND_DONE = frozenset({Step.REFUNDED, Step.FINANCE_RETURNED, Step.TECH_REFUSED})
_OVERALL_DONE = frozenset({Step.AT_ADMIN, Step.CLOSED})
# A form that comes back to the watcher after a breach check started must not be checked
# against moves older than this: closed forms that moved earlier were checked already.
FIRST_CHECK_DAYS = 31


def rule_text(kind: BreachKind, config: Config) -> str:
    limits = config.limits
    return {
        BreachKind.FILL: f"上报后{limits.fill_minutes}分钟内填好退款单",
        BreachKind.FORWARD: f"技术部返回后{limits.forward_minutes}分钟内提交财务",
        BreachKind.FINANCE: f"财务{limits.finance_hours}小时内处理完毕",
        BreachKind.REFUND: f"上报后{limits.refund_hours}小时内全额退款",
        BreachKind.OVERALL: f"上报后{limits.refund_working_days}个工作日内办结",
    }[kind]


@dataclass(frozen=True)
class Span:
    """One time limit of one form: when it started, fell or falls due, and ended."""

    kind: BreachKind
    started: dt.datetime
    due: dt.datetime
    done_at: dt.datetime | None  # None: the step it limits is not done yet

    def breached(self, now: dt.datetime) -> bool:
        return (self.done_at or now) > self.due and now > self.due


def _moves(events: Sequence[EventRow]) -> list[EventRow]:
    return [e for e in events if e.kind == EventKind.ACCEPTED and e.to_step]


def step_at(events: Sequence[EventRow], moment: dt.datetime) -> Step | None:
    """The form's step at ``moment`` from its history; None before it reached the watcher."""
    step: Step | None = None
    for e in _moves(events):
        if e.at > moment:
            break
        step = Step(e.to_step or "")
    return step


def _first(moves: list[EventRow], steps: frozenset[Step], after: dt.datetime) -> dt.datetime | None:
    return next((e.at for e in moves if e.at >= after and Step(e.to_step or "") in steps), None)


def spans(
    row: FormRow, events: Sequence[EventRow], *, config: Config, calendar: WorkCalendar
) -> list[Span]:
    """Every limit that has started for this form, from its accepted events."""
    moves = _moves(events)
    if not moves:
        return []
    limits = config.limits
    created = moves[0].at
    reported = row.reported_at or created
    out: list[Span] = []
    if row.reported_at is not None:
        due = row.reported_at + dt.timedelta(minutes=limits.fill_minutes)
        out.append(Span(BreachKind.FILL, row.reported_at, due, created))
    for i, e in enumerate(moves):
        if e.to_step == Step.TECH_VERIFIED:
            done = moves[i + 1].at if i + 1 < len(moves) else None
            due = e.at + dt.timedelta(minutes=limits.forward_minutes)
            out.append(Span(BreachKind.FORWARD, e.at, due, done))
            break
    for finance in (e for e in moves if e.stamp == Stamp.FINANCE):  # one per finance cycle
        due = finance.at + dt.timedelta(hours=limits.finance_hours)
        out.append(
            Span(BreachKind.FINANCE, finance.at, due, _first(moves, _FINANCE_DONE, finance.at))
        )
    due = reported + dt.timedelta(hours=limits.refund_hours)
    out.append(Span(BreachKind.REFUND, reported, due, _first(moves, _REFUND_DONE, created)))
    due = calendar.add_working_days(reported, limits.refund_working_days)
    out.append(Span(BreachKind.OVERALL, reported, due, _first(moves, _OVERALL_DONE, created)))
    return out


def earliest_open(spans_: Sequence[Span]) -> Span | None:
    """The limit that falls due first among those still running: the form's deadline."""
    running = [s for s in spans_ if s.done_at is None]
    return min(running, key=lambda s: s.due) if running else None


@dataclass(frozen=True)
class Breach:
    form_no: str
    kind: BreachKind
    started: dt.datetime
    due: dt.datetime
    waited_on: str | None
    step: Step


def find_breaches(
    row: FormRow,
    events: Sequence[EventRow],
    *,
    now: dt.datetime,
    config: Config,
    calendar: WorkCalendar,
) -> list[Breach]:
    """The limits this form has overrun as of ``now``, with whom it waited on at the due time."""
    out = []
    for span in spans(row, events, config=config, calendar=calendar):
        if not span.breached(now):
            continue
        # Filling the form is customer service's own step, before the watcher saw it.
        step = step_at(events, span.due) or Step.NEW
        if span.kind is BreachKind.FILL:
            step = Step.NEW
        out.append(Breach(row.form_no, span.kind, span.started, span.due, WAITING_ON[step], step))
    return out


def describe(breach: BreachRow, config: Config) -> str:
    """One line for people: which limit, due when, who the form waited on."""
    kind = BreachKind(breach.kind)
    who = ROLE_NAMES.get(breach.waited_on or "", "")
    return (
        f"{BREACH_NAMES[kind]}:{rule_text(kind, config)},期限 {breach.due:%Y-%m-%d %H:%M},"
        f"当时等待{who}({STEP_NAMES[Step(breach.step)]})"
    )


class BreachChecker:
    """Finds and records new breaches; one per watcher or ``process`` run.

    Each pass looks at the open forms and at those that moved since the previous pass (a
    form can be closed by the same pass that made it late), so a long-used ledger is not
    re-read whole every minute.
    """

    def __init__(self, ledger: Ledger, config: Config, *, since: dt.datetime | None = None) -> None:
        """``since``: look at forms that moved since then on the first pass (default: the
        last FIRST_CHECK_DAYS days)."""
        self._ledger = ledger
        self._config = config
        self._calendar = WorkCalendar(config)
        self._since = since

    def check(self, now: dt.datetime) -> list[BreachRow]:
        """Record every breach not yet recorded; returns the new ones (each logged once)."""
        since = self._since or now - dt.timedelta(days=FIRST_CHECK_DAYS)
        new: list[BreachRow] = []
        for row in self._ledger.forms_active_since(since):
            events = self._ledger.events(row.form_no)
            for b in find_breaches(
                row, events, now=now, config=self._config, calendar=self._calendar
            ):
                recorded = self._ledger.breaches.record(
                    form_no=b.form_no,
                    kind=b.kind,
                    started=b.started,
                    due=b.due,
                    waited_on=b.waited_on,
                    step=b.step,
                    detected_at=now,
                )
                if recorded is not None:
                    log.warning("超时 %s: %s", b.form_no, describe(recorded, self._config))
                    new.append(recorded)
        # Forms that move from now on have step_since >= now; a little overlap is harmless.
        self._since = now
        return new


def restore_after_rebuild(
    ledger: Ledger, config: Config, *, now: dt.datetime, backup: Path | None
) -> None:
    """Give a rebuilt ledger its breaches: those of the ledger it replaced, then any others
    its history shows as of ``now`` (the last file replayed).

    Breaches found only now are marked alerted: they are old news, and a site must not get
    every alert of the past again because its ledger was rebuilt.
    """
    if backup is not None:
        ledger.breaches.copy_from(backup)
    checker = BreachChecker(ledger, config, since=dt.datetime.min)  # every form
    for breach in checker.check(now):
        ledger.breaches.mark_alerted(breach.id, breach.detected_at)
