"""The two monthly statistics tables (客服退单统计表, 财务退单统计表) as files.

Each is its committed template filled: written by the same code that writes the template
(templates.write_stats_table), so the layout, the defined names, the print setup (A4
landscape, header rows on every page) and the protection are the template's; a month with
more refunds than the template's rows gets more rows above 合计.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from .calendar import Month
from .reports import total
from .templates import StatsFill, write_stats_table

COMPILER = "refundflow(自动生成)"
"""制表人 of a generated table: the program, not a person who did not compile it."""


def table_no(month: Month, *, finance: bool) -> str:
    return f"{'CWTJ' if finance else 'KFTJ'}-{month.label}"


def _cell(value: Any) -> object:
    """A DataFrame value as the table cell takes it: no NaN/NaT, dates as dates."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def write_table(
    path: Path, rows: pd.DataFrame, *, month: Month, finance: bool, compiled_on: dt.date
) -> None:
    """Write one statistics table with ``rows`` (columns as printed, in order)."""
    filled = StatsFill(
        table_no=table_no(month, finance=finance),
        compiler=COMPILER,
        compiled_on=compiled_on,
        rows=tuple(tuple(_cell(v) for v in row) for row in rows.itertuples(index=False)),
        total=total(rows["金额"]),
    )
    write_stats_table(path, finance=finance, filled=filled)
