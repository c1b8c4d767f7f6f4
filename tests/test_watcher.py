"""The inbox watcher: scenario tests run the real loop in a thread and wait with timeouts."""

from __future__ import annotations

import fcntl
import io
import itertools
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from refundflow import inboxfile, inboxready, watchevents
from refundflow import watcher as watcher_mod
from refundflow.watcher import (
    InboxWatcher,
    StuckEntry,
    detect_network_fs,
    is_junk,
    owner_file_present,
    stuck_entries,
)

from conftest import wait_until

STABLE = 0.2
TIMEOUT = 10.0


class Recorder:
    """A handler like the real processor: read the file, then move it out of the inbox."""

    def __init__(self, done: Path, *, move: bool = True) -> None:
        self.done = done
        self.move = move
        self.calls: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        done.mkdir(exist_ok=True)

    def __call__(self, path: Path) -> None:
        content = path.read_bytes()
        with self._lock:
            self.calls.append((path.name, content))
            n = len(self.calls)
        if self.move:
            path.rename(self.done / f"{n:04d}-{path.name}")

    @property
    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.calls]

    def count(self) -> int:
        with self._lock:
            return len(self.calls)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "done")


@contextmanager
def running(watcher: InboxWatcher) -> Iterator[threading.Event]:
    """Run ``watcher.run`` in a thread; on exit stop it and check it stopped cleanly."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            watcher.run(stop)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="watcher", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive(), "watcher did not stop"
        if errors:
            raise errors[0]


def count_scans(monkeypatch: pytest.MonkeyPatch, watcher: InboxWatcher) -> Callable[[], int]:
    """Count the watcher's passes over the inbox (to know it has looked at least once)."""
    scans = [0]
    original = watcher.scan_once

    def counting() -> list[Path]:
        result = original()
        scans[0] += 1
        return result

    monkeypatch.setattr(watcher, "scan_once", counting)
    return lambda: scans[0]


class Verdicts:
    """What the watcher found when it looked at a settled file: the events the tests wait on.

    Waiting on these rather than on the watcher's log lines keeps the tests independent of
    the wording (and language) of the log. Each entry is ``(name, verdict)``; the verdict is
    ``"owner"`` when an Office owner file held the file back, otherwise the name of the
    watcher's ``_Check`` (``"LOCKED"``, ``"WRITING"``, ``"INCOMPLETE"``, ``"READY"``, ...).
    """

    def __init__(self, inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, str]] = []
        owners_of = watcher_mod._owner_file_names
        inspect = watcher_mod._inspect

        def owner_check(name: str) -> list[str]:
            owners = owners_of(name)
            if any((inbox / owner).exists() for owner in owners):
                self.seen.append((name, "owner"))
            return owners

        def inspected(path: Path, st: os.stat_result) -> watcher_mod._Check:
            check = inspect(path, st)
            self.seen.append((path.name, check.name))
            return check

        monkeypatch.setattr(watcher_mod, "_owner_file_names", owner_check)
        monkeypatch.setattr(watcher_mod, "_inspect", inspected)

    def saw(self, name: str, *verdicts: str) -> bool:
        return any(seen in self.seen for seen in [(name, v) for v in verdicts])


@pytest.fixture
def verdicts(inbox: Path, monkeypatch: pytest.MonkeyPatch) -> Verdicts:
    return Verdicts(inbox, monkeypatch)


