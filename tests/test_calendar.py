import datetime as dt
import logging

import chinese_calendar
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


def _first_official_workday(year: int, month: int) -> dt.date:
    """The library's own answer, to check ours against."""
    day = dt.date(year, month, 1)
    while not chinese_calendar.is_workday(day):
        day += dt.timedelta(days=1)
    return day


@pytest.mark.parametrize(
    ("year", "month", "due"),
    [
        pytest.param(2026, 8, dt.date(2026, 8, 3), id="1st-is-a-saturday"),
        pytest.param(2026, 11, dt.date(2026, 11, 2), id="1st-is-a-sunday"),
        pytest.param(2026, 10, dt.date(2026, 10, 8), id="1st-is-national-day"),
        pytest.param(2026, 5, dt.date(2026, 5, 6), id="1st-is-labour-day"),
        pytest.param(2017, 4, dt.date(2017, 4, 1), id="1st-is-a-make-up-saturday"),
        pytest.param(2026, 12, dt.date(2026, 12, 1), id="1st-is-a-tuesday"),
    ],
)
def test_statistics_are_due_on_the_first_working_day_of_the_month(
    year: int, month: int, due: dt.date
) -> None:
    assert WorkCalendar(Config()).statistics_due(year, month) == due
    assert _first_official_workday(year, month) == due


def test_statistics_due_date_can_skip_weekends_only() -> None:
    calendar = WorkCalendar(Config(report_due_over_holidays=False))
    assert calendar.statistics_due(2026, 10) == dt.date(2026, 10, 1)  # a Thursday holiday
    assert calendar.statistics_due(2017, 4) == dt.date(2017, 4, 3)  # the make-up Saturday too


def test_statistics_due_date_follows_the_sites_overrides() -> None:
    calendar = WorkCalendar(Config(holidays=(dt.date(2026, 12, 1),)))
    assert calendar.statistics_due(2026, 12) == dt.date(2026, 12, 2)


def test_a_year_without_holiday_data_falls_back_to_weekdays_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar = WorkCalendar(Config())
    with caplog.at_level(logging.WARNING, logger="refundflow.calendar"):
        assert calendar.statistics_due(2031, 3) == dt.date(2031, 3, 3)  # 1st is a Saturday
    assert calendar.fallback_years == (2031,)
    assert "没有 2031 年的法定节假日数据" in caplog.text
