"""The SQLite ledger: forms, an append-only event log, receipts and pending deliveries.

The workbooks stay the documents of record; the ledger is the index that lets the watcher
know each form's step, recognise duplicates, and finish interrupted work after a crash.
Every file's outcome is committed in ONE transaction (receipt + event + form + deliveries),
so a kill at any instant leaves either nothing or everything recorded.

Modules:

- :mod:`.schema` - the tables, and the in-place migrations of ledgers earlier versions wrote;
- :mod:`.rows` - the rows as typed values, and what one processed file adds (``NewEvent``…);
- :mod:`.store` - :class:`Ledger`: opening, transactions, forms, events, receipts, deliveries;
- :mod:`.breachlog` - the recorded breaches of the time limits (``Ledger.breaches``);
- :mod:`.stats` - the monthly statistics' queries (``Ledger.stats``);
- :mod:`.failures` - SQLite's failures as a LedgerError people can act on.
"""

from .breachlog import BreachLog, BreachRow
from .failures import ledger_error, ledger_errors, rebuild_hint
from .rows import (
    AnsweredFile,
    Delivery,
    EventKind,
    EventRow,
    FormRow,
    FormUpdate,
    GivenCopy,
    NewEvent,
    NewReceipt,
    PlannedDelivery,
    Receipt,
    ReturnedNew,
    SentCopy,
    iso,
    parse_iso,
)
from .stats import StatsQueries
from .store import Ledger

__all__ = [
    "AnsweredFile",
    "BreachLog",
    "BreachRow",
    "Delivery",
    "EventKind",
    "EventRow",
    "FormRow",
    "FormUpdate",
    "GivenCopy",
    "Ledger",
    "NewEvent",
    "NewReceipt",
    "PlannedDelivery",
    "Receipt",
    "ReturnedNew",
    "SentCopy",
    "StatsQueries",
    "iso",
    "ledger_error",
    "ledger_errors",
    "parse_iso",
    "rebuild_hint",
]
