"""`refundflow watch` as a real process: the whole route, the workspace lock, polling, files
that are still being written, open in an office program, or dropped by the hundred.

Each test starts ``python -m refundflow.cli watch`` and waits (with timeouts) for what the
product does to the folders; every watcher is killed and reaped in a ``finally``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest

from dayreplay import alert_to_file

from conftest import ROSTER, Invoke, block, edit_form, make_form, set_roster, take, wait_until
from formfill import rewrite_parts

NOW = "2026-11-23 09:10"
FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
TIMEOUT = 30.0  # well below rescan_seconds (60): routing must come from events / polling
STOP_TIMEOUT = 10.0
SLOW_STABLE = 0.5  # stable_seconds for the tests about files that are still being written
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Watch:
    """One ``refundflow watch`` process, its stdout and stderr captured in files."""

    def __init__(
        self, root: Path, logs: Path, *options: str, name: str = "watch", journal: bool = False
    ) -> None:
        self.stdout_path = logs / f"{name}.stdout"
        self.stderr_path = logs / f"{name}.stderr"
        command = [sys.executable, "-m", "refundflow.cli", "--now", NOW, "watch"]
        command += ["--root", str(root), *options]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # see each line as soon as it is printed
        env.pop("JOURNAL_STREAM", None)  # the tests' own stderr may be the journal
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            if journal:  # as systemd says "your stderr is the journal" (systemd.exec(5))
                st = os.fstat(err.fileno())
                env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[str]:
        """The service log so far (stderr): ``INFO message``, ``WARNING message``, ..."""
        return [line for line in self.stderr.splitlines() if line.split(" ", 1)[0] in LEVELS]

    def reports(self) -> list[str]:
        """The ``[已流转] name: ...`` log lines so far, one per handled file, without level."""
        messages = [line.split(" ", 1)[1] for line in self.log_lines()]
        return [message for message in messages if message.startswith("[")]

    def reports_when(self, count: int) -> list[str]:
        """The report lines, once ``count`` have been printed (or the timeout passed).

        The line is printed after the file has left the inbox, so a test that saw the folders
        settle must still wait for it.
        """
        wait_until(lambda: len(self.reports()) >= count)
        return self.reports()

    def started(self) -> bool:
        """Holding the workspace lock and watching (or already dead: the caller asserts)."""
        return "正在监视" in self.stdout or self.proc.poll() is not None

    def describe(self) -> str:
        return f"exit={self.proc.poll()}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"

    def terminate(self) -> int:
        """SIGTERM, then the exit status (``TimeoutExpired`` if it does not stop in time)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)


@contextmanager
def watching(
    root: Path, logs: Path, *options: str, name: str = "watch", journal: bool = False
) -> Iterator[Watch]:
    """A running watcher that holds the workspace lock; killed and reaped whatever happens."""
    watch = Watch(root, logs, *options, name=name, journal=journal)
    try:
        assert wait_until(watch.started), watch.describe()
        assert watch.proc.poll() is None, watch.describe()
        yield watch
    finally:
        watch.kill()


def drop_whole(root: Path, name: str, data: bytes) -> Path:
    """Drop a file the way copy tools do: written aside under a junk name, renamed in.

    The ``root`` workspace has ``stable_seconds = 0``: a file written in place could be read
    half-written, which is the business of the slow-write test, not of these.
    """
    inbox = root / "inbox"
    part = inbox / f".{name}.part"
    part.write_bytes(data)
    return part.replace(inbox / name)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def set_stable_seconds(root: Path, seconds: float) -> None:
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    assert "\nstable_seconds = 0" in text
    config.write_text(
        text.replace("\nstable_seconds = 0", f"\nstable_seconds = {seconds}"), encoding="utf-8"
    )


def other_form(i: int) -> bytes:
    """A new form for another order (and customer) than the default one."""
    return make_form(order_no=f"TK2026112299{i:03d}", mobile=f"1390013{i:04d}")


def at(hhmm: str) -> dt.datetime:
    """A block date on the day of ``NOW``, before it: the watcher refuses dates to come."""
    return dt.datetime.strptime(f"2026-11-23 {hhmm}", "%Y-%m-%d %H:%M")