def no_observer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate an inbox whose events never arrive."""
    monkeypatch.setattr(InboxWatcher, "_start_observer", lambda self: None)


def make(inbox: Path, handle: Callable[[Path], None], **kwargs: object) -> InboxWatcher:
    options: dict[str, object] = {"stable_seconds": STABLE, "rescan_seconds": 1000.0}
    options.update(kwargs)
    return InboxWatcher(inbox, handle, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("~$form.xlsx", id="excel-owner"),
        pytest.param("~$款申请表.xlsx", id="excel-owner-truncated"),
        pytest.param(".~lock.form.xlsx#", id="libreoffice-lock"),
        pytest.param("~WRL0001.tmp", id="word-temp"),
        pytest.param("5A3B1C2D.tmp", id="excel-save-temp"),
        pytest.param("~RF1a2b3c.TMP", id="upper-case-temp"),
        pytest.param("Thumbs.db", id="thumbs-db"),
        pytest.param("desktop.ini", id="desktop-ini"),
        pytest.param("Desktop.INI", id="desktop-ini-any-case"),
        pytest.param(".DS_Store", id="ds-store"),
        pytest.param("._form.xlsx", id="appledouble"),
        pytest.param(".gitkeep", id="hidden-dotfile"),
        pytest.param("form.xlsx.part", id="firefox-partial"),
        pytest.param("form.xlsx.crdownload", id="chrome-partial"),
        pytest.param("退款申请表.xlsx.退回原因.txt", id="our-reply-file"),
    ],
)
def test_ignores_office_and_os_junk(inbox: Path, recorder: Recorder, name: str) -> None:
    assert is_junk(name)
    (inbox / name).write_bytes(b"junk")
    (inbox / "real.xlsx").write_bytes(b"real")
    make(inbox, recorder).drain(timeout=TIMEOUT)  # returns once only junk is left
    assert recorder.names == ["real.xlsx"]
    assert (inbox / name).exists()


def test_running_loop_ignores_junk_and_subfolders(inbox: Path, recorder: Recorder) -> None:
    junk = ["~$form.xlsx", ".~lock.other.xlsx#", "~WRL0001.tmp", "Thumbs.db", ".DS_Store"]
    for name in junk:
        (inbox / name).write_bytes(b"junk")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "nested.xlsx").write_bytes(b"nested")  # no recursion
    with running(make(inbox, recorder)):
        (inbox / "real.xlsx").write_bytes(b"real")
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.names == ["real.xlsx"]
    assert sorted(p.name for p in inbox.iterdir()) == sorted([*junk, "sub"])
    assert (inbox / "sub" / "nested.xlsx").exists()


@pytest.mark.parametrize(
    "name",
    ["form.xlsx", "退款申请表-20261123-张三.xlsx", "report.tmp.xlsx", "a.xls", "x~$y.xlsx"],
)
def test_real_form_names_are_not_junk(name: str) -> None:
    assert not is_junk(name)


@pytest.mark.parametrize(
    ("target", "owner"),
    [
        pytest.param("form.xlsx", "~$form.xlsx", id="excel"),
        pytest.param(
            "退款申请表-20261123.xlsx", "~$款申请表-20261123.xlsx", id="excel-truncated-1"
        ),
        pytest.param("退款申请表-20261123.xlsx", "~$申请表-20261123.xlsx", id="excel-truncated-2"),
        pytest.param("form.xlsx", ".~lock.form.xlsx#", id="libreoffice"),
    ],
)
def test_owner_file_present(inbox: Path, target: str, owner: str) -> None:
    path = inbox / target
    path.write_bytes(b"x")
    assert not owner_file_present(path)
    (inbox / owner).write_bytes(b"owner")
    assert owner_file_present(path)


def test_detect_network_fs(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "srv:/export /mnt/nfs nfs4 rw 0 0\n"
        "//srv/office /mnt/office\\040share cifs rw 0 0\n"
        "me@host:/x /mnt/ssh fuse.sshfs rw 0 0\n"
        "/dev/vdb /mnt/nfs/local ext4 rw 0 0\n"
        "tmpfs /mnt/nfs2 tmpfs rw 0 0\n",
        encoding="utf-8",
    )

    def on_network(path: str) -> bool:
        return detect_network_fs(Path(path), mounts=mounts)

    assert on_network("/mnt/nfs/inbox")
    assert on_network("/mnt/office share/inbox")
    assert on_network("/mnt/ssh")
    assert not on_network("/mnt/nfs/local/inbox")  # a local mount inside the share
    assert not on_network("/mnt/nfs2/inbox")  # prefix of the name is not a parent
    assert not on_network("/home/office/inbox")
    assert not detect_network_fs(Path("/x"), mounts=tmp_path / "missing")


# ---------------------------------------------------------------- single passes, fake clock


def test_file_is_ready_only_after_stable_seconds_unchanged(inbox: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = make(inbox, recorder, stable_seconds=2.0, clock=clock)
    form = inbox / "form.xlsx"
    form.write_bytes(b"part")
    assert watcher.scan_once() == []
    clock.advance(1.5)
    form.write_bytes(b"part-and-more")  # changed: the stability clock restarts
    assert watcher.scan_once() == []
    clock.advance(1.9)
    assert watcher.scan_once() == []
    clock.advance(0.1)
    assert watcher.scan_once() == [form]
    assert watcher.process_ready() == 1
    assert recorder.calls == [("form.xlsx", b"part-and-more")]
    assert watcher.pending() == []


def test_handler_leaving_file_in_place_is_not_rehandled_in_tight_loop(inbox: Path) -> None:
    clock = FakeClock()
    keeper = Recorder(inbox.parent / "done", move=False)
    watcher = make(inbox, keeper, stable_seconds=1.0, clock=clock)
    form = inbox / "form.xlsx"
    form.write_bytes(b"v1")
    watcher.process_ready()
    clock.advance(1.0)
    assert watcher.process_ready() == 1
    for _ in range(5):  # backoff 1 s: nothing in the meantime
        clock.advance(0.19)
        assert watcher.process_ready() == 0
    clock.advance(0.05)
    assert watcher.process_ready() == 1  # after the 1 s backoff
    clock.advance(1.0)
    assert watcher.process_ready() == 0  # now 2 s
    form.write_bytes(b"version 2")  # a change is handled once stable, backoff or not
    watcher.process_ready()
    clock.advance(1.0)
    assert watcher.process_ready() == 1
    assert keeper.calls == [("form.xlsx", b"v1")] * 2 + [("form.xlsx", b"version 2")]


def test_backoff_is_capped(inbox: Path) -> None:
    clock = FakeClock()
    keeper = Recorder(inbox.parent / "done", move=False)
    watcher = make(inbox, keeper, stable_seconds=0.0, clock=clock, retry_max=8.0)
    (inbox / "form.xlsx").write_bytes(b"x")
    times = []
    for _ in range(400):
        if watcher.process_ready():
            times.append(clock.now)
        clock.advance(0.5)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(times)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_file_deleted_between_scan_and_handle_is_forgotten(inbox: Path) -> None:
    clock = FakeClock()
    calls: list[Path] = []

    def handle(path: Path) -> None:
        calls.append(path)
        path.read_bytes()  # raises FileNotFoundError: the file vanished

    watcher = make(inbox, handle, clock=clock)
    form = inbox / "form.xlsx"
    form.write_bytes(b"x")
    watcher.scan_once()
    clock.advance(1.0)
    ready = watcher.scan_once()
    assert ready == [form]
    form.unlink()
    assert watcher.process_ready() == 0
    assert watcher.pending() == []


# ---------------------------------------------------------------- the running loop


def test_handles_slow_write(inbox: Path, recorder: Recorder) -> None:
    chunks = [bytes([65 + i]) * 10_000 for i in range(20)]
    watcher = make(inbox, recorder, stable_seconds=0.5)

    def writer() -> None:
        with (inbox / "form.xlsx").open("wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                stream.flush()
                time.sleep(0.05)  # the simulated slow writer, not synchronisation

    with running(watcher):
        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(timeout=TIMEOUT)
        assert wait_until(lambda: recorder.count() >= 1)
        assert wait_until(lambda: not any(inbox.iterdir()))
    assert recorder.calls == [("form.xlsx", b"".join(chunks))]


@pytest.mark.parametrize("temp_name", ["~WRL0001.tmp", "x.tmp", "form.xlsx.part"])
def test_handles_write_temp_then_rename(inbox: Path, recorder: Recorder, temp_name: str) -> None:
    temp = inbox / temp_name
    watcher = make(inbox, recorder)
    with running(watcher):
        with temp.open("wb") as stream:
            stream.write(b"first half ")
            stream.flush()
            time.sleep(STABLE * 2)  # the simulated writer lingers beyond stable_seconds
            stream.write(b"second half")
        temp.rename(inbox / "form.xlsx")
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.calls == [("form.xlsx", b"first half second half")]


def test_handles_burst_of_500_drops(inbox: Path, recorder: Recorder) -> None:
    watcher = make(inbox, recorder)
    expected = {f"form-{i:03d}.xlsx": f"content {i}".encode() for i in range(500)}
    with running(watcher):
        for name, content in expected.items():
            (inbox / name).write_bytes(content)
        assert wait_until(lambda: recorder.count() >= 500, timeout=60)
    assert len(recorder.calls) == 500
    assert dict(recorder.calls) == expected
    assert not any(inbox.iterdir())


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        pytest.param("form.xlsx", "~$form.xlsx", id="excel"),
        pytest.param(
            "退款申请表-20261123-张三.xlsx", "~$申请表-20261123-张三.xlsx", id="excel-long"
        ),
        pytest.param("form.xlsx", ".~lock.form.xlsx#", id="libreoffice"),
    ],
)
def test_waits_while_owner_lock_file_present(
    inbox: Path, recorder: Recorder, verdicts: Verdicts, name: str, owner: str
) -> None:
    (inbox / owner).write_bytes(b"owner")
    (inbox / name).write_bytes(b"form")
    with running(make(inbox, recorder)):
        # the watcher has seen the form stable and refused it because of the owner file
        assert wait_until(lambda: verdicts.saw(name, "owner"))
        assert recorder.count() == 0
        (inbox / owner).unlink()
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.calls == [(name, b"form")]


def test_waits_while_writer_holds_exclusive_lock(
    inbox: Path, recorder: Recorder, verdicts: Verdicts
) -> None:
    watcher = make(inbox, recorder, retry_initial=0.1, retry_max=0.2)
    with (inbox / "form.xlsx").open("wb") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        stream.write(b"locked content")
        stream.flush()
        with running(watcher):
            assert wait_until(lambda: verdicts.saw("form.xlsx", "LOCKED"))
            assert recorder.count() == 0
            fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
            # unlocked but still open for writing: waited for, not handed over
            assert wait_until(lambda: verdicts.saw("form.xlsx", "WRITING"))
            assert recorder.count() == 0
            stream.close()
            assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.calls == [("form.xlsx", b"locked content")]


def test_file_deleted_before_stable_is_forgotten(inbox: Path, recorder: Recorder) -> None:
    frozen = FakeClock()  # time never passes for stability: nothing can become ready
    watcher = make(inbox, recorder, clock=frozen)
    with running(watcher), (inbox / "form.xlsx").open("wb") as writer:
        writer.write(b"x")  # and the writer never closes it: no close event either
        writer.flush()
        assert wait_until(lambda: watcher.pending() == ["form.xlsx"])
        (inbox / "form.xlsx").unlink()
        assert wait_until(lambda: watcher.pending() == [])
    assert recorder.count() == 0


def test_handler_error_is_logged_and_retried(
    inbox: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [0]

    def flaky(path: Path) -> None:
        if path.name == "bad.xlsx" and failures[0] == 0:
            failures[0] += 1
            raise RuntimeError("parser fell over")
        recorder(path)

    (inbox / "bad.xlsx").write_bytes(b"bad")
    (inbox / "good.xlsx").write_bytes(b"good")
    with running(make(inbox, flaky, retry_initial=0.2)):
        assert wait_until(lambda: recorder.count() >= 2)
    assert sorted(recorder.names) == ["bad.xlsx", "good.xlsx"]
    errors = [r for r in caplog.records if r.name == "refundflow.watcher" and r.levelno >= 40]
    assert len(errors) == 1
    assert "bad.xlsx" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert "parser fell over" in caplog.text


def test_startup_scan_processes_existing_files(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_observer(monkeypatch)  # only the startup scan can find them
    for i in range(3):
        (inbox / f"old-{i}.xlsx").write_bytes(b"old")
    with running(make(inbox, recorder)):
        assert wait_until(lambda: recorder.count() >= 3)
    assert sorted(recorder.names) == ["old-0.xlsx", "old-1.xlsx", "old-2.xlsx"]


def test_events_wake_the_loop(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = make(inbox, recorder)  # rescan_seconds=1000: only events can find the file
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / "new.xlsx").write_bytes(b"new")
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.names == ["new.xlsx"]


def test_periodic_rescan_finds_files_without_events(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_observer(monkeypatch)
    watcher = make(inbox, recorder, rescan_seconds=0.3)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)  # the startup scan saw an empty inbox
        (inbox / "missed.xlsx").write_bytes(b"no event for me")
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.calls == [("missed.xlsx", b"no event for me")]


def observers_started(monkeypatch: pytest.MonkeyPatch) -> list[BaseObserver | None]:
    started: list[BaseObserver | None] = []
    original = InboxWatcher._start_observer

    def recording(self: InboxWatcher) -> BaseObserver | None:
        observer = original(self)
        started.append(observer)
        return observer

    monkeypatch.setattr(InboxWatcher, "_start_observer", recording)
    return started


def test_polling_mode(inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    started = observers_started(monkeypatch)
    watcher = make(inbox, recorder, polling=0.05)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / "polled.xlsx").write_bytes(b"polled")
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.names == ["polled.xlsx"]
    assert len(started) == 1
    assert isinstance(started[0], PollingObserver)
    assert not started[0].is_alive()  # stopped and joined


def test_network_share_is_polled(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_mod, "detect_network_fs", lambda path: True)
    started = observers_started(monkeypatch)
    with running(make(inbox, recorder)):
        assert wait_until(lambda: len(started) == 1)
    assert isinstance(started[0], PollingObserver)


def test_stop_returns_promptly(inbox: Path, recorder: Recorder) -> None:
    (inbox / "~$form.xlsx").write_bytes(b"owner")
    (inbox / "form.xlsx").write_bytes(b"pending for ever")
    watcher = make(inbox, recorder)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    assert wait_until(lambda: watcher.pending() == ["form.xlsx"])
    stop.set()
    # Far below what the loop could otherwise sleep: rescan_seconds (1000), backoff (up to 60).
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_stop_finishes_the_current_handle_call_then_stops(inbox: Path, recorder: Recorder) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow(path: Path) -> None:
        entered.set()
        assert release.wait(TIMEOUT)
        recorder(path)

    (inbox / "a.xlsx").write_bytes(b"a")
    (inbox / "b.xlsx").write_bytes(b"b")
    stop = threading.Event()
    thread = threading.Thread(target=make(inbox, slow).run, args=(stop,), daemon=True)
    thread.start()
    assert entered.wait(TIMEOUT)
    stop.set()
    release.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert recorder.names == ["a.xlsx"]  # finished, not abandoned; b.xlsx never started
    assert (inbox / "b.xlsx").exists()


def test_drain_processes_everything_and_returns(inbox: Path, recorder: Recorder) -> None:
    for i in range(5):
        (inbox / f"form-{i}.xlsx").write_bytes(b"ready")
    (inbox / "desktop.ini").write_bytes(b"junk")
    watcher = make(inbox, recorder)

    def late_writer() -> None:
        with (inbox / "late.xlsx").open("wb") as stream:
            for _ in range(5):
                stream.write(b"x" * 1000)
                stream.flush()
                time.sleep(0.05)  # the simulated slow writer

    writer = threading.Thread(target=late_writer)
    writer.start()
    started = time.monotonic()
    watcher.drain(timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    writer.join()
    assert sorted(recorder.names) == [*(f"form-{i}.xlsx" for i in range(5)), "late.xlsx"]
    assert dict(recorder.calls)["late.xlsx"] == b"x" * 5000
    assert elapsed < TIMEOUT / 2, "drain waited for its timeout instead of returning when done"
    assert sorted(p.name for p in inbox.iterdir()) == ["desktop.ini"]


def test_drain_gives_up_after_timeout(
    inbox: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    (inbox / ".~lock.form.xlsx#").write_bytes(b"owner")
    (inbox / "form.xlsx").write_bytes(b"open in LibreOffice")
    (inbox / "other.xlsx").write_bytes(b"other")
    started = time.monotonic()
    make(inbox, recorder).drain(timeout=0.6)
    assert 0.6 <= time.monotonic() - started < TIMEOUT, "drain did not keep to its timeout"
    assert recorder.names == ["other.xlsx"]
    assert "form.xlsx" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_falls_back_to_polling_when_inotify_is_unavailable(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted() -> BaseObserver:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(watcher_mod, "_native_observer", exhausted)
    started = observers_started(monkeypatch)
    watcher = make(inbox, recorder)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / "form.xlsx").write_bytes(b"form")
        assert wait_until(lambda: recorder.count() >= 1)
    assert isinstance(started[0], PollingObserver)


# ---------------------------------------------------------------- files still being written


def workbook(*, comment: bytes = b"") -> bytes:
    """A zip like every xlsx: local entries first, the end-of-central-directory record last."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>" + "x" * 20_000)
        zf.writestr("xl/workbook.xml", os.urandom(30_000))  # incompressible: a long file
        zf.comment = comment
    return out.getvalue()


