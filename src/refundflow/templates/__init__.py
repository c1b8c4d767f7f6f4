"""The four Excel templates staff fill in: written with xlsxwriter from :mod:`layout`.

Every input cell carries a workbook-scope defined name (so the form reader finds it whatever the
staff did to the layout), is unlocked, and has an input message in Chinese; everything else is
locked by sheet protection without a password, so nobody overwrites a label by accident but
anybody can lift the protection when really needed.

The version of the templates is stamped twice: as a custom document property and as a defined
name holding a string constant, because some spreadsheet programs drop custom properties when they
save a file again (see the round-trip notes in the tests).
"""

from __future__ import annotations

from pathlib import Path

from .. import layout
from ..config import Config
from .book import AMOUNT_FORMAT, DATE_FORMAT, DATETIME_FORMAT, DATETIME_HINT, REQUIRED_HINT
from .handover import HANDOVER_RULES, HANDOVER_WIDTHS, write_handover_template
from .refund import write_refund_template
from .stats import (
    StatsFill,
    write_cs_stats_template,
    write_finance_stats_template,
    write_stats_table,
)

__all__ = [
    "AMOUNT_FORMAT",
    "DATETIME_FORMAT",
    "DATETIME_HINT",
    "DATE_FORMAT",
    "HANDOVER_RULES",
    "HANDOVER_WIDTHS",
    "REQUIRED_HINT",
    "StatsFill",
    "write_cs_stats_template",
    "write_finance_stats_template",
    "write_handover_template",
    "write_refund_template",
    "write_stats_table",
    "write_templates",
]


def write_templates(dest_dir: Path, config: Config) -> list[Path]:
    """Write all four templates into ``dest_dir`` (created if missing); return their paths."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    writers = (
        (layout.REFUND_TEMPLATE_FILE, write_refund_template),
        (layout.HANDOVER_TEMPLATE_FILE, write_handover_template),
        (layout.CS_STATS_TEMPLATE_FILE, write_cs_stats_template),
        (layout.FINANCE_STATS_TEMPLATE_FILE, write_finance_stats_template),
    )
    paths = []
    for filename, write in writers:
        path = dest_dir / filename
        write(path, config)
        paths.append(path)
    return paths
