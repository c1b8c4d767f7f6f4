"""Synthetic ledger rows: refunds with their hand-offs written straight into the ledger.

For the report tests that need many refunds or a route the watcher would never allow (a
skipped step), and for bench/bench_report.py. One transaction for all rows, so 100,000
refunds take seconds, not the hours the real path would.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from refundflow.ledger import Ledger, iso
from refundflow.routing import (
    WAITING_ON,
    Stamp,
    Step,
)

BANKS = ("招商银行", "中国工商银行", "中国建设银行", "支付宝", "微信支付", "中国银行")
FAULTS = ("订单冲突", "支付成功但支付超时", "扣款成功但未收到订单号及出票验证码", "重复扣款")

# (from, to, stamp, actor's role or None, minutes after the previous hand-off)
REFUNDED_ROUTE: tuple[tuple[Step, Step, str | None, str | None, int], ...] = (
    (Step.NEW, Step.AT_TECH, Stamp.TECH, "cs", 8),
    (Step.AT_TECH, Step.TECH_VERIFIED, None, "tech", 40),
    (Step.TECH_VERIFIED, Step.AT_CASHIER, Stamp.FINANCE, None, 20),
    (Step.AT_CASHIER, Step.AT_ACCOUNTANT, None, "cashier", 60),
    (Step.AT_ACCOUNTANT, Step.AT_DIRECTOR, None, "accountant", 60),
    (Step.AT_DIRECTOR, Step.REFUNDED, Stamp.FINANCE_FEEDBACK, "director", 60),
    (Step.REFUNDED, Step.AT_ADMIN, Stamp.CUSTOMER, None, 30),
    (Step.AT_ADMIN, Step.CLOSED, None, "admin", 120),
)
PEOPLE = {
    "cs": "李四",
    "tech": "王五",
    "cashier": "赵六",
    "accountant": "钱七",
    "director": "孙八",
    "admin": "吴十",
}


@dataclass(frozen=True)
class Synthetic:
    form_no: str
    order_no: str
    reported: dt.datetime
    amount: str
    bank: str = "招商银行"
    fault: str = "订单冲突"
    mobile: str = "13800138000"
    customer_request: str = "要求全额退款"
    route: tuple[tuple[Step, Step, str | None, str | None, int], ...] = REFUNDED_ROUTE
    skip: frozenset[Step] = field(default_factory=frozenset)  # steps left out of the route


def add_refunds(ledger: Ledger, refunds: list[Synthetic]) -> None:
    """Write ``refunds`` and their accepted hand-offs into ``ledger`` in one transaction."""
    events: list[tuple[object, ...]] = []
    forms: list[tuple[object, ...]] = []
    for r in refunds:
        at = r.reported
        snapshot = {
            "form_no": r.form_no,
            "order_no": r.order_no,
            "reported_at": r.reported.strftime("%Y-%m-%d %H:%M"),
            "submitted_at": (r.reported + dt.timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M"),
            "amount": r.amount,
            "bank": r.bank,
            "fault": r.fault,
            "mobile": r.mobile,
            "submitter": "张三",
            "customer_request": r.customer_request,
        }
        step = Step.NEW
        first = None
        for from_step, to_step, stamp, role, minutes in r.route:
            at += dt.timedelta(minutes=minutes)
            if from_step in r.skip:
                continue
            first = first or at
            step = to_step
            events.append(
                (
                    iso(at), r.form_no, "accepted", from_step.value, to_step.value,
                    WAITING_ON[from_step], WAITING_ON[to_step], PEOPLE.get(role or ""),
                    stamp, f"{r.form_no}.xlsx", f"sha-{r.form_no}-{from_step}",
                )
            )  # fmt: skip
        forms.append(
            (
                r.form_no, r.order_no, step.value, WAITING_ON[step], iso(at), iso(r.reported),
                r.amount, iso(first or at), iso(at) if step is Step.CLOSED else None,
                len(r.route), json.dumps(snapshot, ensure_ascii=False),
            )
        )  # fmt: skip
    with ledger.transaction() as db:
        db.executemany(
            "INSERT INTO events (at, form_no, kind, from_step, to_step, from_role, to_role,"
            " actor, stamp, file_name, file_sha) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            events,
        )
        db.executemany(
            "INSERT INTO forms (form_no, order_no, step, waiting_on, step_since, reported_at,"
            " amount, created_at, closed_at, transitions, snapshot)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            forms,
        )


def month_of_refunds(count: int, *, year: int = 2026, month: int = 11) -> list[Synthetic]:
    """``count`` refunds spread over the month, every bank and fault, amounts to the cent."""
    out = []
    for i in range(count):
        day = 1 + i % 28
        reported = dt.datetime(year, month, day, 9 + i % 8, (i * 7) % 60)
        out.append(
            Synthetic(
                form_no=f"TKD{year}{month:02d}{day:02d}-{i + 1:06d}",
                order_no=f"TK{year}{month:02d}{i + 1:08d}",
                reported=reported,
                amount=f"{(i * 37) % 5000 + 1}.{i % 100:02d}",
                bank=BANKS[i % len(BANKS)],
                fault=FAULTS[i % len(FAULTS)],
                mobile=f"139{i:08d}",
            )
        )
    return out
