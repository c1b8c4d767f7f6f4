"""A month of refunds driven through `refundflow process` with --now, as staff would drive them.

Used by the report tests: November 2026 with refunds refunded, one returned by finance, one
refused by the technical department, one still at the cashier at month end, one late at
finance, and one from October that must not show up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from refundflow.cli import cli

from conftest import ROSTER, block, drop, edit_form, make_form, take

PEOPLE = {r: names[0] for r, names in ROSTER.items()}


@dataclass(frozen=True)
class Planned:
    order_no: str
    reported: dt.datetime
    amount: str
    bank: str
    fault: str
    # role -> approval, in route order; "open" stops before that role
    stops_at: str | None = None  # role the form is left waiting on at month end
    refused_by: str | None = None  # "tech" or a finance role
    finance_hours: float = 1.0  # how long each finance role takes


MONTH = (
    Planned("TK20261102001", dt.datetime(2026, 11, 2, 9, 0), "268.50", "招商银行", "订单冲突"),
    Planned(
        "TK20261105001",
        dt.datetime(2026, 11, 5, 14, 0),
        "1999.99",
        "中国工商银行",
        "支付成功但支付超时",
        finance_hours=5.0,  # 15 hours at finance: over the 12-hour limit
    ),
    Planned(
        "TK20261110001",
        dt.datetime(2026, 11, 10, 10, 0),
        "88.00",
        "招商银行",
        "订单冲突",
        refused_by="accountant",
    ),
    Planned(
        "TK20261118001",
        dt.datetime(2026, 11, 18, 16, 30),
        "520.00",
        "中国建设银行",
        "重复扣款",
        refused_by="tech",
    ),
    Planned(
        "TK20261124001",
        dt.datetime(2026, 11, 24, 11, 0),
        "3000.10",
        "支付宝",
        "扣款成功但未收到订单号及出票验证码",
    ),
    Planned(
        "TK20261130001",
        dt.datetime(2026, 11, 30, 15, 0),
        "150.00",
        "中国银行",
        "订单冲突",
        stops_at="cashier",
    ),
)
OCTOBER = Planned("TK20261030001", dt.datetime(2026, 10, 30, 9, 0), "77.70", "交通银行", "订单冲突")


def _at(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


class Driver:
    def __init__(self, root: Path) -> None:
        self.root = root

    def process(self, now: dt.datetime) -> str:
        result = CliRunner().invoke(cli, ["--now", _at(now), "process", "--root", str(self.root)])
        assert result.exit_code == 0, result.output
        return result.output

    def sign(self, form_no: str, role: str, at: dt.datetime, approval: str = "同意") -> None:
        name = f"{form_no}.xlsx"
        data = take(self.root, role, name)
        opinion = "核实无误" if approval == "同意" else "金额与银行流水不符,退回"
        values = block(role, PEOPLE[role], at, approval=approval, opinion=opinion)
        if role == "admin":
            values["admin_followup"] = values.pop("admin_opinion")
        drop(self.root, name, edit_form(data, values))
        self.process(at + dt.timedelta(minutes=1))

    def forward(self, form_no: str, at: dt.datetime) -> None:
        """The duty lead (or whoever tells the customer) drops the copy back unchanged."""
        drop(self.root, f"{form_no}.xlsx", take(self.root, "cs", f"{form_no}.xlsx"))
        self.process(at)

    def run(self, plan: Planned) -> str:
        t = plan.reported
        values = {
            "order_no": plan.order_no,
            "reported_at": t,
            "purchase_time": t - dt.timedelta(hours=3),
            "submitted_at": t + dt.timedelta(minutes=3),
            "cs_date": t + dt.timedelta(minutes=4),
            "amount": float(plan.amount),
            "bank": plan.bank,
            "fault": plan.fault,
        }
        drop(self.root, f"{plan.order_no}.xlsx", make_form(**values))
        out = self.process(t + dt.timedelta(minutes=8))
        form_no = out.split(": ", 1)[1].split(" ", 1)[0]
        t += dt.timedelta(minutes=40)
        if plan.refused_by == "tech":
            self.sign(form_no, "tech", t, approval="不同意")
            self.forward(form_no, t + dt.timedelta(hours=1))
            return form_no
        self.sign(form_no, "tech", t)
        self.forward(form_no, t + dt.timedelta(minutes=20))
        t += dt.timedelta(minutes=20)
        for role in ("cashier", "accountant", "director"):
            if plan.stops_at == role:
                return form_no
            t += dt.timedelta(hours=plan.finance_hours)
            refused = plan.refused_by == role
            self.sign(form_no, role, t, approval="不同意" if refused else "同意")
            if refused:
                break
        t += dt.timedelta(minutes=30)
        self.forward(form_no, t)  # customer told
        self.sign(form_no, "admin", t + dt.timedelta(hours=2))
        return form_no


def build_month(root: Path) -> dict[str, str]:
    """Run October's straggler and November's refunds; order number -> form number."""
    driver = Driver(root)
    return {p.order_no: driver.run(p) for p in (OCTOBER, *MONTH)}