@pytest.mark.parametrize(
    "writer_visible",
    [
        pytest.param(True, id="open-for-writing-seen-by-lease"),
        pytest.param(False, id="system-cannot-tell-zip-end-missing"),
    ],
)
def test_paused_writer_is_waited_for_not_rejected(
    inbox: Path,
    recorder: Recorder,
    verdicts: Verdicts,
    monkeypatch: pytest.MonkeyPatch,
    writer_visible: bool,
) -> None:
    if not writer_visible:  # e.g. the watcher does not own the file: no lease, EACCES
        monkeypatch.setattr(inboxready, "_open_for_writing", lambda fd: None)
    data = workbook()
    with running(make(inbox, recorder, incomplete_seconds=60.0)):
        with (inbox / "form.xlsx").open("wb") as stream:
            stream.write(data[:5000])
            stream.flush()
            # The writer pauses; the watcher sees the file stable for stable_seconds, then waits.
            assert wait_until(
                lambda: verdicts.saw("form.xlsx", "WRITING", "INCOMPLETE") or recorder.count() > 0
            )
            assert recorder.count() == 0, "a half-written file was handed over"
            stream.write(data[5000:])
        assert wait_until(lambda: recorder.count() >= 1)
    assert recorder.calls == [("form.xlsx", data)]


