"""State can be rebuilt from the archive (`refundflow rebuild`).

The ledger is only an index: replaying the archived received files, in order and as of the
moment each arrived, must give back the very same forms and events, without delivering
anything a second time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from refundflow import copies
from refundflow.config import load_config
from refundflow.ledger import Ledger
from refundflow.rebuild import rebuild_ledger
from refundflow.routing import Stamp
from refundflow.workspace import Workspace

from conftest import NEW_FORM, Invoke, block, drop, edit_form, make_form, take

FIRST = "TKD20261123-001"  # travels to the end
SECOND = "TKD20261123-002"  # returned once, fixed, then stops at the duty lead
FIRST_FILE = f"{FIRST}.xlsx"
SECOND_FILE = f"{SECOND}.xlsx"
LATER = "2026-11-24 10:00"  # when status is compared, after the whole history

SECOND_FORM: dict[str, object] = {
    "order_no": "TK20261122002",
    "mobile": "139001",  # wrong: returned to customer service
    "amount": 99,
    "bank": "支付宝",
    "submitter": "张三",  # on the cs roster, like every signer here
    "customer_request": "重复扣款,退一笔",
}
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"

FormState = dict[str, Any]
EventState = dict[str, Any]


def at(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M")


def process(run: Invoke, now: str, *expected: str) -> None:
    """One `refundflow process` pass; each expected text must appear in its output."""
    result = run("process", now=now)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output, result.output


def sign(root: Path, run: Invoke, role: str, person: str, form_file: str, now: str) -> None:
    """``role`` takes the form from its folder, fills its block a minute earlier, drops it."""
    signed = at(now) - dt.timedelta(minutes=1)
    drop(root, form_file, edit_form(take(root, role, form_file), block(role, person, signed)))
    process(run, now, "[已", form_file)


def mixed_history(root: Path, run: Invoke) -> int:
    """Drive a realistic day and a half of work; returns how many files were dropped."""
    first = make_form()
    drop(root, "退款申请-张三.xlsx", first)
    process(run, "2026-11-23 09:10", f"[已流转] 退款申请-张三.xlsx: {FIRST} → 技术部")
    first_at_tech = (root / "outbox" / "tech" / FIRST_FILE).read_bytes()

    # Two files in one pass: a form with a bad mobile number and a scanned PDF.
    drop(root, "退款申请-周九.xlsx", make_form({**NEW_FORM, **SECOND_FORM}))
    drop(root, "scan.pdf", PDF)
    process(run, "2026-11-23 09:12", "[已退回] 退款申请-周九.xlsx", "[已拒收] scan.pdf")

    sign(root, run, "tech", "王五", FIRST_FILE, "2026-11-23 09:20")

    fixed = edit_form(take(root, "cs", "退款申请-周九-退回.xlsx"), {"mobile": "13900139000"})
    drop(root, "退款申请-周九-退回.xlsx", fixed)
    process(run, "2026-11-23 09:25", f"{SECOND} → 技术部")

    drop(root, "张三-再发一次.xlsx", first)  # the very same bytes again
    process(run, "2026-11-23 09:30", "[重复件] 张三-再发一次.xlsx")

    drop(root, FIRST_FILE, take(root, "cs", FIRST_FILE))  # the duty lead forwards it
    process(run, "2026-11-23 09:40", f"{FIRST} → 财务部出纳")

    # A copy of the tech step filled again differently (not byte-identical: not a duplicate).
    stale = edit_form(
        first_at_tech, block("tech", "王五", at("2026-11-23 09:18"), opinion="旧副本")
    )
    drop(root, "旧的.xlsx", stale)
    process(run, "2026-11-23 09:45", "[已拒收] 旧的.xlsx: 退回:这是退款单")

    sign(root, run, "tech", "王五", SECOND_FILE, "2026-11-23 09:50")  # then nobody forwards it
    sign(root, run, "cashier", "赵六", FIRST_FILE, "2026-11-23 10:00")
    sign(root, run, "accountant", "钱七", FIRST_FILE, "2026-11-23 10:30")
    sign(root, run, "director", "孙八", FIRST_FILE, "2026-11-23 11:00")
    drop(root, FIRST_FILE, take(root, "cs", FIRST_FILE))  # customer told
    process(run, "2026-11-23 11:20", f"{FIRST} → 行政部")
    followup = {
        "admin_followup": "已核实退款到账",
        "admin_by": "吴十",
        "admin_date": at("2026-11-24 09:00"),
        "admin_approval": "同意",
    }
    drop(root, FIRST_FILE, edit_form(take(root, "admin", FIRST_FILE), followup))
    process(run, "2026-11-24 09:05", f"[已归档] {FIRST_FILE}: {FIRST} 已办结归档")
    return 14


def ledger_path(root: Path) -> Path:
    return root / "refundsheets" / "ledger.sqlite3"


def read_ledger(path: Path) -> tuple[list[FormState], list[EventState]]:
    """Every form row and every event row, field by field (event ids left out)."""
    ledger = Ledger(path)
    try:
        forms = [dataclasses.asdict(f) for f in ledger.all_forms()]
        events = [dataclasses.asdict(e) for e in ledger.events()]
    finally:
        ledger.close()
    for event in events:
        del event["id"]
    return forms, events


def files_of(root: Path) -> dict[str, bytes]:
    """Every file of the workspace except the ledger, its backups and the lock file."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not re.match(r"(ledger\.sqlite3|\.refundflow\.lock)", path.name):
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def status_views(run: Invoke) -> list[str]:
    views = []
    for args in [(), ("--json",), (FIRST,), (FIRST, "--json"), (SECOND, "--json")]:
        result = run("status", *args, now=LATER)
        assert result.exit_code == 0, result.output
        views.append(result.output)
    return views


