"""The ledger is trusted only as the record of the archive: a ledger that was deleted,
emptied, damaged, restored from an old backup or locked by another program stops the tool
with a message naming what to do, and a form number once given is never given again."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from refundflow import ledgercheck
from refundflow.config import load_config
from refundflow.processor import Processor
from refundflow.sandbox import ParserPool
from refundflow.workspace import Workspace

from conftest import Invoke, drop, make_form

FIRST = "TKD20261123-001"
SECOND = "TKD20261123-002"
THIRD = "TKD20261123-003"


def ledger_of(root: Path) -> Path:
    return root / "refundsheets" / "ledger.sqlite3"


def remove_ledger(root: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger_of(root)}{suffix}").unlink(missing_ok=True)


def workspace_files(root: Path) -> dict[str, bytes]:
    """Every file a person or the archive holds (not the ledger, its backups, the lock)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(("ledger.sqlite3", ".refundflow.lock"))
    }


def two_forms_routed(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    assert run("process", now="2026-11-23 09:12").exit_code == 0
    assert sorted(p.name for p in (root / "outbox" / "tech").iterdir()) == [
        f"{FIRST}.xlsx",
        f"{SECOND}.xlsx",
    ]


def stop_text(root: Path, what: str) -> str:
    return (
        f"Error: 错误:{what}\n"
        f"处理办法:请运行 refundflow rebuild --root {root},从存档重建账本(原有的账本文件会先自动备份)\n"
    )


def watch_process(root: Path) -> tuple[int, str]:
    """`refundflow watch` as a real process: it must stop at once, not start watching."""
    command = [sys.executable, "-m", "refundflow.cli", "--now", "2026-11-23 09:20", "watch"]
    done = subprocess.run(
        [*command, "--root", str(root)], capture_output=True, timeout=60, check=False
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize(
    "command", [pytest.param("process", id="process"), pytest.param("watch", id="watch"),
                pytest.param("status", id="status")],
)  # fmt: skip
def test_a_deleted_ledger_stops_every_command_and_names_rebuild(
    root: Path, run: Invoke, command: str
) -> None:
    two_forms_routed(root, run)
    remove_ledger(root)
    drop(root, "c.xlsx", make_form(order_no="TK20261122003"))
    files = workspace_files(root)

    if command == "watch":
        code, output = watch_process(root)
    else:
        result = run(command, now="2026-11-23 09:20")
        code, output = result.exit_code, result.output

    assert code == 1, output
    assert output == stop_text(
        root,
        f"找不到账本文件 {ledger_of(root)},但存档中已有 2 个收到的文件;"
        "不能当作新账本从头开始(会把已发出的编号再发一次)",
    )
    assert workspace_files(root) == files, "nothing moved, answered or set aside"
    assert not ledger_of(root).exists(), "no new ledger taken for the old one"


def test_after_the_stop_rebuild_restores_the_numbers_and_work_goes_on(
    root: Path, run: Invoke
) -> None:
    two_forms_routed(root, run)
    remove_ledger(root)
    drop(root, "c.xlsx", make_form(order_no="TK20261122003"))
    assert run("process", now="2026-11-23 09:20").exit_code == 1

    rebuilt = run("rebuild", now="2026-11-23 09:21")
    assert (rebuilt.exit_code, rebuilt.output) == (0, "已从存档重放 2 个文件,账本已重建\n")
    result = run("process", now="2026-11-23 09:22")
    assert (result.exit_code, result.output) == (
        0,
        f"[已流转] c.xlsx: {THIRD} → 技术部(待技术部核实)\n",
    )
    assert not (root / "refundsheets" / "archive" / "orphans").exists()


def emptied(root: Path, _old: bytes) -> None:
    remove_ledger(root)
    ledger_of(root).write_bytes(b"")


def half_written(root: Path, _old: bytes) -> None:
    data = ledger_of(root).read_bytes()
    remove_ledger(root)
    ledger_of(root).write_bytes(data[: len(data) // 2])


def overwritten(root: Path, _old: bytes) -> None:
    remove_ledger(root)
    ledger_of(root).write_bytes(b"this is not a ledger\n" * 500)


def old_backup(root: Path, old: bytes) -> None:
    remove_ledger(root)
    ledger_of(root).write_bytes(old)


def lost_schema(root: Path, _old: bytes) -> None:
    """A new empty ledger (e.g. created by another tool) where the old one was."""
    remove_ledger(root)
    db = sqlite3.connect(ledger_of(root))
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        pytest.param(emptied, "账本文件是空的 {ledger},但存档中已有 2 个收到的文件;"
                     "不能当作新账本从头开始(会把已发出的编号再发一次)", id="emptied"),
        pytest.param(half_written, "账本文件 {ledger} 已损坏,无法读取(", id="half-written"),
        pytest.param(overwritten, "账本文件 {ledger} 已损坏,无法读取(file is not a database)",
                     id="overwritten"),
        pytest.param(old_backup, "账本 {ledger} 比存档旧:存档中有 1 个收到的文件账本里没有"
                     "(最早的一个:b.xlsx,2026-11-23 09:12 收到)。", id="old-backup"),
        pytest.param(lost_schema, "账本 {ledger} 里没有任何记录:存档中有 2 个收到的文件账本里没有"
                     "(最早的一个:a.xlsx,2026-11-23 09:10 收到)。", id="replaced-by-an-empty-one"),
    ],
)  # fmt: skip
def test_a_damaged_or_older_ledger_is_a_stop_not_a_fresh_start(
    root: Path, run: Invoke, damage: Callable[[Path, bytes], None], what: str
) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    backup = ledger_of(root).read_bytes()  # a copy kept after the first form
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    assert run("process", now="2026-11-23 09:12").exit_code == 0
    damage(root, backup)
    drop(root, "c.xlsx", make_form(order_no="TK20261122003"))
    files = workspace_files(root)

    for command in ("process", "status"):
        result = run(command, now="2026-11-23 09:20")
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        first, hint = result.output.splitlines()
        assert first.startswith("Error: 错误:" + what.format(ledger=ledger_of(root))), first
        assert hint.startswith(f"处理办法:请运行 refundflow rebuild --root {root},"), hint
    assert workspace_files(root) == files

    rebuilt = run("rebuild", now="2026-11-23 09:21")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rebuilt.output.endswith("已从存档重放 2 个文件,账本已重建\n"), rebuilt.output
    result = run("process", now="2026-11-23 09:22")
    assert result.output == f"[已流转] c.xlsx: {THIRD} → 技术部(待技术部核实)\n"


def test_a_ledger_another_program_holds_locked_is_said_at_start(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    other = sqlite3.connect(ledger_of(root), isolation_level=None)  # e.g. a database viewer
    try:
        other.execute("BEGIN IMMEDIATE")  # editing, not saved yet
        result = run("process", now="2026-11-23 09:12")
        assert result.exit_code == 1
        assert result.output == (
            f"Error: 错误:账本文件 {ledger_of(root)} 正被其他程序占用,无法写入(database is locked)\n"
            "处理办法:请关闭打开了账本的程序(例如数据库查看工具)后重试;不要用其他程序修改账本\n"
        )
        assert (root / "inbox" / "b.xlsx").exists()
    finally:
        other.close()
    result = run("process", now="2026-11-23 09:12")
    assert result.output == f"[已流转] b.xlsx: {SECOND} → 技术部(待技术部核实)\n"


def kill_before_the_commit(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Process inbox/``name`` up to its commit and stop there, as kill -9 would."""
    workspace = Workspace(root, load_config(root))
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 12), pool=pool)

        def killed(**_: object) -> int:
            raise KeyboardInterrupt  # stands for kill -9 just before the commit

        with monkeypatch.context() as patch:
            patch.setattr(processor.ledger, "record", killed)
            with pytest.raises(KeyboardInterrupt):
                processor.process_file(root / "inbox" / name)
        processor.close()


def test_a_kill_between_archiving_and_committing_is_still_recovered(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one archived copy a ledger may rightly not know: its file is still in the inbox."""
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    kill_before_the_commit(root, "b.xlsx", monkeypatch)
    received = root / "refundsheets" / "archive" / "received"
    assert len(list(received.glob("*/*"))) == 2  # archived, not committed

    result = run("process", now="2026-11-23 09:13")

    assert (result.exit_code, result.output) == (
        0,
        f"[已流转] b.xlsx: {SECOND} → 技术部(待技术部核实)\n",
    )
    # Set aside: the interrupted attempt's received copy and the copy it would have sent,
    # whose number was never given (b.xlsx got it now).
    orphans = root / "refundsheets" / "archive" / "orphans"
    assert sorted(p.name.split("_", 3)[3] for p in orphans.iterdir()) == [
        f"{SECOND}.xlsx",
        "b.xlsx",
    ]
    assert len(list(received.glob("*/*"))) == 2


def test_rebuild_after_a_kill_before_the_commit_leaves_that_file_to_be_processed(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    kill_before_the_commit(root, "b.xlsx", monkeypatch)

    rebuilt = run("rebuild", now="2026-11-23 09:13")
    assert rebuilt.output.endswith("已从存档重放 1 个文件,账本已重建\n"), rebuilt.output
    result = run("process", now="2026-11-23 09:14")

    assert result.output == f"[已流转] b.xlsx: {SECOND} → 技术部(待技术部核实)\n"


def delete_form_rows(root: Path) -> None:
    """What someone "tidying up" the ledger with a database tool can do."""
    db = sqlite3.connect(ledger_of(root))
    db.execute("DELETE FROM forms")
    db.commit()
    db.close()


def test_a_form_number_found_in_the_archive_is_never_given_again(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    delete_form_rows(root)
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))

    result = run("process", now="2026-11-23 09:12")

    assert result.output == f"[已流转] b.xlsx: {SECOND} → 技术部(待技术部核实)\n"
    assert sorted(p.name for p in (root / "outbox" / "tech").iterdir()) == [
        f"{FIRST}.xlsx",
        f"{SECOND}.xlsx",
    ]


def without_marks(root: Path) -> None:
    """The ledger as the code before arrival marks wrote it."""
    db = sqlite3.connect(ledger_of(root))
    db.execute("DROP TABLE meta")
    db.commit()
    db.close()


def test_a_ledger_from_before_arrival_marks_is_taken_up_when_it_knows_the_archive(
    root: Path, run: Invoke
) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    without_marks(root)
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    result = run("process", now="2026-11-23 09:12")
    assert result.output == f"[已流转] b.xlsx: {SECOND} → 技术部(待技术部核实)\n"
    rebuilt = run("rebuild", now="2026-11-23 09:13")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert run("status", SECOND, "--json").exit_code == 0


def test_a_ledger_from_before_arrival_marks_that_missed_files_is_a_stop(
    root: Path, run: Invoke
) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    old = ledger_of(root).read_bytes()
    for i, order in enumerate(("TK20261122002", "TK20261122003")):
        drop(root, f"{i}.xlsx", make_form(order_no=order))
        assert run("process", now=f"2026-11-23 09:1{i + 1}").exit_code == 0
    old_backup(root, old)
    without_marks(root)

    result = run("process", now="2026-11-23 09:20")

    assert result.exit_code == 1
    assert "比存档旧:存档中有 2 个收到的文件账本里没有" in result.output


def test_a_brand_new_workspace_starts_a_new_ledger(root: Path, run: Invoke) -> None:
    assert not ledger_of(root).exists()
    drop(root, "a.xlsx", make_form())
    result = run("process")
    assert result.output == f"[已流转] a.xlsx: {FIRST} → 技术部(待技术部核实)\n"
    assert ledger_of(root).exists()


def test_status_on_a_brand_new_workspace(root: Path, run: Invoke) -> None:
    assert run("status").output == "没有未办结的退款单\n"


def test_a_ledger_that_cannot_be_opened_is_said_in_chinese(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    remove_ledger(root)
    ledger_of(root).mkdir()  # what no permission or a broken disk looks like to SQLite

    result = run("process", now="2026-11-23 09:12")

    assert result.exit_code == 1
    assert result.output == (
        f"Error: 错误:无法读写账本文件 {ledger_of(root)}(unable to open database file)\n"
        "处理办法:请检查该文件和所在文件夹的读写权限与磁盘;如果文件已损坏,"
        f"请运行 refundflow rebuild --root {root},从存档重建账本(原有的账本文件会先自动备份)\n"
    )


def test_status_while_a_watcher_commits_a_file_is_not_taken_for_a_lost_commit(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status takes no lock: between its reads the watcher may commit a file and take it out
    of the inbox, which must not look like a ledger that lost that commit."""
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    drop(root, "b.xlsx", make_form(order_no="TK20261122002"))
    workspace = Workspace(root, load_config(root))
    archived, go_on = threading.Event(), threading.Event()
    with ParserPool(memory_mb=512, timeout=20) as pool:
        watcher = Processor(workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 12), pool=pool)
        record = watcher.ledger.record

        def record_when_told(**kwargs: Any) -> int:
            archived.set()  # b.xlsx is archived; its commit waits for status to look
            go_on.wait(timeout=30)
            return record(**kwargs)

        monkeypatch.setattr(watcher.ledger, "record", record_when_told)
        working = threading.Thread(target=watcher.process_file, args=(root / "inbox" / "b.xlsx",))
        working.start()
        assert archived.wait(timeout=30)
        still_in_inbox = ledgercheck._still_in_inbox

        def after_the_commit(archived_copy: Path, inbox: Path) -> bool:
            go_on.set()  # status has listed b.xlsx as not recorded; the watcher commits now
            working.join(timeout=30)
            return still_in_inbox(archived_copy, inbox)

        monkeypatch.setattr(ledgercheck, "_still_in_inbox", after_the_commit)
        try:
            ledgercheck.open_ledger(workspace).close()
        finally:
            go_on.set()
            working.join(timeout=30)
            watcher.close()
    assert not (root / "inbox" / "b.xlsx").exists()