LEASE_BREAK = """
import fcntl, os, subprocess, sys
from refundflow.inboxready import _read_lease

fd = os.open(sys.argv[1], os.O_RDONLY)
with _read_lease(fd) as writing:
    assert writing is False, writing
    # A writer opens the file while we hold the lease: its open waits, and we are told.
    writer = subprocess.Popen([sys.executable, "-c", f"open({sys.argv[1]!r}, 'ab').close()"])
    while fcntl.fcntl(fd, fcntl.F_GETLEASE) == fcntl.F_RDLCK:
        pass  # the lease break (and its signal) has not come yet
assert writer.wait(timeout=30) == 0
print("still running")
"""


def test_writer_opening_the_file_during_the_lease_check_does_not_kill_the_watcher(
    tmp_path: Path,
) -> None:
    form = tmp_path / "form.xlsx"
    form.write_bytes(workbook())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    checker = subprocess.run(
        [sys.executable, "-c", LEASE_BREAK, str(form)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (checker.returncode, checker.stdout) == (0, "still running\n"), checker.stderr


@pytest.mark.parametrize(
    ("data", "waited"),
    [
        pytest.param(b"", True, id="empty"),
        pytest.param(workbook()[:5000], True, id="zip-without-end-record"),
        pytest.param(workbook()[:-1], True, id="zip-end-record-cut-short"),
        pytest.param(workbook(), False, id="whole-zip"),
        pytest.param(workbook(comment=b"saved by WPS"), False, id="whole-zip-with-comment"),
        pytest.param(b"\xd0\xcf\x11\xe0 an old .xls", False, id="not-a-zip-cannot-tell"),
    ],
)
def test_incomplete_file_is_handed_over_only_after_incomplete_seconds(
    inbox: Path, recorder: Recorder, data: bytes, waited: bool
) -> None:
    clock = FakeClock()
    watcher = make(inbox, recorder, stable_seconds=0.0, incomplete_seconds=5.0, clock=clock)
    form = inbox / "form.xlsx"
    form.write_bytes(data)
    if waited:
        assert watcher.scan_once() == []
        clock.advance(4.9)
        assert watcher.scan_once() == []
        clock.advance(0.1)
    assert watcher.scan_once() == [form]  # then the handler answers it as damaged


def test_incomplete_wait_restarts_when_the_file_grows(inbox: Path, recorder: Recorder) -> None:
    clock = FakeClock()
    watcher = make(inbox, recorder, stable_seconds=0.0, incomplete_seconds=5.0, clock=clock)
    form = inbox / "form.xlsx"
    data = workbook()
    form.write_bytes(data[:5000])
    assert watcher.scan_once() == []
    clock.advance(4.0)
    form.write_bytes(data[:9000])  # still arriving: the writer is slow, not gone
    assert watcher.scan_once() == []
    clock.advance(4.0)
    assert watcher.scan_once() == []
    clock.advance(1.0)
    assert watcher.scan_once() == [form]


# ---------------------------------------------------------------- knowing sooner


def test_closed_file_is_routed_without_stability_wait(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = workbook()
    watcher = make(inbox, recorder, stable_seconds=30.0)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)  # watching: the observer started first
        with (inbox / "form.xlsx").open("wb") as stream:
            stream.write(data)
        # long before stable_seconds: the kernel said the writer closed it
        assert wait_until(lambda: recorder.count() >= 1, timeout=TIMEOUT)
    assert recorder.calls == [("form.xlsx", data)]


@pytest.mark.parametrize(
    "system_can_tell",
    [
        pytest.param(True, id="nobody-has-it-open-for-writing"),
        pytest.param(False, id="cannot-tell-so-stability-wait"),
    ],
)
def test_file_closed_before_the_watcher_started_is_routed_at_startup(
    inbox: Path,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    system_can_tell: bool,
) -> None:
    if not system_can_tell:
        monkeypatch.setattr(inboxready, "_open_for_writing", lambda fd: None)
    (inbox / "form.xlsx").write_bytes(workbook())  # closed before any observer could see it
    watcher = make(inbox, recorder, stable_seconds=30.0)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        if system_can_tell:
            assert wait_until(lambda: recorder.count() >= 1, timeout=TIMEOUT)
        else:
            assert wait_until(lambda: scans() >= 2)
            assert recorder.count() == 0
            assert watcher.pending() == ["form.xlsx"]


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("inbox", id="from-a-temporary-in-the-inbox"),
        pytest.param("elsewhere", id="from-another-folder"),
    ],
)
def test_file_renamed_into_place_is_routed_without_stability_wait(
    inbox: Path, recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    data = workbook()
    folder = inbox if where == "inbox" else tmp_path / "staging"
    folder.mkdir(exist_ok=True)
    temp = folder / ".form.xlsx.part"
    watcher = make(inbox, recorder, stable_seconds=30.0)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        temp.write_bytes(data)
        os.rename(temp, inbox / "form.xlsx")
        assert wait_until(lambda: recorder.count() >= 1, timeout=TIMEOUT)
    assert recorder.calls == [("form.xlsx", data)]


def test_excel_save_temporary_without_suffix_still_waits_for_stability(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = make(inbox, recorder, stable_seconds=30.0)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / "6F2A1B00").write_bytes(workbook())  # Excel's temporary, closed
        (inbox / "form.xlsx").write_bytes(workbook())  # closed after it: its event comes later
        assert wait_until(lambda: recorder.count() >= 1, timeout=TIMEOUT)
        seen_at = scans()
        assert wait_until(lambda: scans() >= seen_at + 2 or recorder.count() > 1)
        assert recorder.names == ["form.xlsx"]
        assert watcher.pending() == ["6F2A1B00"]  # Excel renames it over the form in a moment


def test_closed_file_still_waits_for_its_office_owner_file(
    inbox: Path,
    recorder: Recorder,
    verdicts: Verdicts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (inbox / "~$form.xlsx").write_bytes(b"owner")
    watcher = make(inbox, recorder, stable_seconds=30.0)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / "form.xlsx").write_bytes(workbook())
        assert wait_until(lambda: verdicts.saw("form.xlsx", "owner"))
        assert recorder.count() == 0
        (inbox / "~$form.xlsx").unlink()
        assert wait_until(lambda: recorder.count() >= 1, timeout=TIMEOUT)


def test_polling_mode_keeps_the_stability_wait(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    original = watcher_mod._WakeHandler.on_any_event

    def recording(self: watcher_mod._WakeHandler, event: watchevents.FileSystemEvent) -> None:
        events.append(os.fsdecode(event.dest_path or event.src_path))
        original(self, event)

    monkeypatch.setattr(watcher_mod._WakeHandler, "on_any_event", recording)
    watcher = make(inbox, recorder, stable_seconds=30.0, polling=0.05)
    scans = count_scans(monkeypatch, watcher)
    with running(watcher):
        assert wait_until(lambda: scans() >= 1)
        (inbox / ".form.xlsx.part").write_bytes(workbook())
        assert wait_until(lambda: str(inbox / ".form.xlsx.part") in events)  # polling started
        os.rename(inbox / ".form.xlsx.part", inbox / "form.xlsx")
        # The poller reports the rename (a guess from two listings): no proof of a close.
        assert wait_until(lambda: str(inbox / "form.xlsx") in events)
        seen_at = scans()
        assert wait_until(lambda: scans() >= seen_at + 2)
        assert recorder.count() == 0
        assert watcher.pending() == ["form.xlsx"]


def test_file_last_changed_long_ago_is_ready_at_first_sight(
    inbox: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = inbox / "old.xlsx"
    old.write_bytes(workbook())
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    (inbox / "new.xlsx").write_bytes(workbook())
    frozen = FakeClock()  # no stability time passes: only the mtime can say "settled"
    assert make(inbox, recorder, stable_seconds=2.0, clock=frozen).scan_once() == [old]
    # On a network share the mtime comes from another machine's clock: not trusted.
    monkeypatch.setattr(watcher_mod, "detect_network_fs", lambda path: True)
    assert make(inbox, recorder, stable_seconds=2.0, clock=frozen).scan_once() == []


# ---------------------------------------------------------------- entries that are not plain files


def _symlink_to_secret(inbox: Path, name: str) -> None:
    secret = inbox.parent / "secret.txt"
    secret.write_bytes(b"root's secret")
    (inbox / name).symlink_to(secret)


def _hard_link(inbox: Path, name: str) -> None:
    elsewhere = inbox.parent / "elsewhere.xlsx"
    elsewhere.write_bytes(workbook())
    os.link(elsewhere, inbox / name)


def _socket(inbox: Path, name: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(inbox / name))
    sock.close()


@pytest.mark.parametrize(
    "create",
    [
        pytest.param(_symlink_to_secret, id="symlink"),
        pytest.param(lambda inbox, name: (inbox / name).symlink_to("missing"), id="dangling-link"),
        pytest.param(_hard_link, id="hard-link"),
        pytest.param(lambda inbox, name: (inbox / name).mkdir(), id="directory"),
        pytest.param(lambda inbox, name: os.mkfifo(inbox / name), id="fifo"),
        pytest.param(_socket, id="socket"),
    ],
)
def test_entry_that_is_not_a_plain_file_is_handed_over_at_once_unopened(
    inbox: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    create: Callable[[Path, str], None],
) -> None:
    create(inbox, "x.xlsx")
    opened: list[str] = []
    real_open = os.open

    def spying_open(path: object, *args: object, **kwargs: object) -> int:
        opened.append(os.fsdecode(path))  # type: ignore[arg-type]
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spying_open)
    frozen = FakeClock()  # stable_seconds never pass: a plain file could not be ready
    watcher = make(inbox, recorder, stable_seconds=30.0, clock=frozen)
    assert watcher.scan_once() == [inbox / "x.xlsx"]
    assert opened == []


def test_fifo_in_inbox_does_not_block_the_watcher(inbox: Path, recorder: Recorder) -> None:
    handed: list[tuple[str, bool]] = []

    def processor(path: Path) -> None:
        """Like the processor: answers what is not a plain file and removes it, unread."""
        st = os.lstat(path)
        handed.append((path.name, stat.S_ISFIFO(st.st_mode)))
        if stat.S_ISFIFO(st.st_mode):
            path.unlink()
        else:
            recorder(path)

    os.mkfifo(inbox / "pipe.xlsx")
    with running(make(inbox, processor)):
        (inbox / "form.xlsx").write_bytes(b"form")
        assert wait_until(lambda: recorder.count() >= 1)
        assert wait_until(lambda: not any(inbox.iterdir()))
    assert sorted(handed) == [("form.xlsx", False), ("pipe.xlsx", True)]


def test_fifo_swapped_in_after_lstat_is_not_opened_blocking(
    inbox: Path, recorder: Recorder
) -> None:
    form = inbox / "form.xlsx"
    form.write_bytes(workbook())
    watcher = make(inbox, recorder, stable_seconds=0.0)
    real_scandir = os.scandir

    def swap_after_listing(path: Path) -> object:
        listing = real_scandir(path)  # lstat'ed as a regular file by the watcher...
        entries = list(listing)
        listing.close()
        for entry in entries:
            entry.stat(follow_symlinks=False)  # (DirEntry caches its lstat)
        form.unlink()  # ...then replaced by a FIFO that nobody will ever write to
        os.mkfifo(form)
        return _Listing(entries)

    original = os.scandir
    try:
        os.scandir = swap_after_listing  # type: ignore[assignment]
        assert watcher.scan_once() == []  # returns at once: opened O_NONBLOCK, seen changed
    finally:
        os.scandir = original
    assert watcher.scan_once() == [form]  # now handed over as what it is: a FIFO


class _Listing:
    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self._entries = entries

    def __enter__(self) -> list[os.DirEntry[str]]:
        return self._entries

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------- stuck in the inbox


def test_hidden_unreadable_and_odd_entries_are_listed_as_stuck(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (".退款单.xlsx", "~$held.xlsx", "held.xlsx", "noread.xlsx", "fine.xlsx"):
        (inbox / name).write_bytes(b"x")
    for name in (".~lock.a.xlsx#", ".DS_Store", ".gitkeep", ".a.xlsx.123.taking", ".b.part"):
        (inbox / name).write_bytes(b"not stuck: someone's working file")
    (inbox / "子文件夹").mkdir()
    real_open = os.open

    def no_permission(path: object, *args: object, **kwargs: object) -> int:
        if os.fsdecode(path).endswith("noread.xlsx"):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied")  # root reads anything: simulate
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_permission)
    assert stuck_entries(inbox) == [
        StuckEntry(
            ".退款单.xlsx",
            "文件名以“.”开头,会被当作隐藏文件,永远不会被处理;请把文件改名,去掉开头的“.”后再放入 inbox",
        ),
        StuckEntry(
            "held.xlsx",
            "存在 Office 锁定文件 ~$held.xlsx,表示文件正在 Excel/WPS/LibreOffice 中打开;"
            "请关闭该文件;如果确认没有人打开它,请删除这个锁定文件",
        ),
        StuckEntry(
            "noread.xlsx",
            "无法打开文件(Permission denied),可能没有读取权限;"
            "请检查文件权限,或把文件重新保存一份后放入 inbox",
        ),
        StuckEntry(
            "子文件夹",
            "这是文件夹,不是普通文件,不会被读取;运行中的 refundflow watch 会把它退回到 "
            "outbox/rejected;请把表单文件本身(不是链接或文件夹)直接放入 inbox",
        ),
    ]


class EventLog(watchevents.FileSystemEventHandler):
    """Every event a real observer delivers for the inbox, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[watchevents.FileSystemEvent] = []

    def on_any_event(self, event: watchevents.FileSystemEvent) -> None:
        self.events.append(event)


def event_names(event: watchevents.FileSystemEvent) -> set[str]:
    return {os.path.basename(os.fsdecode(p)) for p in (event.src_path, event.dest_path) if p}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_taking_forms_out_of_the_inbox_queues_nothing_but_a_drop_still_does(inbox: Path) -> None:
    # The processor's own moves in inbox/: a form taken out (held aside, then removed) and a
    # form that changed while it was read (held aside, put back). Recorded from a real
    # observer, then replayed through the watcher's handler, counting what it passes on.
    for name in ("taken.xlsx", "changed.xlsx"):
        (inbox / name).write_bytes(b"PK\x03\x04 a form")
    log = EventLog()
    observer = watchevents._native_observer()
    observer.schedule(log, str(inbox), recursive=False)
    observer.start()
    try:
        taken = inbox / "taken.xlsx"
        assert inboxfile.remove_if_unchanged(taken, inboxfile.sha256_of(taken), None)
        hold = inboxfile.take_aside(inbox / "changed.xlsx")
        assert hold is not None
        inboxfile.put_back(hold, inbox / "changed.xlsx")
        (inbox / "dropped.xlsx").write_bytes(b"PK\x03\x04 a person's drop")
        # Its close-write comes after its creation: wait for that one, the hint's source.
        assert wait_until(
            lambda: any(
                e.event_type == "closed" and "dropped.xlsx" in event_names(e) for e in log.events
            )
        )
    finally:
        observer.stop()
        observer.join()

    queued: list[str] = []

    class Counting(threading.Event):
        def set(self) -> None:
            queued.append(" ".join(sorted(event_names(current))))
            super().set()

    hints = watchevents._Hints()
    handler = watchevents._WakeHandler(Counting(), inbox, hints)
    for current in log.events:
        handler.dispatch(current)
    # The put-back file shows up again under its name (it must be read again); the person's
    # drop wakes the loop and is hinted as closed; nothing about a hold name gets through.
    assert set(queued) == {"changed.xlsx", "dropped.xlsx"}, log.events
    assert hints.take() == {"dropped.xlsx"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_watcher_is_not_told_of_its_own_reads_of_a_form(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening and reading every dropped form (readiness check, read, hash) would each be an
    # inotify event for the watcher's threads to read and drop: the observer must not ask
    # the kernel for them.
    arrived: list[watchevents.FileSystemEvent] = []

    class Recording(watchevents._WakeHandler):
        def on_any_event(self, event: watchevents.FileSystemEvent) -> None:
            arrived.append(event)
            super().on_any_event(event)

    monkeypatch.setattr(watcher_mod, "_WakeHandler", Recording)
    taken: list[str] = []

    def handle(path: Path) -> None:
        path.read_bytes()
        assert inboxfile.remove_if_unchanged(path, inboxfile.sha256_of(path), None)
        taken.append(path.name)

    watcher = make(inbox, handle)
    with running(watcher):
        (inbox / "form.xlsx").write_bytes(b"a form")
        assert wait_until(lambda: taken == ["form.xlsx"], timeout=TIMEOUT)
        (inbox / "later.xlsx").write_bytes(b"a form")  # its events come after form.xlsx's
        assert wait_until(lambda: taken == ["form.xlsx", "later.xlsx"], timeout=TIMEOUT)
    kinds = {event.event_type for event in arrived}
    assert "closed" in kinds  # events do arrive: the drops' write-closes
    assert not kinds & {"opened", "closed_no_write"}, arrived