@pytest.fixture
def history(root: Path, run: Invoke) -> int:
    """The mixed history, then two files waiting in the inbox that rebuild must not touch."""
    dropped = mixed_history(root, run)
    archived = list((root / "refundsheets" / "archive" / "received").glob("*/*"))
    assert len(archived) == dropped, "every dropped file was archived once"
    # A file of the same name and bytes as one already received, and a brand-new one.
    first_drop = next(p for p in archived if p.name.endswith("_退款申请-张三.xlsx"))
    drop(root, "退款申请-张三.xlsx", first_drop.read_bytes())
    drop(root, "新单.xlsx", make_form(order_no="TK20261123009"))
    return dropped


def check_history_recorded(forms: list[FormState], events: list[EventState]) -> None:
    """The snapshot is worth comparing: it holds every kind of outcome."""
    assert [(f["form_no"], f["step"], f["waiting_on"]) for f in forms] == [
        (FIRST, "closed", None),
        (SECOND, "tech_verified", "cs"),
    ]
    assert forms[0]["closed_at"] == at("2026-11-24 09:05")
    assert forms[0]["transitions"] == 8 and forms[1]["transitions"] == 2
    kinds = [e["kind"] for e in events]
    assert kinds.count("accepted") == 10
    assert {"returned", "rejected", "duplicate"} <= set(kinds)
    assert any("旧副本" in (e["detail"] or "") for e in events), "the stale copy"
    assert any(e["stamp"] for e in events), "statistics stamps recorded"


@pytest.mark.parametrize(
    "ledger_kept",
    [
        pytest.param(True, id="ledger-present"),
        pytest.param(False, id="ledger-deleted"),
    ],
)
def test_rebuild_gives_back_the_same_ledger_and_delivers_nothing(
    root: Path, run: Invoke, history: int, ledger_kept: bool
) -> None:
    forms, events = read_ledger(ledger_path(root))
    check_history_recorded(forms, events)
    files = files_of(root)
    statuses = status_views(run)
    if not ledger_kept:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ledger_path(root)}{suffix}").unlink(missing_ok=True)

    result = run("rebuild", now=LATER)

    assert result.exit_code == 0, result.output
    assert f"已从存档重放 {history} 个文件" in result.output
    backups = sorted(ledger_path(root).parent.glob("ledger.sqlite3.*.bak"))
    if ledger_kept:
        assert len(backups) == 1, result.output
        assert f"原账本已备份为 {backups[0].name}" in result.output
        copy = root.parent / "backup-copy.sqlite3"  # read a copy: leave the backup as it is
        shutil.copyfile(backups[0], copy)
        assert read_ledger(copy) == (forms, events), "the backup holds the old ledger"
    else:
        assert backups == []
        assert "备份" not in result.output

    rebuilt_forms, rebuilt_events = read_ledger(ledger_path(root))
    assert len(rebuilt_forms) == len(forms)
    for old, new in zip(forms, rebuilt_forms, strict=True):
        assert new == old, old["form_no"]
    assert len(rebuilt_events) == len(events)
    for i, (old, new) in enumerate(zip(events, rebuilt_events, strict=True)):
        assert new == old, f"event {i}: {old['kind']} {old['file_name']}"

    assert files_of(root) == files, "nothing delivered, archived or taken from the inbox again"
    assert sorted(p.name for p in (root / "inbox").iterdir()) == ["新单.xlsx", "退款申请-张三.xlsx"]
    assert status_views(run) == statuses


# What the code before stamp codes wrote in events.stamp: each column's label.
OLD_STAMPS = {
    "submitted_to_tech": "提交技术部时间",
    "submitted_to_finance": "提交财务时间",
    "finance_feedback": "财务反馈时间",
    "customer_feedback": "反馈用户时间",
}


