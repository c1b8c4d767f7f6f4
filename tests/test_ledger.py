"""The SQLite ledger: per-file work stays indexed however long the ledger has been in use."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from refundflow.config import load_config
from refundflow.errors import LedgerError
from refundflow.ledger import FormUpdate, Ledger, NewEvent, NewReceipt, PlannedDelivery
from refundflow.processor import Processor
from refundflow.routing import Stamp
from refundflow.sandbox import ParserPool
from refundflow.workspace import Workspace

from conftest import block, drop, edit_form, make_form, take

AT = dt.datetime(2026, 11, 23, 9, 10)
# Written by the code before stamp codes (see the file's head).
LABEL_STAMP_LEDGER = Path(__file__).parent / "data" / "ledger_before_stamp_codes.sql"


def new_form(ledger: Ledger, form_no: str, order_no: str) -> None:
    ledger.record(
        event=NewEvent(AT, "accepted", f"{order_no}.xlsx", order_no, form_no=form_no),
        receipt=NewReceipt(f"{order_no}.xlsx", 1, 0, f"archive/{order_no}"),
        update=FormUpdate(form_no, order_no, "tech", "tech", AT, "268.50", {}, closed=False),
        deliveries=[],
        sent_shas=[],
    )


@pytest.mark.parametrize(
    ("numbers", "prefix", "expected"),
    [
        pytest.param([], "TKD20261123-", 0, id="none-yet"),
        pytest.param(
            ["TKD20261123-001", "TKD20261123-002", "TKD20261124-001", "TKD20261122-009"],
            "TKD20261123-",
            2,
            id="only-that-day",
        ),
        pytest.param(["tkd20261123-001"], "TKD20261123-", 0, id="case-sensitive"),
        pytest.param(["TKD20261123.001", "TKD20261123-"], "TKD20261123-", 1, id="boundaries"),
    ],
)
def test_forms_created_on_counts_one_prefix(
    tmp_path: Path, numbers: list[str], prefix: str, expected: int
) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    for i, form_no in enumerate(numbers):
        new_form(ledger, form_no, f"TK{i:010d}")
    assert ledger.forms_created_on(prefix) == expected
    ledger.close()


def plans(db_path: Path, statements: list[str]) -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of every statement that reads rows, as SQLite would run it."""
    db = sqlite3.connect(db_path)
    try:
        result = {}
        for sql in statements:
            head = sql.lstrip().split(None, 1)[0].upper()
            if head in {"SELECT", "UPDATE", "DELETE"}:
                rows = db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                result[sql] = [row[-1] for row in rows]
        return result
    finally:
        db.close()


def test_processing_a_file_never_scans_a_whole_table(root: Path) -> None:
    """A year of files must not make each new file slower: every lookup uses an index."""
    workspace = Workspace(root, load_config(root))
    statements: list[str] = []
    clock = [dt.datetime(2026, 11, 23, 9, 10)]
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: clock[0], pool=pool)
        processor.recover()
        processor.ledger._db.set_trace_callback(statements.append)
        drop(root, "new.xlsx", make_form())  # a new form, numbered
        processor.process_file(root / "inbox" / "new.xlsx")
        tech = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 12))
        clock[0] = dt.datetime(2026, 11, 23, 9, 15)
        drop(root, "tech.xlsx", edit_form(take(root, "tech", "TKD20261123-001.xlsx"), tech))
        processor.process_file(root / "inbox" / "tech.xlsx")  # an existing form moves on
        drop(root, "again.xlsx", make_form())  # the same bytes again: a duplicate
        processor.process_file(root / "inbox" / "again.xlsx")
        processor.ledger._db.set_trace_callback(None)
        processor.close()

    assert any("INSERT INTO deliveries" in s for s in statements)  # the trace saw the work
    scans = {
        sql: plan
        for sql, plan in plans(workspace.ledger_path, statements).items()
        if any(step.startswith("SCAN") for step in plan)
    }
    assert scans == {}


def event_rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM events ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_ledger_with_label_stamps_is_migrated_to_codes_in_place(tmp_path: Path) -> None:
    """The code before stamp codes stored each stamp as its column's label (提交财务时间)."""
    path = tmp_path / "ledger.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(LABEL_STAMP_LEDGER.read_text(encoding="utf-8"))
    db.close()
    before = event_rows(path)

    Ledger(path).close()
    Ledger(path).close()  # a second opening finds nothing left to do

    after = event_rows(path)
    stamp = 9  # the events table's stamp column
    assert [row[stamp] for row in after if row[stamp]] == [
        Stamp.TECH,
        Stamp.FINANCE,
        Stamp.FINANCE_FEEDBACK,
        Stamp.CUSTOMER,
    ]
    assert [row[:stamp] + row[stamp + 1 :] for row in after] == [
        row[:stamp] + row[stamp + 1 :] for row in before
    ]
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET stamp = NULL")
    finally:
        db.close()


def test_a_batch_commits_its_files_at_once_and_each_stays_all_or_nothing(tmp_path: Path) -> None:
    """rebuild records hundreds of files a transaction; a file that fails leaves no trace."""
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    other = sqlite3.connect(path)
    try:
        with ledger.batch():
            new_form(ledger, "TKD20261123-001", "TK001")
            with pytest.raises(LedgerError):  # fails after its event and receipt are written
                ledger.record(
                    event=NewEvent(AT, "accepted", "TK002.xlsx", "TK002", form_no="TKD-X"),
                    receipt=NewReceipt("TK002.xlsx", 1, 0, "archive/TK002"),
                    update=None,
                    deliveries=[PlannedDelivery("archive/sent/x", None, "sha")],  # type: ignore[arg-type]
                    sent_shas=[],
                )
            new_form(ledger, "TKD20261123-002", "TK003")
            seen = other.execute("SELECT COUNT(*) FROM forms").fetchone()[0]
            assert seen == 0, "nothing is committed before the batch ends"
        rows = other.execute("SELECT form_no, order_no FROM forms ORDER BY form_no").fetchall()
        assert rows == [("TKD20261123-001", "TK001"), ("TKD20261123-002", "TK003")]
        receipts = other.execute("SELECT name FROM receipts ORDER BY id").fetchall()
        assert receipts == [("TK001.xlsx",), ("TK003.xlsx",)], "the failed file left no receipt"
    finally:
        other.close()
        ledger.close()
