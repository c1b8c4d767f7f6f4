"""Watch ``inbox/`` and hand each file, once it is stable, to one processing callback.

Modelled on paperless-ngx's document consumer: the watcher only *discovers* files that are
ready and hands them to a single ``handle(path)``; everything about what a file means is the
handler's business. A file is ready when

* its name is not Office/OS junk (:func:`is_junk`),
* its ``(size, mtime_ns)`` has not changed for ``stable_seconds`` since we last saw it change,
* no Excel/WPS (``~$name``) or LibreOffice (``.~lock.name#``) owner file says it is open,
* it can be opened for reading (and, on POSIX, no other program holds an exclusive lock on it).

Per-file problems (a locked file, a handler that raises, a handler that leaves the file where
it is) are logged and retried with exponential backoff; they are never fatal and never drop a
file. Filesystem events only *wake* the loop; a periodic full rescan is the safety net for
events that are never delivered (network shares, overflowing event queues, restarted shares).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

#: Suffixes (compared case-insensitively) of files that are never handed over.
JUNK_SUFFIXES: tuple[str, ...] = (
    ".tmp",  # Office save temporaries: ~WRL0001.tmp, ~RF1a2b.TMP, 1A2B3C4D.tmp
    ".part",  # Firefox / wget partial downloads
    ".partial",  # older browsers
    ".crdownload",  # Chrome / Edge partial downloads
    ".download",  # Safari partial downloads
    ".退回原因.txt",  # our own reply files, written next to a rejected form
)
#: Whole names (compared case-insensitively) that are never handed over.
JUNK_NAMES: frozenset[str] = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"})

#: Observer event types that do not mean the directory changed. inotify reports opens and
#: read-only closes; our own readiness check opens files, so waking on these would make the
#: loop wake itself for ever.
_QUIET_EVENTS: frozenset[str] = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})

#: File-system types that do not deliver change notifications reliably (or at all).
NETWORK_FS_TYPES: frozenset[str] = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "davfs", "fuse.sshfs"}
)
#: Polling interval used when the inbox is found to be on a network share.
NETWORK_POLL_SECONDS = 1.0
#: Longest the loop sleeps before checking its stop event (bounds the stop latency).
_STOP_CHECK_SECONDS = 0.1
#: Minimum gap between two event-triggered scans (a burst of events is one scan).
_MIN_SCAN_GAP_SECONDS = 0.05
#: Shortest wait between passes while something is pending (avoids spinning).
_MIN_WAIT_SECONDS = 0.01


def is_junk(name: str) -> bool:
    """Is ``name`` a temporary, lock, system or reply file that must never be handed over?"""
    lowered = name.casefold()
    return (
        name.startswith(("~$", "."))  # owner files, .~lock.x#, ._x (macOS), .gitkeep, ...
        or lowered in JUNK_NAMES
        or lowered.endswith(JUNK_SUFFIXES)
    )


def _owner_file_names(name: str) -> list[str]:
    """Names of the files an office program keeps next to ``name`` while it has it open.

    Excel/WPS/Word write ``~$`` + the name, but for longer names drop the first one or two
    characters (``~$` + ``name[2:]``); LibreOffice writes ``.~lock.<name>#``.
    """
    names = [f"~${name}", f".~lock.{name}#"]
    stem = Path(name).stem
    names.extend(f"~${name[cut:]}" for cut in (1, 2) if len(stem) > cut)
    return names


def owner_file_present(path: Path) -> bool:
    """Does an Excel/WPS (``~$…``) or LibreOffice (``.~lock.…#``) owner file mark ``path`` open?"""
    return any((path.parent / owner).exists() for owner in _owner_file_names(path.name))


def _unescape_mount_field(field: str) -> str:
    r"""``/proc/mounts`` writes space, tab, newline and backslash as ``\040`` etc."""
    out: list[str] = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def detect_network_fs(path: Path, *, mounts: Path = Path("/proc/mounts")) -> bool:
    """Is ``path`` on a network (or FUSE) file system, where inotify events cannot be trusted?

    Reads ``/proc/mounts`` and looks at the longest mount point containing ``path``. Anywhere
    that file cannot be read (not Linux), the answer is ``False``.
    """
    try:
        lines = mounts.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return False
    target = Path(os.path.abspath(path))
    with contextlib.suppress(OSError, RuntimeError):
        target = path.resolve()
    best_len = -1
    best_type = ""
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = Path(_unescape_mount_field(parts[1]))
        if target == mount_point or mount_point in target.parents:
            depth = len(mount_point.parts)
            if depth >= best_len:  # later lines shadow earlier mounts on the same point
                best_len, best_type = depth, parts[2]
    return best_type in NETWORK_FS_TYPES or best_type.startswith("fuse.")


def _openable(path: Path) -> bool:
    """Can ``path`` be opened for reading, with no other program holding an exclusive lock?

    ``FileNotFoundError`` propagates (the caller forgets the file); any other ``OSError`` means
    "not ready yet". A file system that cannot do ``flock`` at all does not count as locked.
    """
    try:
        with path.open("rb") as stream:
            if sys.platform != "win32":
                try:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # someone holds LOCK_EX: still being written
                except OSError:
                    pass  # ENOLCK / EOPNOTSUPP / EINVAL: this file system cannot tell us
                else:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
    except FileNotFoundError:
        raise
    except OSError:
        return False
    return True


@dataclass(slots=True)
class _Seen:
    """What we know about one candidate file."""

    sig: tuple[int, int]  # (size, mtime_ns) as last observed
    changed_at: float  # clock() when sig was first observed with this value
    due: float  # clock() at which it is worth looking at this file again
    retry_at: float = 0.0  # backoff: not handed over before this clock() time
    failures: int = 0  # consecutive not-ready/handler failures, drives the backoff


class _WakeHandler(FileSystemEventHandler):
    """Any change in the inbox just wakes the loop; the loop decides what it means."""

    def __init__(self, wake: threading.Event) -> None:
        super().__init__()
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _QUIET_EVENTS:
            self._wake.set()


class InboxWatcher:
    """Discover stable files in ``inbox`` and hand each one to ``handle(path)``.

    ``handle`` is expected to move the file out of the inbox (processed, rejected, ...). If it
    raises, the error is logged and the file retried later with backoff; if it returns but
    leaves the file unchanged, the file is looked at again only after backoff or once it
    changes. Not thread-safe: use one of :meth:`run`, :meth:`drain` or the single-pass methods
    from one thread at a time.

    ``clock`` measures stability and backoff (inject a fake one to test those rules); the waits
    in :meth:`run` and :meth:`drain` are real time.
    """

    def __init__(
        self,
        inbox: Path,
        handle: Callable[[Path], None],
        *,
        stable_seconds: float,
        rescan_seconds: float,
        polling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        if stable_seconds < 0 or rescan_seconds <= 0:
            raise ValueError("stable_seconds must be >= 0 and rescan_seconds > 0")
        if polling is not None and polling <= 0:
            raise ValueError("polling must be a positive interval in seconds")
        self.inbox = inbox
        self.stable_seconds = stable_seconds
        self.rescan_seconds = rescan_seconds
        self.polling = polling
        self._handle = handle
        self._clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        # how often to look again while a file is pending settlement (owner file present, ...)
        self._tick = max(min(stable_seconds, 1.0), 0.05)
        self._seen: dict[str, _Seen] = {}
        self._wake = threading.Event()
        self._inbox_error: str | None = None

    # ------------------------------------------------------------------ single passes

    def wake(self) -> None:
        """Ask a running :meth:`run` / :meth:`drain` loop to look at the inbox now."""
        self._wake.set()

    def pending(self) -> list[str]:
        """Names of the candidate files seen in the last scan that are still to be handled."""
        return sorted(self._seen.copy())  # copy: safe to call from another thread

    def scan_once(self) -> list[Path]:
        """Observe every candidate file once; return those ready to be handed over."""
        now = self._clock()
        try:
            with os.scandir(self.inbox) as it:
                entries = list(it)
        except OSError as exc:
            # an unreachable share: keep what we know, say so once, try again next pass
            if self._inbox_error != str(exc):
                self._inbox_error = str(exc)
                log.warning("无法读取收件箱 %s:%s(稍后重试)", self.inbox, exc)
            return []
        if self._inbox_error is not None:
            self._inbox_error = None
            log.info("收件箱 %s 恢复可读", self.inbox)

        all_names = {entry.name.casefold() for entry in entries}
        present: set[str] = set()
        ready: list[tuple[float, str]] = []
        for entry in entries:
            name = entry.name
            if is_junk(name):
                continue
            try:
                if not entry.is_file():
                    continue  # directories (and sockets, ...) are not ours; no recursion
                st = entry.stat()
            except OSError:
                continue  # vanished between listing and stat; forgotten below
            present.add(name)
            sig = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(name)
            if seen is None or seen.sig != sig:
                # new, or changed: (re)start the stability clock; a new version owes no backoff
                seen = _Seen(sig=sig, changed_at=now, due=now + self.stable_seconds)
                self._seen[name] = seen
            if now - seen.changed_at < self.stable_seconds:
                seen.due = min(seen.changed_at + self.stable_seconds, now + self._tick)
                continue
            if now < seen.retry_at:
                seen.due = seen.retry_at
                continue
            if any(owner.casefold() in all_names for owner in _owner_file_names(name)):
                seen.due = now + self._tick
                log.debug("%r 正被 Office 程序打开(存在锁定文件),等待关闭", name)
                continue
            path = self.inbox / name
            try:
                openable = _openable(path)
            except FileNotFoundError:
                present.discard(name)
                continue
            if not openable:
                delay = self._back_off(seen, now)
                log.info("%r 暂时无法读取(可能仍在写入或被锁定),%.0f 秒后重试", name, delay)
                continue
            ready.append((seen.changed_at, name))

        for name in self._seen.keys() - present:
            del self._seen[name]
        return [self.inbox / name for _, name in sorted(ready)]

    def process_ready(self) -> int:
        """One pass: hand every ready file to ``handle``; return how many calls succeeded."""
        return self._process_ready(None)

    # ------------------------------------------------------------------ loops

    def drain(self, *, timeout: float, give_up_on_failure: bool = False) -> None:
        """One-shot mode: handle everything in the inbox, waiting for files to settle.

        Returns when no candidate file is left (each one handled and moved away, or junk), or
        after ``timeout`` seconds, logging the files still waiting. With
        ``give_up_on_failure``, a file that was handed over and stayed in the inbox (the
        handler failed or left it) is not retried in this run: a scheduled task reports it
        and the next run tries again.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._wake.clear()
            self._process_ready(None)
            waiting = {
                n for n, seen in self._seen.items() if not give_up_on_failure or not seen.failures
            }
            if not waiting:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "等待超时,%d 个文件仍未处理:%s", len(self._seen), "、".join(self.pending())
                )
                return
            self._wake.wait(min(remaining, max(self._seconds_until_due(), _MIN_WAIT_SECONDS)))

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set: startup scan, then event-woken and periodic passes.

        Returns within about 0.1 s of ``stop`` being set, after finishing a ``handle`` call in
        progress, plus the observer's shutdown: the observer thread is stopped and joined, which
        takes up to 0.5 s when inotify holds an unpaired move (a file moved out of the inbox).
        """
        observer = self._start_observer()
        try:
            self._wake.clear()
            self._guarded_pass(stop)  # startup scan: files dropped while we were not running
            last_scan = last_full = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                full_due = now - last_full >= self.rescan_seconds
                woken = self._wake.is_set() and now - last_scan >= _MIN_SCAN_GAP_SECONDS
                if full_due or woken or (self._seen and self._seconds_until_due() <= 0):
                    self._wake.clear()
                    if full_due:
                        last_full = now
                        observer = self._check_observer(observer)
                    last_scan = now
                    self._guarded_pass(stop)
                    continue
                timeout = min(last_full + self.rescan_seconds - now, _STOP_CHECK_SECONDS)
                if self._seen:
                    timeout = min(timeout, self._seconds_until_due())  # > 0 here
                if self._wake.is_set():  # woken, but too soon after the last scan
                    timeout = min(timeout, last_scan + _MIN_SCAN_GAP_SECONDS - now)
                    stop.wait(max(timeout, 0.0))
                else:
                    self._wake.wait(max(timeout, _MIN_WAIT_SECONDS))
        finally:
            self._stop_observer(observer)

    # ------------------------------------------------------------------ internals

    def _guarded_pass(self, stop: threading.Event) -> None:
        """One pass of the long-running loop; a bug in a pass must not end the service."""
        try:
            self._process_ready(stop)
        except Exception:
            log.exception("扫描收件箱 %s 时出错,稍后重试", self.inbox)
            stop.wait(self._tick)

    def _process_ready(self, stop: threading.Event | None) -> int:
        handled = 0
        for path in self.scan_once():
            if stop is not None and stop.is_set():
                break
            name = path.name
            seen = self._seen.get(name)
            if seen is None:
                continue
            failed = False
            try:
                self._handle(path)
            except Exception:
                failed = True
                log.exception("处理文件 %r 时出错,稍后重试", name)
            else:
                handled += 1
            now = self._clock()
            try:
                st = path.stat()
            except FileNotFoundError:
                del self._seen[name]  # handled (moved away) or vanished: forget it
                continue
            except OSError:
                self._back_off(seen, now)
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if sig != seen.sig:
                # the handler (or someone) changed it: a new version, wait for it to settle
                self._seen[name] = _Seen(sig=sig, changed_at=now, due=now + self.stable_seconds)
                continue
            delay = self._back_off(seen, now)
            if not failed:
                log.info("%r 处理后仍留在收件箱中,%.0f 秒后或文件变动后再处理", name, delay)
        return handled

    def _back_off(self, seen: _Seen, now: float) -> float:
        delay = min(self._retry_initial * 2.0**seen.failures, self._retry_max)
        seen.failures += 1
        seen.retry_at = seen.due = now + delay
        return delay

    def _seconds_until_due(self) -> float:
        """Seconds until some pending file is worth looking at again (at most one tick)."""
        now = self._clock()
        soonest = min((seen.due for seen in self._seen.values()), default=now + self._tick)
        return min(soonest - now, self._tick)

    def _start_observer(self) -> BaseObserver | None:
        """Start an observer whose events wake the loop; ``None`` if none can be started.

        Without an observer the loop still works, on its periodic rescans alone.
        """
        handler = _WakeHandler(self._wake)
        interval = self.polling
        if interval is None and detect_network_fs(self.inbox):
            log.info("收件箱 %s 位于网络共享上,改用轮询方式监视", self.inbox)
            interval = NETWORK_POLL_SECONDS
        attempts: list[Callable[[], BaseObserver]] = []
        if interval is None:
            attempts.append(Observer)
        poll = interval if interval is not None else NETWORK_POLL_SECONDS
        attempts.append(lambda: PollingObserver(timeout=poll))
        for make in attempts:
            observer: BaseObserver | None = None
            try:
                observer = make()  # inotify_init() may already fail here
                observer.schedule(handler, str(self.inbox), recursive=False)
                observer.start()
            except OSError as exc:  # inotify limits reached, inbox missing, ...
                log.warning("无法监视收件箱 %s:%s", self.inbox, exc)
                self._stop_observer(observer)
                continue
            return observer
        log.warning("收件箱 %s 仅靠每 %g 秒一次的定期扫描", self.inbox, self.rescan_seconds)
        return None

    def _check_observer(self, observer: BaseObserver | None) -> BaseObserver | None:
        """Restart an observer that died (inbox deleted and recreated, share remounted, ...)."""
        if (
            observer is not None
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in observer.emitters)
        ):
            return observer
        if observer is not None:
            log.warning("收件箱 %s 的监视已停止,正在重新启动", self.inbox)
            self._stop_observer(observer)
        if not self.inbox.is_dir():
            return None
        return self._start_observer()

    @staticmethod
    def _stop_observer(observer: BaseObserver | None) -> None:
        if observer is None:
            return
        with contextlib.suppress(Exception):
            observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
            if observer.is_alive():
                log.warning("监视线程未能在 5 秒内停止")