def with_label_stamps(path: Path) -> None:
    """Turn the ledger back into what the code before stamp codes wrote."""
    db = sqlite3.connect(path)
    try:
        db.execute("DROP TRIGGER events_no_update")
        for code, label in OLD_STAMPS.items():
            db.execute("UPDATE events SET stamp = ? WHERE stamp = ?", (label, code))
        db.execute(
            "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
            " BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
        )
        db.execute("PRAGMA user_version = 0")
        db.commit()
        labels = {row[0] for row in db.execute("SELECT stamp FROM events WHERE stamp IS NOT NULL")}
        assert labels == set(OLD_STAMPS.values()), "every stamp is a label again"
    finally:
        db.close()


def test_a_ledger_with_label_stamps_reads_as_its_rebuild(
    root: Path, run: Invoke, history: int
) -> None:
    """A ledger written before stamp codes is migrated on opening to what rebuild gives."""
    statuses = status_views(run)
    with_label_stamps(ledger_path(root))

    assert status_views(run) == statuses, "status shows the labels as before"
    forms, events = read_ledger(ledger_path(root))
    assert {e["stamp"] for e in events if e["stamp"]} == set(Stamp)
    assert run("rebuild", now=LATER).exit_code == 0
    assert read_ledger(ledger_path(root)) == (forms, events)
    assert status_views(run) == statuses


def test_work_goes_on_after_a_rebuild(root: Path, run: Invoke, history: int) -> None:
    """The rebuilt ledger knows the numbers, the steps and what was already received."""
    assert run("rebuild", now=LATER).exit_code == 0
    result = run("process", now=LATER)
    assert result.exit_code == 0, result.output
    lines = sorted(result.output.splitlines())
    assert lines == [
        "[已流转] 新单.xlsx: TKD20261124-001 → 技术部(待技术部核实)",
        "[重复件] 退款申请-张三.xlsx: 已于 2026-11-23 09:10 收到",
    ]
    drop(root, SECOND_FILE, take(root, "cs", SECOND_FILE))  # the duty lead forwards it at last
    process(run, "2026-11-24 10:05", f"[已流转] {SECOND_FILE}: {SECOND} → 财务部出纳")
    state = json.loads(run("status", SECOND, "--json", now="2026-11-24 10:06").output)
    assert state["step"] == "at_cashier"
    archive = root / "refundsheets" / "archive"
    assert not (archive / "orphans").exists(), "replayed receipts are not taken for orphans"
    assert len(list((archive / "received").glob("*/*"))) == history + 3


# Runs `refundflow rebuild` in a real process that kills itself with SIGKILL just before it
# would replay the third archived file: a rebuild killed half way, at a known point.
KILLED_REBUILD = """
import os, signal, sys
from refundflow import processor
replay = processor.Processor.replay
replayed = []
def replay_or_die(self, *args):
    if len(replayed) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    replayed.append(replay(self, *args))
    return replayed[-1]
processor.Processor.replay = replay_or_die
from refundflow.cli import cli
cli(["--now", sys.argv[2], "rebuild", "--root", sys.argv[1]], prog_name="refundflow")
"""


def test_a_rebuild_killed_half_way_changes_nothing_and_a_rerun_completes_it(
    root: Path, run: Invoke, history: int
) -> None:
    before = read_ledger(ledger_path(root))
    files = files_of(root)

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_REBUILD, str(root), LATER],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()

    assert read_ledger(ledger_path(root)) == before, "the killed rebuild changed the ledger"
    assert files_of(root) == files
    status = run("status", FIRST, now=LATER)
    assert status.exit_code == 0 and "已办结:2026-11-24 09:05" in status.output, status.output

    result = run("rebuild", now=LATER)
    assert result.exit_code == 0, result.output
    assert result.output.endswith(f"已从存档重放 {history} 个文件,账本已重建\n"), result.output
    assert read_ledger(ledger_path(root)) == before
    leftovers = [p.name for p in ledger_path(root).parent.iterdir() if "rebuilding" in p.name]
    assert leftovers == []
    result = run("process", now=LATER)  # and work goes on with the next free number
    assert "[已流转] 新单.xlsx: TKD20261124-001 → 技术部(待技术部核实)" in result.output


# `refundflow process` in a new process whose computer clock reads an hour earlier than the
# last run's did (--now stands for the same clock's reading of the time of day).
PROCESS_WITH_CLOCK_SET_BACK = """
import sys, time
earlier = time.time_ns() - 3600 * 10**9
time.time_ns = lambda: earlier
from refundflow.cli import cli
cli(["--now", sys.argv[2], "process", "--root", sys.argv[1]], prog_name="refundflow")
"""


