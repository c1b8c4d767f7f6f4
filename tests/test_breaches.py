"""Late work: every time limit of the procedure is checked, each breach recorded once in the
ledger with whom the form waited on, shown by `status`, and alerted once through the site's
``alert_command``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dayreplay import A, B, C, D, alert_to_file, new_workspace, replay_day, set_top_level
from refundflow.config import load_config
from refundflow.ledger import Ledger
from refundflow.upkeep import Upkeep, keep_up
from refundflow.workspace import Workspace

from conftest import Invoke, block, drop, edit_form, make_form, take, wait_until

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Invoke, Path]:
    """The replayed day of dayreplay.py, with an alert command appending to a file."""
    root = tmp_path_factory.mktemp("day") / "ws"
    run = new_workspace(root)
    log = root.parent / "alerts.log"
    alert_to_file(root, log)
    replay_day(root, run)
    return root, run, log


def recorded(root: Path) -> list[tuple[str, str, str, str | None, str, str]]:
    ledger = Ledger(root / "refundsheets" / "ledger.sqlite3")
    try:
        return [
            (
                b.form_no,
                b.kind,
                f"{b.due:%Y-%m-%d %H:%M}",
                b.waited_on,
                b.step,
                f"{b.detected_at:%Y-%m-%d %H:%M}",
            )
            for b in ledger.breaches.recorded()
        ]
    finally:
        ledger.close()


def test_each_overrun_limit_is_recorded_once_with_whom_the_form_waited_on(
    day: tuple[Path, Invoke, Path],
) -> None:
    root, _run, _log = day
    assert recorded(root) == [
        # D sat at the cashier over the weekend: found by the first pass on Monday.
        (D, "finance", "2026-11-20 23:00", "cashier", "at_cashier", "2026-11-23 09:07"),
        (D, "refund", "2026-11-21 10:00", "cashier", "at_cashier", "2026-11-23 09:07"),
        # B forwarded 92 minutes after tech: found by the pass that forwarded it.
        (B, "forward", "2026-11-23 11:00", "cs", "tech_verified", "2026-11-23 11:32"),
        (C, "fill", "2026-11-23 14:10", "cs", "new", "2026-11-23 14:30"),
    ]
    assert A not in {form for form, *_ in recorded(root)}


def test_each_breach_runs_the_alert_command_exactly_once(day: tuple[Path, Invoke, Path]) -> None:
    _root, run, log = day
    for now in ("2026-11-23 16:00", "2026-11-23 16:30"):  # later passes alert nothing again
        assert run("process", now=now).exit_code == 0
    assert log.read_text(encoding="utf-8").splitlines() == [
        f"{D} finance 2026-11-20 23:00 cashier | 退款单 {D} 财务处理超时:财务12小时内处理完毕,"
        "期限 2026-11-20 23:00,当时等待财务部出纳(待出纳初核)",
        f"{D} refund 2026-11-21 10:00 cashier | 退款单 {D} 退款超时:上报后24小时内全额退款,"
        "期限 2026-11-21 10:00,当时等待财务部出纳(待出纳初核)",
        f"{B} forward 2026-11-23 11:00 cs | 退款单 {B} 提交财务超时:技术部返回后60分钟内提交财务,"
        "期限 2026-11-23 11:00,当时等待客服部(技术部已核实,待值班负责人提交财务)",
        f"{C} fill 2026-11-23 14:10 cs | 退款单 {C} 填单超时:上报后10分钟内填好退款单,"
        "期限 2026-11-23 14:10,当时等待客服部(新建退款单)",
    ]


def test_status_lists_the_recorded_breaches(day: tuple[Path, Invoke, Path]) -> None:
    _root, run, _log = day
    output = run("status", now="2026-11-23 16:50").output.splitlines()
    assert output[output.index("超时记录:") : output.index("备注:")] == [
        "超时记录:",
        f"  {D} 财务处理超时:财务12小时内处理完毕,期限 2026-11-20 23:00,当时等待财务部出纳(待出纳初核)",
        f"  {D} 退款超时:上报后24小时内全额退款,期限 2026-11-21 10:00,当时等待财务部出纳(待出纳初核)",
        f"  {B} 提交财务超时:技术部返回后60分钟内提交财务,期限 2026-11-23 11:00,"
        "当时等待客服部(技术部已核实,待值班负责人提交财务)",
        f"  {C} 填单超时:上报后10分钟内填好退款单,期限 2026-11-23 14:10,当时等待客服部(新建退款单)",
    ]
    assert output[output.index("备注:") :] == ["备注:", f"  {B} 财务退回:银行流水未查到该笔扣款"]
    state = json.loads(run("status", B, "--json", now="2026-11-23 16:50").output)
    assert state["notes"] == [
        "财务退回:银行流水未查到该笔扣款",
        "提交财务超时:技术部返回后60分钟内提交财务,期限 2026-11-23 11:00,"
        "当时等待客服部(技术部已核实,待值班负责人提交财务)",
    ]


def _to_finance(root: Path, run: Invoke, *, forward: str, amount: float = 268.5) -> None:
    drop(root, "a.xlsx", make_form(amount=amount))  # reported 2026-11-23 09:00
    assert run("process", now="2026-11-23 09:10").exit_code == 0
    verified = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 29))
    drop(root, FILE, edit_form(take(root, "tech", FILE), verified))
    assert run("process", now="2026-11-23 09:30").exit_code == 0
    drop(root, FILE, take(root, "cs", FILE))
    assert run("process", now=forward).exit_code == 0


def test_form_at_the_cashier_25_hours_after_it_was_reported_is_late(
    root: Path, run: Invoke
) -> None:
    _to_finance(root, run, forward="2026-11-23 23:00")  # finance's 12 hours end 11-24 11:00
    lines = run("status", now="2026-11-24 10:00").output.splitlines()
    assert lines[1].endswith("2026-11-24 09:00  逾期 1 小时")  # the 24-hour refund limit
    assert run("process", now="2026-11-24 10:00").exit_code == 0
    assert [(b[1], b[2], b[3]) for b in recorded(root)] == [
        ("forward", "2026-11-23 10:30", "cs"),  # forwarded 13.5 hours after tech returned it
        ("refund", "2026-11-24 09:00", "cashier"),
    ]


def test_president_approving_after_finance_12_hours_is_recorded_against_the_president(
    root: Path, run: Invoke
) -> None:
    _to_finance(root, run, forward="2026-11-23 09:40", amount=12000)
    signed = dt.datetime(2026, 11, 23, 9, 59)
    for role, person in [("cashier", "赵六"), ("accountant", "钱七"), ("director", "孙八")]:
        drop(root, FILE, edit_form(take(root, role, FILE), block(role, person, signed)))
        assert run("process", now="2026-11-23 10:00").exit_code == 0
    assert recorded(root) == []
    late = block("president", "周九", dt.datetime(2026, 11, 24, 7, 59))
    drop(root, FILE, edit_form(take(root, "president", FILE), late))
    assert run("process", now="2026-11-24 08:00").exit_code == 0
    assert recorded(root) == [
        (FORM, "finance", "2026-11-23 21:40", "president", "at_president", "2026-11-24 08:00")
    ]


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        pytest.param(["raise SystemExit(3)"], "退出码 3", id="fails"),
        pytest.param(["import time; time.sleep(30)"], "秒内结束,已终止", id="hangs"),
    ],
)
def test_a_failing_alert_command_is_logged_not_fatal_and_not_repeated(
    root: Path, run: Invoke, caplog: pytest.LogCaptureFixture, command: list[str], problem: str
) -> None:
    argv = json.dumps([sys.executable, "-c", *command])
    set_top_level(root, f"alert_command = {argv}\nalert_timeout_seconds = 0.5")
    drop(root, "a.xlsx", make_form())
    with caplog.at_level(logging.ERROR, logger="refundflow.alerts"):
        result = run("process", now="2026-11-23 09:25")  # reported 09:00: filled late
        assert result.exit_code == 0, result.output
        assert [r.getMessage() for r in caplog.records if problem in r.getMessage()] != []
        caplog.clear()
        assert run("process", now="2026-11-23 09:30").exit_code == 0
        assert [r for r in caplog.records if r.name == "refundflow.alerts"] == []


def test_watch_upkeep_finds_a_breach_without_any_file_arriving(root: Path, run: Invoke) -> None:
    """The periodic pass: a form that sits still is found late when its limit runs out."""
    drop(root, "a.xlsx", make_form())
    assert run("process", now="2026-11-23 09:10").exit_code == 0
    workspace = Workspace(root, load_config(root))
    ledger = Ledger(workspace.ledger_path)
    moments = iter(
        [dt.datetime(2026, 11, 24, 8, 59), dt.datetime(2026, 11, 24, 9, 1)]
    )  # the 24-hour limit ends 2026-11-24 09:00
    try:
        upkeep = Upkeep(workspace, ledger)
        stop, changed = threading.Event(), threading.Event()
        thread = threading.Thread(
            target=keep_up,
            args=(upkeep,),
            kwargs={
                "clock": lambda: next(moments, dt.datetime(2026, 11, 24, 9, 1)),
                "stop": stop,
                "changed": changed,
                "every": 0.01,
            },
        )
        thread.start()
        try:
            assert wait_until(lambda: ledger.breaches.recorded() != [])
        finally:
            stop.set()
            thread.join()
        assert [(b.kind, b.detected_at) for b in ledger.breaches.recorded()] == [
            ("refund", dt.datetime(2026, 11, 24, 9, 1))
        ]
    finally:
        ledger.close()


class CountingUpkeep:
    """Stands in for Upkeep: counts the passes keep_up asks for."""

    def __init__(self) -> None:
        self.after = 0
        self.periodic_passes = 0

    def after_change(self, now: dt.datetime) -> list[object]:
        self.after += 1
        return []

    def periodic(self, now: dt.datetime) -> None:
        self.periodic_passes += 1


@contextmanager
def keeping_up(upkeep: CountingUpkeep, **timing: float) -> Iterator[threading.Event]:
    """keep_up running in its thread on ``upkeep``; yields the event that says a file was
    processed. ``timing``: ``every`` and, if given, ``settle``."""
    stop, changed = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=keep_up,
        args=(upkeep,),
        kwargs={
            "clock": lambda: dt.datetime(2026, 11, 23, 16, 40),
            "stop": stop,
            "changed": changed,
            **timing,
        },
    )
    thread.start()
    try:
        yield changed
    finally:
        stop.set()
        changed.set()
        thread.join()


def test_periodic_pass_runs_while_files_keep_arriving() -> None:
    """A busy inbox must not starve the periodic pass that writes the handover sheet."""
    upkeep = CountingUpkeep()
    # settle shorter than the period: after-change passes happen too
    with keeping_up(upkeep, every=0.2, settle=0.05) as changed:

        def file_arrives_and_check() -> bool:
            changed.set()  # a file was processed, again and again
            return upkeep.periodic_passes >= 2

        assert wait_until(file_arrives_and_check)
        assert upkeep.after > 0


SLOW_ALERT = """\
import pathlib, sys, time
started, release = map(pathlib.Path, sys.argv[1:3])
started.touch()
deadline = time.monotonic() + 30
while not release.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def test_a_slow_alert_command_does_not_hold_up_the_files(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    """The command runs outside the lock the file handler needs."""
    drop(root, "a.xlsx", make_form())
    assert run("process", now="2026-11-23 09:10").exit_code == 0  # on time: no breach yet
    started, release = tmp_path / "started", tmp_path / "release"
    argv = [sys.executable, "-c", SLOW_ALERT, str(started), str(release)]
    set_top_level(root, f"alert_command = {json.dumps(argv)}")
    workspace = Workspace(root, load_config(root))
    ledger = Ledger(workspace.ledger_path)
    busy = threading.Lock()
    try:
        upkeep = Upkeep(workspace, ledger, busy=busy)
        late = dt.datetime(2026, 11, 24, 9, 1)  # the 24-hour limit ended at 09:00
        thread = threading.Thread(target=upkeep.after_change, args=(late,))
        thread.start()
        try:
            assert wait_until(started.exists)
            assert busy.acquire(timeout=10), "the file handler could take the ledger"
            busy.release()
        finally:
            release.touch()
            thread.join()
        assert [b.alerted_at for b in ledger.breaches.recorded()] == [late]
    finally:
        ledger.close()


FINANCE_FIELDS = {
    f"{role}_{part}": None
    for role in ("cashier", "accountant", "director", "president")
    for part in ("opinion", "by", "date", "approval")
}


def _late_in_two_finance_cycles(root: Path, run: Invoke) -> None:
    """Finance sits over its 12 hours, returns the form; resubmitted, it sits over them again."""
    _to_finance(root, run, forward="2026-11-23 09:40")  # finance's 12 hours end 21:40
    refusal = block("cashier", "赵六", dt.datetime(2026, 11, 23, 21, 59), approval="不同意")
    drop(root, FILE, edit_form(take(root, "cashier", FILE), refusal))
    assert run("process", now="2026-11-23 22:00").exit_code == 0
    cleared = {**FINANCE_FIELDS, "cs_date": dt.datetime(2026, 11, 24, 7, 55)}
    drop(root, FILE, edit_form(take(root, "cs", FILE), cleared))
    result = run("process", now="2026-11-24 08:00")  # a new cycle: its 12 hours end 20:00
    assert "财务部出纳" in result.output, result.output
    assert run("process", now="2026-11-24 20:30").exit_code == 0  # still at the cashier


def test_a_resubmitted_form_late_in_both_finance_cycles_gives_two_breaches_and_two_alerts(
    root: Path, run: Invoke
) -> None:
    log = root.parent / "alerts.log"
    alert_to_file(root, log)
    _late_in_two_finance_cycles(root, run)
    # Found by the passes at 22:00 and 20:30 (--now runs on from there: to the minute).
    assert [(*b[:5], b[5][:16]) for b in recorded(root) if b[1] == "finance"] == [
        (FORM, "finance", "2026-11-23 21:40", "cashier", "at_cashier", "2026-11-23 22:00"),
        (FORM, "finance", "2026-11-24 20:00", "cashier", "at_cashier", "2026-11-24 20:30"),
    ]
    assert run("process", now="2026-11-24 21:00").exit_code == 0  # alerts nothing again
    alerted = [line.split(" | ")[0] for line in log.read_text(encoding="utf-8").splitlines()]
    assert [line for line in alerted if " finance " in line] == [
        f"{FORM} finance 2026-11-23 21:40 cashier",
        f"{FORM} finance 2026-11-24 20:00 cashier",
    ]


def test_rebuild_reproduces_the_breach_of_each_finance_cycle_and_alerts_nothing_again(
    root: Path, run: Invoke
) -> None:
    _late_in_two_finance_cycles(root, run)
    log = root.parent / "alerts.log"
    alert_to_file(root, log)  # from now on: any alert would be a repeat
    before = [b[:5] for b in recorded(root)]
    assert run("rebuild", now="2026-11-24 21:00").exit_code == 0
    assert [b[:5] for b in recorded(root)] == before
    assert [b[1:3] for b in before if b[1] == "finance"] == [
        ("finance", "2026-11-23 21:40"),
        ("finance", "2026-11-24 20:00"),
    ]
    assert run("process", now="2026-11-24 21:05").exit_code == 0
    assert not log.exists()


def test_a_ledger_from_before_the_change_records_the_second_cycle_after_migration(
    root: Path, run: Invoke
) -> None:
    import sqlite3

    _to_finance(root, run, forward="2026-11-23 09:40")
    refusal = block("cashier", "赵六", dt.datetime(2026, 11, 23, 21, 59), approval="不同意")
    drop(root, FILE, edit_form(take(root, "cashier", FILE), refusal))
    assert run("process", now="2026-11-23 22:00").exit_code == 0
    db = sqlite3.connect(root / "refundsheets" / "ledger.sqlite3")
    # Put the old table back: one breach per form and kind.
    db.executescript(
        """
        ALTER TABLE breaches RENAME TO b;
        DROP INDEX IF EXISTS breaches_unalerted;
        CREATE TABLE breaches (id INTEGER PRIMARY KEY AUTOINCREMENT, form_no TEXT NOT NULL,
            kind TEXT NOT NULL, started TEXT NOT NULL, due TEXT NOT NULL, waited_on TEXT,
            step TEXT NOT NULL, detected_at TEXT NOT NULL, alerted_at TEXT,
            UNIQUE (form_no, kind));
        INSERT INTO breaches SELECT * FROM b;
        DROP TABLE b;
        """
    )
    db.close()
    cleared = {**FINANCE_FIELDS, "cs_date": dt.datetime(2026, 11, 24, 7, 55)}
    drop(root, FILE, edit_form(take(root, "cs", FILE), cleared))
    assert run("process", now="2026-11-24 08:00").exit_code == 0
    assert run("process", now="2026-11-24 20:30").exit_code == 0
    assert [(b[1], b[2], b[5][:16]) for b in recorded(root) if b[1] == "finance"] == [
        ("finance", "2026-11-23 21:40", "2026-11-23 22:00"),  # kept through the migration
        ("finance", "2026-11-24 20:00", "2026-11-24 20:30"),
    ]


def test_a_burst_of_processed_files_shares_one_upkeep_pass() -> None:
    # A pass reads every open form and rewrites the board: one after each file of a burst of
    # 1,000 made the burst take 139 s instead of 11 s.
    upkeep = CountingUpkeep()
    with keeping_up(upkeep, every=3600.0) as changed:
        for _ in range(10):  # ten files processed one after the other
            changed.set()
            # The time a file takes; a thread that takes each change at once has taken it.
            wait_until(lambda: not changed.is_set(), timeout=0.02)
        assert wait_until(lambda: upkeep.after > 0)
    assert upkeep.after == 1
    assert upkeep.periodic_passes == 0
