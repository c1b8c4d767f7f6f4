"""The route a refund form travels, one step at a time, and each step's deadline.

A step names who the form waits on and which block that role must newly fill. Routing is a
pure function of (step, the form's values, configuration): no I/O, so it is easy to test and
replay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from .calendar import WorkCalendar
from .config import Config
from .layout import APPROVE


class Step(StrEnum):
    NEW = "new"
    AT_TECH = "at_tech"
    TECH_VERIFIED = "tech_verified"
    TECH_REFUSED = "tech_refused"
    AT_CASHIER = "at_cashier"
    AT_ACCOUNTANT = "at_accountant"
    AT_DIRECTOR = "at_director"
    AT_PRESIDENT = "at_president"
    REFUNDED = "refunded"
    FINANCE_RETURNED = "finance_returned"
    AT_ADMIN = "at_admin"
    CLOSED = "closed"


STEP_NAMES: dict[Step, str] = {
    Step.NEW: "新建退款单",
    Step.AT_TECH: "待技术部核实",
    Step.TECH_VERIFIED: "技术部已核实,待值班负责人提交财务",
    Step.TECH_REFUSED: "技术部不同意退款,待客服反馈用户",
    Step.AT_CASHIER: "待出纳初核",
    Step.AT_ACCOUNTANT: "待会计复核",
    Step.AT_DIRECTOR: "待财务总监审批",
    Step.AT_PRESIDENT: "待总裁审批",
    Step.REFUNDED: "已退款,待客服反馈用户",
    Step.FINANCE_RETURNED: "财务退回,待客服反馈用户",
    Step.AT_ADMIN: "待行政部跟踪归档",
    Step.CLOSED: "已归档",
}

# Who the form waits on at each step (role key), and the block that role fills there.
WAITING_ON: dict[Step, str | None] = {
    Step.NEW: "cs",
    Step.AT_TECH: "tech",
    Step.TECH_VERIFIED: "cs",
    Step.TECH_REFUSED: "cs",
    Step.AT_CASHIER: "cashier",
    Step.AT_ACCOUNTANT: "accountant",
    Step.AT_DIRECTOR: "director",
    Step.AT_PRESIDENT: "president",
    Step.REFUNDED: "cs",
    Step.FINANCE_RETURNED: "cs",
    Step.AT_ADMIN: "admin",
    Step.CLOSED: None,
}
BLOCK_FILLED_AT: dict[Step, str | None] = {
    Step.NEW: "cs",
    Step.AT_TECH: "tech",
    Step.AT_CASHIER: "cashier",
    Step.AT_ACCOUNTANT: "accountant",
    Step.AT_DIRECTOR: "director",
    Step.AT_PRESIDENT: "president",
    Step.AT_ADMIN: "admin",
}
FINANCE_STEPS = (Step.AT_CASHIER, Step.AT_ACCOUNTANT, Step.AT_DIRECTOR, Step.AT_PRESIDENT)
# The blocks finance fills; customer service clears them all to resubmit a returned form.
FINANCE_ROLES = ("cashier", "accountant", "director", "president")
# Steps whose hand-off changes no field (forward to finance, feedback to the customer): the
# dropped file can only prove it is the current copy by its copy token.
UNSIGNED_STEPS = frozenset(
    {Step.TECH_VERIFIED, Step.TECH_REFUSED, Step.REFUNDED, Step.FINANCE_RETURNED}
)


class Stamp(StrEnum):
    """A column of 客服退单统计表 that a hand-off fills (events.stamp).

    The ledger stores the code; people read the column's label (STAMP_LABELS), so rewording
    a label changes no row already written.
    """

    TECH = "submitted_to_tech"
    FINANCE = "submitted_to_finance"
    FINANCE_FEEDBACK = "finance_feedback"
    CUSTOMER = "customer_feedback"


# In the order of the table's columns.
STAMP_LABELS: dict[Stamp, str] = {
    Stamp.TECH: "提交技术部时间",
    Stamp.FINANCE: "提交财务时间",
    Stamp.FINANCE_FEEDBACK: "财务反馈时间",
    Stamp.CUSTOMER: "反馈用户时间",
}


def stamp_label(code: str | None) -> str | None:
    """The column label of a stored stamp code, as people read it (a code this version does
    not know, as stored: shown, not a traceback)."""
    if not code:
        return None
    return STAMP_LABELS[Stamp(code)] if code in Stamp.__members__.values() else code


@dataclass(frozen=True)
class Transition:
    to_step: Step
    to_role: str | None  # outbox folder's role; None when the form is closed
    stamp: Stamp | None
    signed_block: str | None  # the block whose signer is the actor


def next_step(
    step: Step,
    approvals: dict[str, str | None],
    amount: Decimal | None,
    config: Config,
    *,
    resubmitted: bool = False,
) -> Transition:
    """Where a form goes once the block due at ``step`` is validly filled.

    ``resubmitted``: customer service cleared the finance blocks of a form finance returned
    (e.g. once the money has arrived) and its duty lead approved it again: a new finance cycle.
    """

    def approved(role: str) -> bool:
        return approvals.get(role) == APPROVE

    match step:
        case Step.NEW:
            return Transition(Step.AT_TECH, "tech", Stamp.TECH, "cs")
        case Step.AT_TECH:
            target = Step.TECH_VERIFIED if approved("tech") else Step.TECH_REFUSED
            return Transition(target, "cs", None, "tech")
        case Step.TECH_VERIFIED:
            return Transition(Step.AT_CASHIER, "cashier", Stamp.FINANCE, None)
        case Step.AT_CASHIER | Step.AT_ACCOUNTANT | Step.AT_DIRECTOR | Step.AT_PRESIDENT:
            role = WAITING_ON[step]
            assert role is not None
            if not approved(role):
                return Transition(Step.FINANCE_RETURNED, "cs", Stamp.FINANCE_FEEDBACK, role)
            if step is Step.AT_CASHIER:
                return Transition(Step.AT_ACCOUNTANT, "accountant", None, role)
            if step is Step.AT_ACCOUNTANT:
                return Transition(Step.AT_DIRECTOR, "director", None, role)
            if (
                step is Step.AT_DIRECTOR
                and amount is not None
                and (amount >= config.president_threshold)
            ):
                return Transition(Step.AT_PRESIDENT, "president", None, role)
            return Transition(Step.REFUNDED, "cs", Stamp.FINANCE_FEEDBACK, role)
        case Step.FINANCE_RETURNED if resubmitted:
            return Transition(Step.AT_CASHIER, "cashier", Stamp.FINANCE, "cs")
        case Step.TECH_REFUSED | Step.REFUNDED | Step.FINANCE_RETURNED:
            return Transition(Step.AT_ADMIN, "admin", Stamp.CUSTOMER, None)
        case Step.AT_ADMIN:
            return Transition(Step.CLOSED, None, None, "admin")
    raise ValueError(f"no step after {step}")


@dataclass(frozen=True)
class Deadline:
    due: dt.datetime | None
    rule: str  # which limit applies, in Chinese (shown by `status`)


def step_deadline(
    step: Step,
    *,
    step_since: dt.datetime,
    reported_at: dt.datetime | None,
    finance_since: dt.datetime | None,
    config: Config,
    calendar: WorkCalendar,
) -> Deadline:
    """The deadline of the step a form is at (spec §2), for `status` and lateness."""
    limits = config.limits
    match step:
        case Step.TECH_VERIFIED:
            return Deadline(
                step_since + dt.timedelta(minutes=limits.forward_minutes),
                f"技术部返回后{limits.forward_minutes}分钟内提交财务",
            )
        case Step.AT_CASHIER | Step.AT_ACCOUNTANT | Step.AT_DIRECTOR | Step.AT_PRESIDENT:
            start = finance_since or step_since
            return Deadline(
                start + dt.timedelta(hours=limits.finance_hours),
                f"财务{limits.finance_hours}小时内处理完毕",
            )
        case Step.AT_TECH:
            start = reported_at or step_since
            return Deadline(
                start + dt.timedelta(hours=limits.refund_hours),
                f"上报后{limits.refund_hours}小时内全额退款",
            )
        case Step.TECH_REFUSED | Step.REFUNDED | Step.FINANCE_RETURNED:
            start = reported_at or step_since
            return Deadline(
                calendar.add_working_days(start, limits.refund_working_days),
                f"上报后{limits.refund_working_days}个工作日内办结",
            )
    return Deadline(None, "")


def fill_was_late(
    reported_at: dt.datetime | None, accepted_at: dt.datetime, config: Config
) -> bool:
    """The 10-minute limit for filling the form, judged when it reaches the watcher."""
    if reported_at is None:
        return False
    return accepted_at - reported_at > dt.timedelta(minutes=config.limits.fill_minutes)
