import datetime as dt
from decimal import Decimal

import pytest

from refundflow.calendar import WorkCalendar
from refundflow.config import Config
from refundflow.routing import (
    Stamp,
    Step,
    fill_was_late,
    next_step,
    stamp_label,
    step_deadline,
)

OK = "同意"
NO = "不同意"


@pytest.mark.parametrize(
    ("step", "approvals", "amount", "to_step", "to_role", "stamp"),
    [
        pytest.param(Step.NEW, {"cs": OK}, "100", Step.AT_TECH, "tech", Stamp.TECH, id="new"),
        pytest.param(
            Step.AT_TECH, {"tech": OK}, "100", Step.TECH_VERIFIED, "cs", None, id="tech-agrees"
        ),
        pytest.param(
            Step.AT_TECH, {"tech": NO}, "100", Step.TECH_REFUSED, "cs", None, id="tech-refuses"
        ),
        pytest.param(
            Step.TECH_VERIFIED,
            {},
            "100",
            Step.AT_CASHIER,
            "cashier",
            Stamp.FINANCE,
            id="duty-lead-forwards",
        ),
        pytest.param(
            Step.AT_CASHIER,
            {"cashier": OK},
            "100",
            Step.AT_ACCOUNTANT,
            "accountant",
            None,
            id="cashier-agrees",
        ),
        pytest.param(
            Step.AT_CASHIER,
            {"cashier": NO},
            "100",
            Step.FINANCE_RETURNED,
            "cs",
            Stamp.FINANCE_FEEDBACK,
            id="cashier-returns",
        ),
        pytest.param(
            Step.AT_ACCOUNTANT,
            {"accountant": OK},
            "100",
            Step.AT_DIRECTOR,
            "director",
            None,
            id="accountant-agrees",
        ),
        pytest.param(
            Step.AT_DIRECTOR,
            {"director": OK},
            "100",
            Step.REFUNDED,
            "cs",
            Stamp.FINANCE_FEEDBACK,
            id="director-refunds-small-amount",
        ),
        pytest.param(
            Step.AT_DIRECTOR,
            {"director": OK},
            "10000",
            Step.AT_PRESIDENT,
            "president",
            None,
            id="director-escalates-at-threshold",
        ),
        pytest.param(
            Step.AT_DIRECTOR,
            {"director": NO},
            "10000",
            Step.FINANCE_RETURNED,
            "cs",
            Stamp.FINANCE_FEEDBACK,
            id="director-returns",
        ),
        pytest.param(
            Step.AT_PRESIDENT,
            {"president": OK},
            "20000",
            Step.REFUNDED,
            "cs",
            Stamp.FINANCE_FEEDBACK,
            id="president-agrees",
        ),
        pytest.param(
            Step.AT_PRESIDENT,
            {"president": NO},
            "20000",
            Step.FINANCE_RETURNED,
            "cs",
            Stamp.FINANCE_FEEDBACK,
            id="president-returns",
        ),
        pytest.param(
            Step.REFUNDED,
            {},
            "100",
            Step.AT_ADMIN,
            "admin",
            Stamp.CUSTOMER,
            id="customer-told-of-refund",
        ),
        pytest.param(
            Step.TECH_REFUSED,
            {},
            "100",
            Step.AT_ADMIN,
            "admin",
            Stamp.CUSTOMER,
            id="customer-told-of-refusal",
        ),
        pytest.param(
            Step.FINANCE_RETURNED,
            {},
            "100",
            Step.AT_ADMIN,
            "admin",
            Stamp.CUSTOMER,
            id="customer-told-of-return",
        ),
        pytest.param(Step.AT_ADMIN, {"admin": OK}, "100", Step.CLOSED, None, None, id="closed"),
    ],
)
def test_route(
    step: Step,
    approvals: dict[str, str | None],
    amount: str,
    to_step: Step,
    to_role: str | None,
    stamp: str | None,
) -> None:
    move = next_step(step, approvals, Decimal(amount), Config())
    assert (move.to_step, move.to_role, move.stamp) == (to_step, to_role, stamp)


def test_threshold_comes_from_configuration() -> None:
    move = next_step(
        Step.AT_DIRECTOR,
        {"director": OK},
        Decimal("600"),
        Config(president_threshold=Decimal("500")),
    )
    assert move.to_step is Step.AT_PRESIDENT


T0 = dt.datetime(2026, 11, 23, 9, 0)


@pytest.mark.parametrize(
    ("step", "due"),
    [
        pytest.param(Step.TECH_VERIFIED, T0 + dt.timedelta(minutes=60), id="forward-60-min"),
        pytest.param(Step.AT_ACCOUNTANT, dt.datetime(2026, 11, 23, 20, 0), id="finance-12-h"),
        pytest.param(Step.AT_TECH, dt.datetime(2026, 11, 24, 8, 0), id="refund-24-h"),
        pytest.param(Step.REFUNDED, dt.datetime(2026, 11, 26, 8, 0), id="three-working-days"),
        pytest.param(Step.AT_ADMIN, None, id="admin-has-no-limit"),
    ],
)
def test_step_deadlines(step: Step, due: dt.datetime | None) -> None:
    config = Config()
    deadline = step_deadline(
        step,
        step_since=T0,
        reported_at=dt.datetime(2026, 11, 23, 8, 0),
        finance_since=dt.datetime(2026, 11, 23, 8, 0),
        config=config,
        calendar=WorkCalendar(config),
    )
    assert deadline.due == due


@pytest.mark.parametrize(
    ("minutes", "late"),
    [pytest.param(10, False, id="on-time"), pytest.param(11, True, id="late")],
)
def test_ten_minute_fill_limit(minutes: int, late: bool) -> None:
    assert fill_was_late(T0, T0 + dt.timedelta(minutes=minutes), Config()) is late


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        pytest.param("submitted_to_tech", "提交技术部时间", id="tech"),
        pytest.param("submitted_to_finance", "提交财务时间", id="finance"),
        pytest.param("finance_feedback", "财务反馈时间", id="finance-feedback"),
        pytest.param("customer_feedback", "反馈用户时间", id="customer"),
        pytest.param(None, None, id="no-stamp"),
        pytest.param("written_by_a_later_version", "written_by_a_later_version", id="unknown"),
    ],
)
def test_a_stored_stamp_code_is_shown_by_its_column_label(
    stored: str | None, shown: str | None
) -> None:
    assert stamp_label(stored) == shown