# ------------------------------------------------------------------------------- the route


def test_form_travels_the_whole_route_with_watch_running(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    inbox = root / "inbox"
    outbox = root / "outbox"

    def hand_on(name: str, data: bytes, arrives: Path) -> None:
        drop_whole(root, name, data)
        # Delivered, and the dropped file taken out of the inbox: this step is done.
        assert wait_until(lambda: arrives.exists() and not (inbox / name).exists()), (
            f"{name} → {arrives}\n{watch.describe()}"
        )

    with watching(root, tmp_path) as watch:
        hand_on("退款申请-张三.xlsx", make_form(), outbox / "tech" / FILE)
        tech = block("tech", "王五", at("09:07"))
        hand_on(FILE, edit_form(take(root, "tech", FILE), tech), outbox / "cs" / FILE)
        hand_on(FILE, take(root, "cs", FILE), outbox / "cashier" / FILE)  # duty lead forwards
        steps = [
            ("cashier", "赵六", "09:08", "accountant"),
            ("accountant", "钱七", "09:08", "director"),
            ("director", "孙八", "09:09", "cs"),
        ]
        for role, person, hhmm, to in steps:
            signed = edit_form(take(root, role, FILE), block(role, person, at(hhmm)))
            hand_on(FILE, signed, outbox / to / FILE)
        hand_on(FILE, take(root, "cs", FILE), outbox / "admin" / FILE)  # customer told
        followup = {
            "admin_followup": "已核实退款到账",
            "admin_by": "吴十",
            "admin_date": at("09:09"),
            "admin_approval": "同意",
        }
        closed = root / "refundsheets" / "归档" / "2026-11" / FILE
        hand_on(FILE, edit_form(take(root, "admin", FILE), followup), closed)

        assert watch.terminate() == 0, watch.describe()  # within STOP_TIMEOUT

    assert watch.stdout.splitlines() == [
        f"正在监视 {inbox.resolve()}(按 Ctrl-C 停止)",
        "已停止监视",
    ], watch.describe()
    assert watch.reports() == [
        f"[已流转] 退款申请-张三.xlsx: {FORM} → 技术部(待技术部核实)",
        f"[已流转] {FILE}: {FORM} → 客服部(技术部已核实,待值班负责人提交财务)",
        f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)",
        f"[已流转] {FILE}: {FORM} → 财务部会计(待会计复核)",
        f"[已流转] {FILE}: {FORM} → 财务总监(待财务总监审批)",
        f"[已流转] {FILE}: {FORM} → 客服部(已退款,待客服反馈用户)",
        f"[已流转] {FILE}: {FORM} → 行政部(待行政部跟踪归档)",
        f"[已归档] {FILE}: {FORM} 已办结归档",
    ], watch.describe()
    assert files(inbox) == []
    folders = [p for p in outbox.iterdir() if p.is_dir()]  # not 状态看板.xlsx
    assert all(files(folder) == [] for folder in folders), "outboxes empty"

    result = run("status")
    assert result.exit_code == 0, result.output
    assert result.output == "没有未办结的退款单\n"
    history = json.loads(run("status", FORM, "--json").output)
    stamps = [e["stamp"] for e in history["history"] if e["stamp"]]
    assert stamps == ["提交技术部时间", "提交财务时间", "财务反馈时间", "反馈用户时间"]
    assert history["closed_at"] is not None


