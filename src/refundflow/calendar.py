"""Working days: the official Chinese calendar (chinese_calendar) plus the company's overrides.

Years the library does not know yet fall back to Monday–Friday, so a deadline is never missing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

import chinese_calendar

from .config import Config

log = logging.getLogger(__name__)


class WorkCalendar:
    def __init__(self, config: Config) -> None:
        self._workdays = frozenset(config.workdays)
        self._holidays = frozenset(config.holidays)
        self._over_holidays = config.report_due_over_holidays
        self._warned_years: set[int] = set()
        self._answers: dict[dt.date, bool] = {}

    @property
    def fallback_years(self) -> tuple[int, ...]:
        """Years asked about that the official calendar has no data for (counted Mon–Fri)."""
        return tuple(sorted(self._warned_years))

    def is_workday(self, day: dt.date) -> bool:
        # A month's statistics ask about the same few dozen days tens of thousands of times.
        known = self._answers.get(day)
        if known is None:
            known = self._answers[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: dt.date) -> bool:
        if day in self._workdays:
            return True
        if day in self._holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            # The library ships each year's official holidays; beyond them, weekdays only.
            if day.year not in self._warned_years:
                self._warned_years.add(day.year)
                log.warning("没有 %s 年的法定节假日数据:按周一至周五计算工作日", day.year)
            return day.weekday() < 5

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same time of day, ``days`` working days after ``start``'s day."""
        day = start.date()
        counted = 0
        while counted < days:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return dt.datetime.combine(day, start.time())

    @staticmethod
    def monthly_submission_day(year: int, month: int) -> dt.date:
        """The 1st of the month, postponed past a weekend (遇双休日顺延)."""
        day = dt.date(year, month, 1)
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        return day

    def statistics_due(self, year: int, month: int) -> dt.date:
        """When the tables of the month before ``year-month`` are due: its 1st, postponed
        past weekends (遇双休日顺延) and, unless configured off, past public holidays (and
        counting 调休 make-up Saturdays as working days), with the site's overrides."""
        day = dt.date(year, month, 1)
        if not self._over_holidays:
            return self.monthly_submission_day(year, month)
        while not self.is_workday(day):
            day += dt.timedelta(days=1)
        return day


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``"2026-11"`` -> Month; ValueError for anything else."""
        match = re.fullmatch(r"(\d{4})-(\d{1,2})", text.strip())
        if not match or not 1 <= int(match[2]) <= 12:
            raise ValueError(text)
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def before(cls, day: dt.date) -> Month:
        """The month before the one ``day`` is in."""
        last = day.replace(day=1) - dt.timedelta(days=1)
        return cls(last.year, last.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def next_first(self) -> dt.date:
        return dt.date(self.year + self.month // 12, self.month % 12 + 1, 1)