@pytest.mark.parametrize(
    "restart_with_clock_set_back",
    [
        pytest.param(False, id="processing-time-set-back"),
        pytest.param(True, id="restarted-with-the-computer-clock-set-back"),
    ],
)
def test_rebuild_replays_in_arrival_order_when_the_clock_went_back(
    root: Path, run: Invoke, restart_with_clock_set_back: bool
) -> None:
    drop(root, "first.xlsx", make_form())
    process(run, "2026-11-23 10:00", f"[已流转] first.xlsx: {FIRST} → 技术部")
    drop(root, "second.xlsx", make_form({**NEW_FORM, **SECOND_FORM}, mobile="13900139000"))
    second = f"[已流转] second.xlsx: {SECOND} → 技术部"
    if restart_with_clock_set_back:
        script = [sys.executable, "-c", PROCESS_WITH_CLOCK_SET_BACK, str(root), "2026-11-23 09:30"]
        done = subprocess.run(script, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0 and second in done.stdout.decode(), done
    else:
        process(run, "2026-11-23 09:30", second)
    before = read_ledger(ledger_path(root))

    result = run("rebuild", now=LATER)

    assert result.exit_code == 0, result.output
    assert read_ledger(ledger_path(root)) == before
    numbers = {f["form_no"]: f["order_no"] for f in before[0]}
    assert numbers == {FIRST: NEW_FORM["order_no"], SECOND: SECOND_FORM["order_no"]}


def test_two_rebuilds_in_a_row_keep_both_backups(root: Path, run: Invoke) -> None:
    drop(root, "first.xlsx", make_form())
    process(run, "2026-11-23 09:10", f"[已流转] first.xlsx: {FIRST} → 技术部")
    original = read_ledger(ledger_path(root))
    for _ in range(2):  # almost always within one second: backups are named to the second
        result = run("rebuild", now=LATER)
        assert result.exit_code == 0, result.output
    backups = sorted(ledger_path(root).parent.glob("ledger.sqlite3.*.bak"))
    assert len(backups) == 2
    for backup in backups:
        copy = root.parent / "backup-copy.sqlite3"
        shutil.copyfile(backup, copy)
        assert read_ledger(copy) == original
        copy.unlink()


class NoParsing:
    """A parser pool that must not be needed: every file is read ahead."""

    def run(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("a file was parsed in turn, not read ahead")


def test_rebuild_reads_ahead_and_takes_the_copies_it_sent_from_the_archive(
    root: Path, run: Invoke, history: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandboxed reads run ahead in their own workers; no routed copy is made again."""
    before = read_ledger(ledger_path(root))

    def made_again(*args: object) -> bytes:
        raise AssertionError("a copy was made again")

    monkeypatch.setattr(copies, "apply_patch", made_again)
    workspace = Workspace(root, load_config(root))
    _backup, count = rebuild_ledger(workspace, pool=NoParsing(), workers=2)  # type: ignore[arg-type]

    assert count == history
    assert read_ledger(ledger_path(root)) == before


def test_a_sent_copy_cut_short_is_made_again(
    root: Path, run: Invoke, history: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent copies are not fsynced: one a power cut left short is not trusted."""
    before = read_ledger(ledger_path(root))
    sent = sorted((root / "refundsheets" / "archive" / "sent").glob(f"*/*_{FIRST_FILE}"))
    cut = sent[3]
    cut.chmod(0o644)
    cut.write_bytes(cut.read_bytes()[:1000])
    made: list[object] = []
    patch = copies.apply_patch

    def counted(data: bytes, change: object, **kwargs: Any) -> bytes:
        made.append(change)
        return patch(data, change, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(copies, "apply_patch", counted)
    result = run("rebuild", now=LATER)

    assert result.exit_code == 0, result.output
    assert len(made) == 1, "only the copy cut short was made again"
    assert read_ledger(ledger_path(root)) == before


def test_rebuild_lists_each_outbox_folder_once_not_once_a_form(
    root: Path, run: Invoke, history: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Choosing a copy's name lists its folder; with 10,000 copies in outbox/tech/ that, once
    # a form, made a rebuild quadratic (115 s in bench/run.py). Nothing is delivered while
    # rebuilding, so one listing a folder stays true.
    before = read_ledger(ledger_path(root))
    listed: list[Path] = []
    listdir = os.listdir

    def counted(folder: Any = ".") -> list[str]:
        if "outbox" in Path(folder).parts:
            listed.append(Path(folder))
        return listdir(folder)

    monkeypatch.setattr(os, "listdir", counted)
    result = run("rebuild", now=LATER)

    assert result.exit_code == 0, result.output
    assert listed, "names were chosen"
    assert len(listed) == len(set(listed)), listed
    assert read_ledger(ledger_path(root)) == before