def test_watch_without_a_full_roster_warns_once_at_start(root: Path, tmp_path: Path) -> None:
    roster = {**ROSTER, "cashier": []}  # an empty list: anyone may sign the 出纳 block
    set_roster(root, roster)
    # Reported at 09:05, so that no 填单超时 warning joins stderr while the clock runs on from
    # NOW (09:10): only the roster warning is expected there.
    on_time = {"reported_at": at("09:05")}
    with watching(root, tmp_path) as watch:
        drop_whole(root, "a.xlsx", make_form(**on_time))
        drop_whole(root, "b.xlsx", make_form(order_no="TK2026112299001", **on_time))
        assert len(watch.reports_when(2)) == 2, watch.describe()
        # Before the stop: watchdog may log at shutdown.
        assert [line for line in watch.stderr.splitlines() if line not in watch.log_lines()] == [
            "警告:未配置名单的角色:财务部出纳(cashier)。任何人都能签署这些环节,签名人不会被核对;"
            "流转记录中会注明“未配置名单,未核对签名人”。",
            f"处理办法:在 {root.resolve() / 'refundflow.toml'} 的 [roster] 中填写这些角色的"
            '人员名单(例如 cashier = ["姓名1", "姓名2"]),然后重新启动 refundflow。',
        ], watch.describe()
    assert watch.stdout.splitlines()[0] == f"正在监视 {(root / 'inbox').resolve()}(按 Ctrl-C 停止)"


# ------------------------------------------------------------------------ the workspace lock


def test_second_watcher_is_refused_naming_the_holder(
    root: Path, run: Invoke, tmp_path: Path
) -> None:
    hint = "同一工作区同时只能运行一个 watch 或 process"
    with watching(root, tmp_path) as first:
        holder = f"refundflow watch (pid {first.proc.pid}"

        result = run("process")
        assert result.exit_code != 0, result.output
        assert "工作区正在被使用" in result.output and holder in result.output, result.output
        assert hint in result.output, result.output

        second = Watch(root, tmp_path, name="second")
        try:
            assert second.proc.wait(timeout=TIMEOUT) != 0, second.describe()
        finally:
            second.kill()
        assert holder in second.stderr and hint in second.stderr, second.describe()
        assert "正在监视" not in second.stdout, second.describe()

        # The refused ones changed nothing: the first watcher still works.
        assert first.proc.poll() is None, first.describe()
        drop_whole(root, "form.xlsx", make_form())
        assert wait_until(lambda: (root / "outbox" / "tech" / FILE).exists()), first.describe()


def test_negative_stable_seconds_is_refused_naming_the_key(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, -0.5)
    watch = Watch(root, tmp_path)
    try:
        assert watch.proc.wait(timeout=TIMEOUT) == 1, watch.describe()
    finally:
        watch.kill()
    assert "watch.stable_seconds 应为不小于 0 的数字" in watch.stderr, watch.describe()
    assert "Traceback" not in watch.stderr, watch.describe()


# ------------------------------------------------------------------------ running as a service


@pytest.mark.parametrize(
    ("journal", "prefix"),
    [
        pytest.param(True, "<6>", id="stderr-is-the-journal"),
        pytest.param(False, "INFO ", id="a-file"),
    ],
)
def test_watch_logs_one_line_per_file_with_the_journals_priority_only_for_the_journal(
    root: Path, tmp_path: Path, journal: bool, prefix: str
) -> None:
    line = f"{prefix}[已流转] form.xlsx: {FORM} → 技术部(待技术部核实)"
    with watching(root, tmp_path, journal=journal) as watch:
        drop_whole(root, "form.xlsx", make_form())
        assert wait_until(lambda: line in watch.stderr.splitlines()), watch.describe()
        assert watch.terminate() == 0, watch.describe()
    assert f"{prefix}收到 SIGTERM,处理完当前文件后停止" in watch.stderr.splitlines()
    assert "\x1b" not in watch.stderr


def test_ctrl_c_stops_watch_cleanly(root: Path, tmp_path: Path) -> None:
    with watching(root, tmp_path) as watch:
        watch.proc.send_signal(signal.SIGINT)
        assert watch.proc.wait(timeout=STOP_TIMEOUT) == 0, watch.describe()
    assert watch.stdout.splitlines()[-1] == "已停止监视", watch.describe()
    assert "INFO 收到 SIGINT,处理完当前文件后停止" in watch.stderr.splitlines(), watch.describe()
    assert "Traceback" not in watch.stderr, watch.describe()


