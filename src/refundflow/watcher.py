"""Watch ``inbox/`` and hand each file, once it is complete, to one processing callback.

Modelled on paperless-ngx's document consumer: the watcher only *discovers* files that are
ready and hands them to a single ``handle(path)``; everything about what a file means is the
handler's business. A regular file (one link) is ready when

* its name is not Office/OS junk (:func:`is_junk`),
* it has settled: the kernel said its writer closed it or renamed it into place (inotify, on a
  local disk only), or its ``(size, mtime_ns, inode)`` has not changed for ``stable_seconds``
  since we saw it change, or its mtime was already that old when we first saw it,
* no Excel/WPS (``~$name``) or LibreOffice (``.~lock.name#``) owner file says it is open,
* it can be opened for reading, no other program holds an exclusive lock on it, and it looks
  complete: not empty, a zip that ends with its end-of-central-directory record, and nobody
  has it open for writing (where the kernel can tell: a Linux read lease). A file that fails
  only this last test is waited for up to ``incomplete_seconds`` since its last change, then
  handed over anyway (the handler answers it as damaged).

Anything in the inbox that is not a plain regular file with a single link (a symlink, a hard
link, a directory, a FIFO, a socket, a device) is handed over at once and never opened here:
the watcher looks at entries with ``lstat`` only and opens files with ``O_NOFOLLOW`` and
``O_NONBLOCK``, so a link is never followed and a FIFO never blocks the loop. Entries that
will never be handled (hidden names, unreadable files) are listed by :func:`stuck_entries`.

Per-file problems (a locked file, a handler that raises, a handler that leaves the file where
it is) are logged and retried with exponential backoff; they are never fatal and never drop a
file. Filesystem events wake the loop; a periodic full rescan is the safety net for events
that are never delivered (network shares, overflowing event queues, restarted shares).
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

from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .inboxready import JUNK_NAMES as JUNK_NAMES
from .inboxready import JUNK_SUFFIXES as JUNK_SUFFIXES
from .inboxready import StuckEntry as StuckEntry
from .inboxready import (
    _Check,
    _inspect,
    _named_like_a_document,
    _nobody_writing,
    _owner_file_names,
    _regular,
    _signature,
)
from .inboxready import is_junk as is_junk
from .inboxready import owner_file_present as owner_file_present
from .inboxready import stuck_entries as stuck_entries
from .watchevents import NETWORK_FS_TYPES as NETWORK_FS_TYPES
from .watchevents import WAKE_EVENTS, _Hints, _native_observer, _WakeHandler
from .watchevents import detect_network_fs as detect_network_fs

log = logging.getLogger(__name__)

#: Polling interval used when the inbox is found to be on a network share.
NETWORK_POLL_SECONDS = 1.0
#: Longest the loop sleeps before checking its stop event (bounds the stop latency).
_STOP_CHECK_SECONDS = 0.1
#: Minimum gap between two event-triggered scans (a burst of events is one scan).
_MIN_SCAN_GAP_SECONDS = 0.05
#: Minimum gap between two scans when the kernel said a file was closed or renamed into
#: place: short, because someone is waiting for that file to move on.
_MIN_HINT_GAP_SECONDS = 0.002
#: Shortest wait between passes while something is pending (avoids spinning).
_MIN_WAIT_SECONDS = 0.01


@dataclass(slots=True)
class _Seen:
    """What we know about one candidate file."""

    sig: tuple[int, ...]  # _signature() as last observed
    changed_at: float  # clock() when sig was first observed with this value
    due: float  # clock() at which it is worth looking at this file again
    retry_at: float = 0.0  # backoff: not handed over before this clock() time
    failures: int = 0  # consecutive not-ready/handler failures, drives the backoff
    settled: bool = False  # closed / renamed into place, or already old when first seen
    waiting: _Check | None = None  # why it is being waited for (logged once per reason)


class InboxWatcher:
    """Discover complete files in ``inbox`` and hand each one to ``handle(path)``.

    ``handle`` is expected to move the file out of the inbox (processed, rejected, ...). If it
    raises, the error is logged and the file retried later with backoff; if it returns but
    leaves the file unchanged, the file is looked at again only after backoff or once it
    changes. Not thread-safe: use one of :meth:`run`, :meth:`drain` or the single-pass methods
    from one thread at a time.

    ``clock`` measures stability, the wait for incomplete files and backoff (inject a fake one
    to test those rules); the waits in :meth:`run` and :meth:`drain` are real time, and so is
    the age of a file's mtime when it is first seen.
    """

    def __init__(
        self,
        inbox: Path,
        handle: Callable[[Path], None],
        *,
        stable_seconds: float,
        rescan_seconds: float,
        polling: float | None = None,
        incomplete_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        if stable_seconds < 0 or rescan_seconds <= 0 or incomplete_seconds < 0:
            raise ValueError(
                "stable_seconds and incomplete_seconds must be >= 0 and rescan_seconds > 0"
            )
        if polling is not None and polling <= 0:
            raise ValueError("polling must be a positive interval in seconds")
        self.inbox = inbox
        self.stable_seconds = stable_seconds
        self.rescan_seconds = rescan_seconds
        self.polling = polling
        self.incomplete_seconds = incomplete_seconds
        self._handle = handle
        self._clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        # how often to look again while a file is pending settlement (owner file present, ...)
        self._tick = max(min(stable_seconds, 1.0), 0.05)
        self._seen: dict[str, _Seen] = {}
        self._wake = threading.Event()
        self._hints = _Hints()
        self._events_trusted = False  # the running observer reports closes and renames
        self._startup_pass = False  # run()'s first pass, with such an observer running
        self._inbox_error: str | None = None
        # A file's mtime comes from this machine's clock on a local disk, so an old mtime
        # means "settled"; on a network share it comes from another machine's clock.
        self._trust_mtime = not detect_network_fs(inbox)

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
        closed = self._hints.take()
        wall = time.time()
        present: set[str] = set()
        ready: list[tuple[bool, float, str]] = []
        for entry in entries:
            name = entry.name
            if is_junk(name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between listing and stat; forgotten below
            present.add(name)
            sig = _signature(st)
            seen = self._seen.get(name)
            if seen is None or seen.sig != sig:
                # new, or changed: (re)start the stability clock; a new version owes no backoff
                old = (
                    seen is None
                    and self._trust_mtime
                    and wall - st.st_mtime_ns / 1e9 >= self.stable_seconds
                )
                seen = _Seen(
                    sig=sig, changed_at=now, due=now + self.stable_seconds, settled=bool(old)
                )
                self._seen[name] = seen
            if name in closed and _named_like_a_document(name):
                seen.settled = True
            if not _regular(st):
                # Links, hard links, folders, FIFOs, devices: never opened here, never waited
                # for; the handler answers them (and removes the link).
                if now < seen.retry_at:
                    seen.due = seen.retry_at
                    continue
                ready.append((False, seen.changed_at, name))
                continue
            if (
                not seen.settled
                and self._startup_pass
                and _named_like_a_document(name)
                and _nobody_writing(self.inbox / name, st)
            ):
                seen.settled = True  # closed before our observer could see it close
            if not seen.settled and now - seen.changed_at < self.stable_seconds:
                seen.due = min(seen.changed_at + self.stable_seconds, now + self._tick)
                continue
            if now < seen.retry_at:
                seen.due = seen.retry_at
                continue
            if any(owner.casefold() in all_names for owner in _owner_file_names(name)):
                seen.due = now + self._tick
                log.debug("%r 正被 Office 程序打开(存在锁定文件),等待关闭", name)
                continue
            try:
                check = _inspect(self.inbox / name, st)
            except FileNotFoundError:
                present.discard(name)
                continue
            if check is _Check.CHANGED:
                # Replaced since our lstat: the next scan sees the new entry (a new signature,
                # no backoff owed); the backoff only stops a loop if it somehow looks the same.
                self._back_off(seen, now)
                continue
            if check in (_Check.LOCKED, _Check.UNREADABLE):
                delay = self._back_off(seen, now)
                log.info("%r 暂时无法读取(可能仍在写入或被锁定),%.0f 秒后重试", name, delay)
                continue
            if check in (_Check.WRITING, _Check.INCOMPLETE) and not self._waited_enough(
                name, seen, check, now
            ):
                continue
            ready.append((True, seen.changed_at, name))

        for name in self._seen.keys() - present:
            del self._seen[name]
        return [self.inbox / name for _, _, name in sorted(ready)]

    def _waited_enough(self, name: str, seen: _Seen, check: _Check, now: float) -> bool:
        """Wait for a file still being written, up to ``incomplete_seconds`` since it changed."""
        deadline = seen.changed_at + self.incomplete_seconds
        if now < deadline:
            seen.due = min(deadline, now + self._tick)
            if seen.waiting is not check:
                seen.waiting = check
                why = "仍被其他程序以写入方式打开" if check is _Check.WRITING else "内容还不完整"
                log.info("%r %s,等待写完(最多 %g 秒)", name, why, self.incomplete_seconds)
            return False
        if self.incomplete_seconds:
            log.warning(
                "%r 在最后一次变动后 %g 秒仍未写完,按现状交给处理", name, self.incomplete_seconds
            )
        return True

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
            # Startup scan: files dropped while we were not running. Their closes came before
            # the observer: where the kernel can say nobody has one open for writing, that
            # stands in for the close event.
            self._startup_pass = self._events_trusted
            try:
                self._guarded_pass(stop)
            finally:
                self._startup_pass = False
            last_scan = last_full = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                full_due = now - last_full >= self.rescan_seconds
                gap = _MIN_HINT_GAP_SECONDS if self._hints else _MIN_SCAN_GAP_SECONDS
                woken = self._wake.is_set() and now - last_scan >= gap
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
                    timeout = min(timeout, last_scan + gap - now)
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
                st = os.lstat(path)
            except FileNotFoundError:
                del self._seen[name]  # handled (moved away) or vanished: forget it
                continue
            except OSError:
                self._back_off(seen, now)
                continue
            sig = _signature(st)
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
        interval = self.polling
        if interval is None and detect_network_fs(self.inbox):
            log.info("收件箱 %s 位于网络共享上,改用轮询方式监视", self.inbox)
            interval = NETWORK_POLL_SECONDS
        # (make, trust its close/rename events): a poller's "moved" events are guesses from
        # two listings, and the stability wait stays for polling mode and network shares.
        attempts: list[tuple[Callable[[], BaseObserver], bool]] = []
        if interval is None:
            attempts.append((_native_observer, sys.platform.startswith("linux")))
        poll = interval if interval is not None else NETWORK_POLL_SECONDS
        attempts.append((lambda: PollingObserver(timeout=poll), False))
        self._events_trusted = False
        for make, trusted in attempts:
            observer: BaseObserver | None = None
            handler = _WakeHandler(self._wake, self.inbox, self._hints if trusted else None)
            try:
                observer = make()  # inotify_init() may already fail here
                observer.schedule(
                    handler, str(self.inbox), recursive=False, event_filter=WAKE_EVENTS
                )
                observer.start()
            except OSError as exc:  # inotify limits reached, inbox missing, ...
                log.warning("无法监视收件箱 %s:%s", self.inbox, exc)
                self._stop_observer(observer)
                continue
            self._events_trusted = trusted
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
