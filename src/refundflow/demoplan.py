"""The demo month's cast and script: who works where, which refunds come in when, and how
each one ends. Pure and deterministic (a fixed seed): the same month and size always give
the same story, so the demo's summary can be checked line by line.

Every refund is reported on a working day in one of the two shifts and filled by someone of
that shift; most are refunded, every eighth is refused by 技术部, every tenth returned by
finance. A few early ones carry the month's incidents: a mistyped mobile number, a late
filing, a late hand-off to finance, finance overnight, one above the president's threshold,
and a second form for an order that already has one; one later on is saved with LibreOffice.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from enum import StrEnum

from .calendar import Month, WorkCalendar
from .config import Config

# The sample roster written into the demo's refundflow.toml: several people per role.
ROSTER: dict[str, tuple[str, ...]] = {
    "cs": ("张三", "李四", "王芳", "陈静", "刘洋"),
    "tech": ("王五", "周强", "吴敏"),
    "cashier": ("赵六", "孙丽"),
    "accountant": ("钱七", "郑华"),
    "director": ("孙八",),
    "president": ("周九",),
    "admin": ("吴十", "冯雪"),
}
# Customer service by shift: the first of each pair files, the second (the duty lead) approves.
CS_SHIFTS: dict[str, tuple[str, ...]] = {"白班": ("张三", "李四", "王芳"), "中班": ("陈静", "刘洋")}
SHIFT_STARTS = {"白班": (8, 30, 390), "中班": (17, 15, 150)}  # hour, minute, minutes to spread over
PRESIDENT_AMOUNT = 12800.0  # above the default president_threshold (10000)
MIN_FORMS = 10  # enough for every incident below to happen once


class Fate(StrEnum):
    REFUNDED = "refunded"
    TECH_REFUSED = "tech_refused"
    FINANCE_RETURNED = "finance_returned"


@dataclass(frozen=True)
class Refund:
    """One refund as it will be played; times are when people act, not the deadlines."""

    index: int
    order_no: str
    reported: dt.datetime
    filed: dt.datetime  # when customer service drops the new form in inbox/
    shift: str
    submitter: str
    lead: str  # the duty lead: signs 客服部 block, forwards to finance, tells the customer
    signers: dict[str, str]  # role -> who signs that block
    amount: float
    bank: str
    fault: str
    mobile: str
    fate: Fate = Fate.REFUNDED
    returned_by: str = ""  # the finance role that returns it (Fate.FINANCE_RETURNED)
    bad_mobile: bool = False  # typed with a digit missing: returned, fixed, dropped again
    late_fill: bool = False  # filed 25 minutes after the customer called (limit: 10)
    late_forward: bool = False  # sent to finance 95 minutes after 技术部 (limit: 60)
    slow_finance: bool = False  # 会计 signs the next morning (limit: 12 hours)
    via_office: bool = False  # the new form is saved with LibreOffice before it is dropped


@dataclass(frozen=True)
class Plan:
    month: Month
    refunds: tuple[Refund, ...]
    duplicate_of: int  # index of the refund whose order number a second form repeats
    workdays: tuple[dt.date, ...]


def workdays(month: Month, calendar: WorkCalendar) -> tuple[dt.date, ...]:
    day, days = month.first, []
    while day < month.next_first:
        if calendar.is_workday(day):
            days.append(day)
        day += dt.timedelta(days=1)
    return tuple(days)


def plan_month(month: Month, count: int, config: Config, *, office: bool) -> Plan:
    """``count`` refunds over ``month``'s working days; ``office``: LibreOffice is there to
    save one of them."""
    if count < MIN_FORMS:
        raise ValueError(f"at least {MIN_FORMS} forms")
    rng = random.Random(f"refundflow-demo-{month.label}-{count}")
    days = workdays(month, WorkCalendar(config))
    refunds = []
    per_day: dict[dt.date, int] = {}
    for i in range(count):
        day = days[i * len(days) // count]
        shift = "中班" if i % 3 == 2 else "白班"
        hour, minute, spread = SHIFT_STARTS[shift]
        reported = dt.datetime.combine(day, dt.time(hour, minute))
        reported += dt.timedelta(minutes=rng.randrange(spread))
        per_day[day] = per_day.get(day, 0) + 1
        submitter, lead = rng.sample(CS_SHIFTS[shift], 2)
        signers = {role: rng.choice(ROSTER[role]) for role in ROSTER if role != "cs"}
        fate = Fate.REFUNDED
        if i % 8 == 7:
            fate = Fate.TECH_REFUSED
        elif i % 10 == 8:
            fate = Fate.FINANCE_RETURNED
        refunds.append(
            Refund(
                index=i,
                order_no=f"TK{day:%Y%m%d}{per_day[day]:03d}",
                reported=reported,
                filed=reported + dt.timedelta(minutes=25 if i == 2 else rng.randint(3, 8)),
                shift=shift,
                submitter=submitter,
                lead=lead,
                signers=signers,
                amount=PRESIDENT_AMOUNT if i == 6 else round(rng.uniform(30, 3000), 2),
                bank=rng.choice(config.banks[:8]),
                fault=rng.choice(config.faults),
                mobile="1" + rng.choice("3578") + "".join(rng.choices("0123456789", k=9)),
                fate=fate,
                returned_by="cashier" if i % 20 == 8 else "accountant",
                bad_mobile=i == 1,
                late_fill=i == 2,  # see filed
                late_forward=i == 3 or (count >= 30 and i == count // 2 + 3),
                slow_finance=i == 4,
                # Late in the month: LibreOffice saves it in the background meanwhile.
                via_office=office and i == count * 3 // 4,
            )
        )
    return Plan(month, tuple(refunds), duplicate_of=0, workdays=days)