def chattr(flag: str, path: Path) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` immutable, even for root (the tests run as root), as a read-only share is."""
    if shutil.which("chattr") is None or not chattr("+i", folder):
        pytest.skip("cannot make a folder immutable here (chattr +i)")
    try:
        yield
    finally:
        chattr("-i", folder)


@contextmanager
def ledger_held(root: Path) -> Iterator[None]:
    """Another program (a database viewer) in the middle of editing the ledger."""
    other = sqlite3.connect(root / "refundsheets" / "ledger.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.close()


def unusable(root: Path, what: str) -> contextlib.AbstractContextManager[None]:
    return ledger_held(root) if what == "ledger" else unwritable(root / what)


@pytest.mark.parametrize(
    ("what", "message"),
    [
        pytest.param(
            "inbox",
            "Error: 错误:无法写入文件夹 {root}/inbox(没有写入权限),refundflow 无法工作",
            id="inbox-not-writable",
        ),
        pytest.param(
            "refundsheets",
            "Error: 错误:无法写入文件夹 {root}/refundsheets(没有写入权限),refundflow 无法工作",
            id="refundsheets-not-writable",
        ),
        pytest.param(
            "ledger",
            "Error: 错误:账本文件 {root}/refundsheets/ledger.sqlite3 正被其他程序占用,"
            "无法写入(database is locked)",
            id="ledger-locked",
        ),
    ],
)
def test_watch_refuses_a_workspace_it_cannot_use_saying_why(
    root: Path, run: Invoke, tmp_path: Path, what: str, message: str
) -> None:
    assert run("process").exit_code == 0  # the ledger exists
    with unusable(root, what):
        watch = Watch(root, tmp_path)
        try:
            assert watch.proc.wait(timeout=TIMEOUT) == 1, watch.describe()
        finally:
            watch.kill()
    lines = watch.stderr.splitlines()
    assert message.format(root=root.resolve()) in lines, watch.describe()
    assert lines[lines.index(message.format(root=root.resolve())) + 1].startswith("处理办法:")
    assert "Traceback" not in watch.stderr and "正在监视" not in watch.stdout, watch.describe()


# --------------------------------------------------------------------------------- polling


def test_watch_with_polling_routes_a_form(root: Path, tmp_path: Path) -> None:
    with watching(root, tmp_path, "--polling", "0.2") as watch:
        drop_whole(root, "form.xlsx", make_form())
        assert wait_until(lambda: (root / "outbox" / "tech" / FILE).exists()), watch.describe()
        assert wait_until(lambda: files(root / "inbox") == []), watch.describe()
        reports = watch.reports_when(1)
        assert reports == [f"[已流转] form.xlsx: {FORM} → 技术部(待技术部核实)"], watch.describe()
        assert watch.terminate() == 0, watch.describe()
    assert watch.stdout.splitlines()[-1] == "已停止监视"


# ------------------------------------------------------------- files not finished writing


def test_handles_slow_write(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, SLOW_STABLE)
    data = make_form()
    chunks = 15
    size = -(-len(data) // chunks)
    pause = 0.1  # 1.5 s in all; each pause well below stable_seconds
    gaps: list[float] = []

    def write_slowly() -> None:
        with (root / "inbox" / "form.xlsx").open("wb") as stream:
            last = time.monotonic()
            for i in range(chunks):
                stream.write(data[i * size : (i + 1) * size])
                stream.flush()
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                if i < chunks - 1:
                    time.sleep(pause)  # pacing the writer, not waiting for the watcher

    with watching(root, tmp_path) as watch:
        writer = threading.Thread(target=write_slowly)
        writer.start()
        writer.join(timeout=TIMEOUT)
        assert not writer.is_alive()
        assert max(gaps) < SLOW_STABLE, f"the writer itself stalled: {gaps}"
        assert wait_until(lambda: files(root / "inbox") == []), watch.describe()
        assert files(root / "outbox" / "tech") == [FILE], watch.describe()
        assert (root / "outbox" / "tech" / FILE).stat().st_size > 0
        assert files(root / "outbox" / "rejected") == [], watch.describe()
        reports = watch.reports_when(1)
        assert reports == [f"[已流转] form.xlsx: {FORM} → 技术部(待技术部核实)"], watch.describe()
        assert not any("[已拒收]" in line for line in reports)


def set_incomplete_seconds(root: Path, seconds: float) -> None:
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    assert "\nincomplete_seconds = 0" in text
    config.write_text(
        text.replace("\nincomplete_seconds = 0", f"\nincomplete_seconds = {seconds}"),
        encoding="utf-8",
    )


def test_paused_writer_is_waited_for_not_rejected(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, SLOW_STABLE)
    set_incomplete_seconds(root, 60)
    inbox = root / "inbox"
    rejected = root / "outbox" / "rejected"
    data = make_form()
    with watching(root, tmp_path) as watch:
        with (inbox / "form.xlsx").open("wb") as stream:
            stream.write(data[:5000])
            stream.flush()
            time.sleep(SLOW_STABLE * 4)  # the writer pauses far beyond stable_seconds
            assert files(rejected) == [], watch.describe()
            assert files(inbox) == ["form.xlsx"], watch.describe()
            stream.write(data[5000:])
        assert wait_until(lambda: files(inbox) == []), watch.describe()
        assert files(root / "outbox" / "tech") == [FILE], watch.describe()
        assert files(rejected) == [], watch.describe()
        assert watch.reports_when(1) == [f"[已流转] form.xlsx: {FORM} → 技术部(待技术部核实)"]


def test_closed_file_is_routed_long_before_stable_seconds(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, 30)
    with watching(root, tmp_path) as watch:
        (root / "inbox" / "form.xlsx").write_bytes(make_form())  # written in place, closed
        assert wait_until(lambda: files(root / "outbox" / "tech") == [FILE], timeout=15), (
            watch.describe()
        )
        assert watch.reports_when(1) == [f"[已流转] form.xlsx: {FORM} → 技术部(待技术部核实)"]


def test_handles_write_temp_then_rename(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, SLOW_STABLE)
    inbox = root / "inbox"
    tech = root / "outbox" / "tech"
    data = make_form()
    with watching(root, tmp_path) as watch:
        temp = inbox / "~WRL0001.tmp"  # how Word/Excel save: write a temporary, then rename
        temp.write_bytes(data)
        # A later, ordinary form: once it is routed, the temporary has certainly been stable
        # for stable_seconds too, in the same scan or an earlier one.
        drop_whole(root, "marker.xlsx", other_form(1))
        # Waited for, not sampled: the processor briefly holds a file aside before deleting it.
        assert wait_until(lambda: files(inbox) == ["~WRL0001.tmp"]), watch.describe()
        assert files(tech) == [FILE], watch.describe()
        assert temp.read_bytes() == data

        os.rename(temp, inbox / "form.xlsx")
        assert wait_until(lambda: files(inbox) == []), watch.describe()
        assert files(tech) == [FILE, "TKD20261123-002.xlsx"], watch.describe()
        assert files(root / "outbox" / "rejected") == [], watch.describe()
        assert watch.reports_when(2) == [
            f"[已流转] marker.xlsx: {FORM} → 技术部(待技术部核实)",
            "[已流转] form.xlsx: TKD20261123-002 → 技术部(待技术部核实)",
        ], watch.describe()
        assert "WRL" not in watch.stdout + watch.stderr


def test_lock_file_present_holds_the_form(root: Path, tmp_path: Path) -> None:
    set_stable_seconds(root, SLOW_STABLE)
    inbox = root / "inbox"
    tech = root / "outbox" / "tech"
    with watching(root, tmp_path) as watch:
        lock = inbox / ".~lock.form.xlsx#"  # LibreOffice has form.xlsx open
        lock.write_text(",张三,PC-01,23.11.2026 09:05,file:///C:/Users/zhangsan;", encoding="utf-8")
        drop_whole(root, "form.xlsx", make_form())
        # Dropped after form.xlsx: once it is routed, form.xlsx has been stable long enough.
        drop_whole(root, "later.xlsx", other_form(1))
        assert wait_until(lambda: files(inbox) == [".~lock.form.xlsx#", "form.xlsx"]), (
            watch.describe()
        )
        assert files(tech) == [FILE], watch.describe()

        lock.unlink()  # LibreOffice closed it
        assert wait_until(lambda: files(inbox) == []), watch.describe()
        assert files(tech) == [FILE, "TKD20261123-002.xlsx"], watch.describe()
        assert watch.reports_when(2) == [
            f"[已流转] later.xlsx: {FORM} → 技术部(待技术部核实)",
            "[已流转] form.xlsx: TKD20261123-002 → 技术部(待技术部核实)",
        ], watch.describe()


# ----------------------------------------------------------------------------------- burst

BURST = 500


def burst_forms(count: int) -> list[bytes]:
    """``count`` new forms for distinct orders and customers, from one filled form.

    The order number and mobile are inline strings of the form sheet: rewriting them in the
    zip takes ~2 ms a form, where filling each through openpyxl takes ~10-80 ms.
    """
    base = make_form()
    order, mobile = b">TK20261122001<", b">13800138000<"

    def variant(i: int) -> bytes:
        def edit(name: str, part: bytes) -> bytes:
            if name != "xl/worksheets/sheet1.xml":
                return part
            assert part.count(order) == 1 and part.count(mobile) == 1
            part = part.replace(order, f">TK2026112{i:04d}<".encode())
            return part.replace(mobile, f">1380013{i:04d}<".encode())

        return rewrite_parts(base, edit)

    return [variant(i) for i in range(count)]


@pytest.mark.slow
def test_burst_of_500_drops_with_watch_running(root: Path, run: Invoke, tmp_path: Path) -> None:
    inbox = root / "inbox"
    tech = root / "outbox" / "tech"
    forms = burst_forms(BURST)
    with watching(root, tmp_path) as watch:
        started = time.monotonic()
        for i, data in enumerate(forms):
            drop_whole(root, f"form-{i:03d}.xlsx", data)
        dropped_in = time.monotonic() - started
        assert wait_until(lambda: len(files(tech)) >= BURST, timeout=180), (
            f"{len(files(tech))} routed\n{watch.describe()}"
        )
        assert wait_until(lambda: files(inbox) == []), watch.describe()
        took = time.monotonic() - started
        assert watch.terminate() == 0, watch.describe()
    print(f"\n{BURST} forms dropped in {dropped_in:.2f} s, all routed in {took:.1f} s")

    routed = files(tech)
    assert routed == [f"TKD20261123-{n:03d}.xlsx" for n in range(1, BURST + 1)]
    assert files(root / "outbox" / "rejected") == []
    reports = watch.reports()
    assert len(reports) == BURST and all(r.startswith("[已流转]") for r in reports)
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    forms_open = json.loads(result.output)
    assert len(forms_open) == BURST
    assert len({f["order_no"] for f in forms_open}) == BURST


def test_watch_keeps_the_board_current_and_alerts_a_late_form_once(
    root: Path, tmp_path: Path
) -> None:
    """The board is written at start and after a processed file; the form, filled at 09:00
    and dropped at 09:10 (``NOW``), broke the 10-minute limit: one alert."""

    log = tmp_path / "alerts.log"
    alert_to_file(root, log)
    board = root / "outbox" / "状态看板.xlsx"
    late = make_form(reported_at=dt.datetime(2026, 11, 23, 8, 55))
    with watching(root, tmp_path) as watch:
        assert wait_until(board.exists), watch.describe()
        drop_whole(root, "a.xlsx", late)
        assert watch.reports_when(1) == [f"[已流转] a.xlsx: {FORM} → 技术部(待技术部核实)"]

        def listed() -> bool:
            try:
                rows = openpyxl.load_workbook(board).active.iter_rows(values_only=True)
                return any(row[0] == FORM for row in rows)
            except (OSError, KeyError, ValueError):  # being replaced right now
                return False

        assert wait_until(listed), watch.describe()
        assert wait_until(log.exists), watch.describe()
        assert watch.terminate() == 0, watch.describe()
    assert log.read_text(encoding="utf-8").splitlines() == [
        f"{FORM} fill 2026-11-23 09:05 cs | 退款单 {FORM} 填单超时:上报后10分钟内填好退款单,"
        "期限 2026-11-23 09:05,当时等待客服部(新建退款单)"
    ]
