import datetime as dt

import pytest

from refundflow.calendar import WorkCalendar
from refundflow.config import Config


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        pytest.param(
            dt.datetime(2026, 11, 23, 9, 30), 3, dt.datetime(2026, 11, 26, 9, 30), id="plain-week"
        ),
        pytest.param(
            dt.datetime(2026, 11, 27, 16, 0),
            3,
            dt.datetime(2026, 12, 2, 16, 0),
            id="over-a-weekend",
        ),
        pytest.param(
            dt.datetime(2026, 9, 30, 10, 0),
            1,
            dt.datetime(2026, 10, 8, 10, 0),
            id="over-national-day",
        ),
    ],
)
def test_add_working_days(start: dt.datetime, days: int, due: dt.datetime) -> None:
    assert WorkCalendar(Config()).add_working_days(start, days) == due


def test_overrides_win_over_the_official_calendar() -> None:
    config = Config(workdays=(dt.date(2026, 11, 28),), holidays=(dt.date(2026, 11, 24),))
    calendar = WorkCalendar(config)
    assert calendar.is_workday(dt.date(2026, 11, 28))  # a Saturday made a working day
    assert not calendar.is_workday(dt.date(2026, 11, 24))


def test_years_beyond_the_library_fall_back_to_weekdays() -> None:
    calendar = WorkCalendar(Config())
    assert calendar.is_workday(dt.date(2031, 3, 4))  # a Tuesday
    assert not calendar.is_workday(dt.date(2031, 3, 8))  # a Saturday


@pytest.mark.parametrize(
    ("year", "month", "day"),
    [
        pytest.param(2026, 12, dt.date(2026, 12, 1), id="tuesday"),
        pytest.param(2026, 11, dt.date(2026, 11, 2), id="sunday-postponed"),
        pytest.param(2026, 8, dt.date(2026, 8, 3), id="saturday-postponed"),
    ],
)
def test_monthly_statistics_are_due_on_the_first_postponed_past_weekends(
    year: int, month: int, day: dt.date
) -> None:
    assert WorkCalendar.monthly_submission_day(year, month) == day
