"""What people (careless or not) can put in inbox/, and what the watcher must never do with it.

Issue "Trust": links are never followed, big files are never read whole, a folder that cannot be
written holds nothing else up, long names are answered, and a step that changes no field must
come from the copy we delivered last.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest

from refundflow import archive
from refundflow.config import load_config
from refundflow.inboxfile import Identity, remove_if_unchanged
from refundflow.processor import Outcome, Processor
from refundflow.sandbox import ParserPool
from refundflow.workspace import Workspace

from conftest import Invoke, block, drop, edit_form, make_form, take
from office import needs_soffice, soffice_convert

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
SECRET = b"root:$6$secret-hash-of-the-server:19000:0:99999:7:::\n"
REPLY = ".退回原因.txt"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".gitkeep")


def archived_bytes(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in (root / "refundsheets" / "archive").rglob("*") if p.is_file()]


def reply_of(root: Path, name: str) -> str:
    return (root / "outbox" / "rejected" / f"{name}{REPLY}").read_text(encoding="utf-8-sig")


@contextmanager
def processor_for(root: Path, now: str = "2026-11-23 09:10") -> Iterator[Processor]:
    moment = dt.datetime.strptime(now, "%Y-%m-%d %H:%M")
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(Workspace(root, load_config(root)), clock=lambda: moment, pool=pool)
        try:
            yield processor
        finally:
            processor.close()


# ---- 1. nothing is opened through a link ---------------------------------------------------


def test_symlink_in_inbox_is_answered_not_followed(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    (root / "inbox" / "x.xlsx").symlink_to(secret)
    with processor_for(root) as processor:
        result = processor.process_file(root / "inbox" / "x.xlsx")
    assert result.outcome is Outcome.REJECTED
    assert names(root / "inbox") == []
    assert names(root / "outbox" / "rejected") == [f"x.xlsx{REPLY}"]
    assert "符号链接" in reply_of(root, "x.xlsx")
    assert all(SECRET not in data for data in archived_bytes(root))
    assert secret.read_bytes() == SECRET  # the target is neither read nor touched


def test_hard_link_in_inbox_is_answered_not_read(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    os.link(secret, root / "inbox" / "y.xlsx")
    with processor_for(root) as processor:
        processor.process_file(root / "inbox" / "y.xlsx")
    assert names(root / "inbox") == []
    assert names(root / "outbox" / "rejected") == [f"y.xlsx{REPLY}"]
    assert "硬链接" in reply_of(root, "y.xlsx")
    assert all(SECRET not in data for data in archived_bytes(root))
    assert secret.read_bytes() == SECRET and secret.stat().st_nlink == 1


def test_fifo_in_inbox_is_answered_without_blocking(root: Path) -> None:
    os.mkfifo(root / "inbox" / "pipe.xlsx")  # opening it for reading would block for ever
    with processor_for(root) as processor:
        result = processor.process_file(root / "inbox" / "pipe.xlsx")
    assert result.outcome is Outcome.REJECTED
    assert names(root / "inbox") == []
    assert "命名管道" in reply_of(root, "pipe.xlsx")


def test_folder_dropped_in_inbox_is_moved_to_rejected_whole(root: Path) -> None:
    folder = root / "inbox" / "十一月的单子"
    folder.mkdir()
    form = make_form()
    (folder / "a.xlsx").write_bytes(form)
    with processor_for(root) as processor:
        processor.process_file(folder)
    assert names(root / "inbox") == []
    moved = root / "outbox" / "rejected" / "十一月的单子"
    assert (moved / "a.xlsx").read_bytes() == form
    assert "文件夹" in reply_of(root, "十一月的单子")


def test_symlink_is_answered_through_the_cli_and_never_leaks(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    (root / "inbox" / "x.xlsx").symlink_to(secret)
    result = run("process")
    assert result.exit_code == 0, result.output
    assert "符号链接" in result.output
    assert names(root / "inbox") == []
    assert not (root / "outbox" / "rejected" / "x.xlsx").exists()
    assert all(SECRET not in data for data in archived_bytes(root))


# ---- 5. a step that changes no field proves it comes from the copy we delivered ------------


def to_tech_verified(root: Path, run: Invoke) -> bytes:
    """File a form and let 技术部 verify it; returns the file 技术部 saved and dropped."""
    drop(root, "a.xlsx", make_form())
    assert run("process").exit_code == 0
    tech_file = edit_form(
        take(root, "tech", FILE), block("tech", "王五", dt.datetime(2026, 11, 23, 9, 30))
    )
    drop(root, FILE, tech_file)
    assert run("process", now="2026-11-23 09:31").output.startswith(f"[已流转] {FILE}")
    return tech_file


def without_history_sheet(data: bytes) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    del wb["流转记录"]
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_forward_with_another_departments_copy_is_refused(root: Path, run: Invoke) -> None:
    tech_file = to_tech_verified(root, run)
    # 技术部 deletes 流转记录 from its own saved file and drops it as the "forward to finance"
    drop(root, "转财务.xlsx", without_history_sheet(tech_file))
    result = run("process", now="2026-11-23 09:40")
    assert result.output.startswith("[已拒收] 转财务.xlsx: 退回:这不是最近一次发出的退款单")
    assert "副本凭证缺失" in result.output
    assert names(root / "outbox" / "cashier") == []
    # the duty lead's real copy still goes on
    drop(root, FILE, take(root, "cs", FILE))
    result = run("process", now="2026-11-23 09:45")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"


def test_forward_with_an_earlier_copy_is_refused_even_with_its_history(
    root: Path, run: Invoke
) -> None:
    tech_file = to_tech_verified(root, run)
    resaved = edit_form(tech_file, {"tech_opinion": "核实无误,同意退款"})
    drop(root, "转财务.xlsx", resaved)  # the tech copy carries the previous copy's token
    result = run("process", now="2026-11-23 09:40")
    assert result.output.startswith("[已拒收] 转财务.xlsx: 退回:")
    assert names(root / "outbox" / "cashier") == []


@pytest.mark.office
@needs_soffice
def test_current_copy_saved_again_by_libreoffice_still_forwards(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    to_tech_verified(root, run)
    lead = tmp_path / "lead"
    lead.mkdir()
    (lead / FILE).write_bytes(take(root, "cs", FILE))
    saved = soffice_convert(lead / FILE, "xlsx:Calc MS Excel 2007 XML", tmp_path / "saved")
    drop(root, FILE, saved.read_bytes())
    result = run("process", now="2026-11-23 09:45")
    assert result.output == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n"


# ---- 7. one folder that cannot be written holds nothing else up ---------------------------


def chattr(flag: str, path: Path) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def frozen_tech(root: Path) -> Iterator[Path]:
    """outbox/tech/ made unwritable, even for root (immutable), as a read-only share is."""
    tech = root / "outbox" / "tech"
    if shutil.which("chattr") is None or not chattr("+i", tech):
        pytest.skip("cannot make a folder immutable here (chattr +i)")
    try:
        yield tech
    finally:
        chattr("-i", tech)


def test_undeliverable_folder_holds_nothing_else_up(
    root: Path, run: Invoke, frozen_tech: Path
) -> None:
    drop(root, "a.xlsx", make_form())
    drop(root, "junk.xlsx", b"not a workbook")
    result = run("process")
    assert result.exit_code == 0, result.output
    assert f"[已流转] a.xlsx: {FORM} → 技术部(待技术部核实)" in result.output
    assert "投递失败,稍后自动重试:outbox/tech/TKD20261123-001.xlsx" in result.output
    assert "[已拒收] junk.xlsx" in result.output  # everything else goes on
    assert names(root / "inbox") == []  # committed and archived: out of the inbox
    status = run("status", now="2026-11-23 09:11")
    assert (
        "未能投递的文件(已存档,目标文件夹可写后自动补发):\n  outbox/tech/TKD20261123-001.xlsx"
        in (status.output)
    )
    # a restart with the folder still unwritable does not stop either
    drop(root, "b.xlsx", b"still not a workbook")
    result = run("process", now="2026-11-23 09:12")
    assert result.exit_code == 0, result.output
    assert "[已拒收] b.xlsx" in result.output

    chattr("-i", frozen_tech)
    result = run("process", now="2026-11-23 09:13")
    assert result.exit_code == 0, result.output
    assert names(frozen_tech) == [FILE]
    assert "未能投递" not in run("status", now="2026-11-23 09:14").output


def test_watch_retries_a_failed_delivery_by_itself(root: Path, frozen_tech: Path) -> None:
    from conftest import wait_until

    config = root / "refundflow.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("# rescan_seconds = 60", "rescan_seconds = 0.5"),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "refundflow.cli", "watch", "--root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    try:
        drop(root, "a.xlsx", make_form())
        assert wait_until(lambda: names(root / "inbox") == [], timeout=60)
        assert names(frozen_tech) == []
        chattr("-i", frozen_tech)
        # the real clock: the form number carries today's date
        assert wait_until(lambda: len(names(frozen_tech)) == 1, timeout=60)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert err.count("已补发") == 1, (out, err)  # in the service log
    assert err.count("投递失败,稍后自动重试") == 1, (out, err)  # said once, not at every retry
    assert "Traceback" not in err


def test_startup_recovery_with_an_unwritable_folder_does_not_raise(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop(root, "a.xlsx", make_form())
    real = archive.place_new

    def refuse_tech(dest: Path, data: bytes, *, durable: bool = True) -> Path:
        if dest.parent.name == "tech":
            raise PermissionError(errno.EACCES, "Permission denied", str(dest))
        return real(dest, data, durable=durable)

    monkeypatch.setattr(archive, "place_new", refuse_tech)
    with processor_for(root) as processor:
        result = processor.process_file(root / "inbox" / "a.xlsx")
        assert result.pending and "没有写入权限" in result.pending[0]
    with processor_for(root, "2026-11-23 09:20") as processor:
        recovered = processor.recover()  # raised PermissionError before
        assert [r.pending != () for r in recovered] == [True]
    monkeypatch.setattr(archive, "place_new", real)
    with processor_for(root, "2026-11-23 09:30") as processor:
        assert [r.message for r in processor.retry_deliveries()] == ["已补发"]
    assert names(root / "outbox" / "tech") == [FILE]


# ---- 8. a huge file is never read whole, copied or stored three times ----------------------


def test_oversized_file_is_moved_with_bounded_memory(root: Path, tmp_path: Path) -> None:
    big = root / "inbox" / "huge.xlsx"
    with big.open("wb") as fh:
        fh.truncate(1024 * 1024 * 1024)  # 1 GiB, sparse: costs no disk, would cost memory
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-c",
         "import resource, sys\n"
         "from refundflow.cli import cli\n"
         "try:\n"
         "    cli(['--now', '2026-11-23 09:10', 'process', '--root', sys.argv[1]])\n"
         "except SystemExit:\n"
         "    pass\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n",
         str(root)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.strip().splitlines()[-1])
    assert peak_kib < 300 * 1024, f"peak memory {peak_kib / 1024:.0f} MiB for a 1 GiB file"
    assert "文件太大(1024.0 MB)" in done.stdout
    assert names(root / "inbox") == []
    rejected = root / "outbox" / "rejected"
    assert names(rejected) == ["huge.xlsx", f"huge.xlsx{REPLY}"]
    received = list((root / "refundsheets" / "archive" / "received").rglob("*huge.xlsx"))
    assert len(received) == 1
    assert os.path.samefile(received[0], rejected / "huge.xlsx")  # one copy of the bytes
    sent = list((root / "refundsheets" / "archive" / "sent").rglob("*huge.xlsx"))
    assert sent == []


# ---- 9. a file is taken out of the inbox only if it is still what was read -----------------


def test_file_touched_since_it_was_read_is_put_back(tmp_path: Path) -> None:
    path = tmp_path / "form.xlsx"
    path.write_bytes(b"same bytes")
    read = Identity.of(path.stat())
    os.utime(path, ns=(read.mtime_ns + 5_000_000_000, read.mtime_ns + 5_000_000_000))
    assert remove_if_unchanged(path, archive.sha256(b"same bytes"), read) is False
    assert path.read_bytes() == b"same bytes"
    assert names(tmp_path) == ["form.xlsx"]


# ---- 10. long names are answered, and the original name is kept -------------------------


LONG = "客户退款申请表" * 9 + "(第二次提交)"  # 69 characters, 207 bytes


def test_very_long_name_is_answered_and_kept_in_the_ledger(root: Path, run: Invoke) -> None:
    name = f"{LONG}.xlsx"
    assert len(name.encode()) > 200
    drop(root, name, b"not a workbook at all")
    result = run("process")
    assert result.exit_code == 0, result.output
    assert names(root / "inbox") == []
    rejected = names(root / "outbox" / "rejected")
    assert len(rejected) == 2
    assert all(len(n.encode()) <= 255 for n in rejected)
    kept = rejected[0] if rejected[0].endswith(".xlsx") else rejected[1]
    assert kept.startswith("客户退款申请表客户退款") and f"{kept}{REPLY}" in rejected
    db = sqlite3.connect(root / "refundsheets" / "ledger.sqlite3")
    assert db.execute("SELECT name FROM receipts").fetchall() == [(name,)]
    db.close()
    assert run("process", now="2026-11-23 09:11").exit_code == 0


def test_long_names_that_differ_only_at_the_end_stay_apart() -> None:
    a = archive.safe_name(f"{LONG}-甲.xlsx")
    b = archive.safe_name(f"{LONG}-乙.xlsx")
    assert a != b and a.endswith(".xlsx") and len(a.encode()) <= archive.MAX_NAME_BYTES


# ---- also: what people see in rejected/ ------------------------------------------------


def test_second_rejected_file_of_a_name_gets_its_own_reason_file(root: Path, run: Invoke) -> None:
    drop(root, "x.xlsx", b"first junk")
    run("process")
    drop(root, "x.xlsx", b"second junk")
    run("process", now="2026-11-23 09:11")
    assert names(root / "outbox" / "rejected") == [
        "x (2).xlsx",
        f"x (2).xlsx{REPLY}",
        "x.xlsx",
        f"x.xlsx{REPLY}",
    ]
    assert (root / "outbox" / "rejected" / "x (2).xlsx").read_bytes() == b"second junk"


@pytest.mark.parametrize(
    "first, second",
    [
        pytest.param("Report.xlsx", "report.xlsx", id="letter-case"),
        pytest.param(
            unicodedata.normalize("NFD", "退款é.xlsx"),
            unicodedata.normalize("NFC", "退款é.xlsx"),
            id="unicode-normalisation",
        ),
    ],
)
def test_look_alike_names_are_not_placed_side_by_side(
    root: Path, run: Invoke, first: str, second: str
) -> None:
    drop(root, first, b"first junk")
    run("process")
    drop(root, second, b"second junk")
    run("process", now="2026-11-23 09:11")
    xlsx = [n for n in names(root / "outbox" / "rejected") if n.endswith(".xlsx")]
    keys = [archive.name_key(n) for n in xlsx]
    assert len(xlsx) == 2 and len(set(keys)) == 2, xlsx


def test_new_form_carrying_another_forms_number_goes_back_to_customer_service(
    root: Path, run: Invoke
) -> None:
    drop(root, "a.xlsx", make_form())
    run("process")
    other = make_form(order_no="TK20261122999", mobile="13900139000", form_no=FORM)
    drop(root, "b.xlsx", other)
    result = run("process", now="2026-11-23 09:12")
    assert result.output.startswith("[已退回] b.xlsx: 退回客服部:1 个问题"), result.output
    assert names(root / "outbox" / "cs") == ["b-退回.xlsx"]
    assert names(root / "outbox" / "tech") == [FILE]


def test_full_disk_is_a_clear_message_and_the_file_stays(
    root: Path, run: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    assert run("process").exit_code == 0  # the workspace is set up before the disk fills
    monkeypatch.setattr(archive.os, "fsync", full)
    drop(root, "a.xlsx", make_form())
    result = run("process")
    assert result.exit_code == 1
    assert "磁盘已满" in result.output and "Traceback" not in result.output
    assert names(root / "inbox") == ["a.xlsx"]
    received = root / "refundsheets" / "archive" / "received"
    assert [p for p in received.rglob("*") if p.is_file()] == []  # no .part left behind


def test_a_storage_error_names_the_folder_not_our_hidden_temporary() -> None:
    from refundflow.errors import storage_error

    exc = OSError(errno.ENOSPC, "No space left on device", "/srv/ws/outbox/tech/.a.xlsx.42.part")
    error = storage_error(exc, doing="投递")
    assert error.message == "投递时磁盘已满(/srv/ws/outbox/tech)"
