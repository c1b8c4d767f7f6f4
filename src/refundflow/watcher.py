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
import enum
import errno
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

if sys.platform != "win32":
    import fcntl
if sys.platform.startswith("linux"):
    from watchdog.observers.inotify import InotifyObserver

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
#: Minimum gap between two scans when the kernel said a file was closed or renamed into
#: place: short, because someone is waiting for that file to move on.
_MIN_HINT_GAP_SECONDS = 0.002
#: Shortest wait between passes while something is pending (avoids spinning).
_MIN_WAIT_SECONDS = 0.01

#: Open flags for looking at a dropped file: never through a symlink, never blocking (a FIFO
#: swapped in after our lstat would otherwise block the loop until someone writes to it).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_END_RECORD = b"PK\x05\x06"
_ZIP_END_SIZE = 22  # the end-of-central-directory record without its comment
_ZIP_MAX_COMMENT = 0xFFFF


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


class _Check(enum.Enum):
    """What opening a settled regular file told us."""

    READY = "ready"
    CHANGED = "changed"  # not the entry we lstat'ed (replaced, linked, swapped for a link)
    UNREADABLE = "unreadable"  # cannot be opened (permissions, ...): retried with backoff
    LOCKED = "locked"  # another program holds an exclusive flock: retried with backoff
    WRITING = "writing"  # someone has it open for writing: waited for
    INCOMPLETE = "incomplete"  # empty, or a zip without its end record: waited for


def _regular(st: os.stat_result) -> bool:
    """A plain regular file with a single link: the only kind of entry the watcher opens."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def _signature(st: os.stat_result) -> tuple[int, ...]:
    """What must stay the same for an entry to count as unchanged (from ``lstat``)."""
    return (stat.S_IFMT(st.st_mode), st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def _read_lease(fd: int) -> Iterator[bool | None]:
    """Hold a Linux read lease on ``fd`` for the ``with`` block; yield whether someone writes.

    Yields ``True`` when the lease is refused with EAGAIN (someone has the file open for
    writing), ``False`` while it is held, ``None`` when the system cannot tell: taking one
    needs file ownership or CAP_LEASE (EACCES/EPERM otherwise) and a file system that
    supports leases (EINVAL otherwise). A writer opening the file while we hold the lease
    waits until we give it back, and the kernel tells the holder with a signal: SIGIO unless
    F_SETSIG names another, and SIGIO's default action ends the process. We ask for SIGURG,
    which is ignored by default, so a writer arriving at the wrong moment cannot kill us.
    """
    if not sys.platform.startswith("linux"):
        yield None
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        yield True if exc.errno == errno.EAGAIN else None
        return
    try:
        yield False
    finally:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)


def _open_for_writing(fd: int) -> bool | None:
    """Does anyone have this file open for writing? ``None``: the system cannot tell us.

    The lease is given back at once, so a writer opening the file meanwhile waits for a
    moment at most.
    """
    with _read_lease(fd) as writing:
        return writing


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """``os.pread``, which Windows lacks; the descriptor is ours alone."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _looks_complete(fd: int, size: int) -> bool:
    """Is the file not obviously unfinished? Reads the first 4 bytes and the tail only.

    Empty: unfinished. A zip (every xlsx) is written front to back and ends with its
    end-of-central-directory record (22 bytes plus a comment of up to 64 KiB): without it at
    the very end, the writer has not finished. Any other format cannot be judged here.
    """
    if size == 0:
        return False
    if _read_at(fd, len(_ZIP_LOCAL_HEADER), 0) != _ZIP_LOCAL_HEADER:
        return True
    last = _read_at(fd, _ZIP_END_SIZE, max(size - _ZIP_END_SIZE, 0))
    if last[:4] == _ZIP_END_RECORD and len(last) == _ZIP_END_SIZE and last[20:] == b"\0\0":
        return True  # the usual case: an end record with no comment
    span = min(size, _ZIP_END_SIZE + _ZIP_MAX_COMMENT)
    tail = _read_at(fd, span, size - span)
    at = tail.rfind(_ZIP_END_RECORD)
    while at >= 0:
        record_end = at + _ZIP_END_SIZE + int.from_bytes(tail[at + 20 : at + 22], "little")
        if at + _ZIP_END_SIZE <= len(tail) and record_end == len(tail):
            return True
        at = tail.rfind(_ZIP_END_RECORD, 0, at)
    return False


def _named_like_a_document(name: str) -> bool:
    """May a close or rename event alone say this file is done? Only for names with a suffix.

    Excel saves by writing a temporary with a bare 8-character name (``6F2A1B00``), closing
    it, and renaming it over the form a moment later: handed over on its close, it would be
    taken from under Excel. Such names keep the stability wait.
    """
    return bool(Path(name).suffix)


def _nobody_writing(path: Path, st: os.stat_result) -> bool:
    """Does the kernel say that nobody has the regular file ``st`` open for writing?"""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        opened = os.fstat(fd)
        same = _regular(opened) and (opened.st_dev, opened.st_ino) == (st.st_dev, st.st_ino)
        return same and _open_for_writing(fd) is False
    finally:
        os.close(fd)


def _inspect(path: Path, st: os.stat_result) -> _Check:
    """Open ``path`` (never through a link, never blocking) and say whether it can be handed over.

    ``st`` is the ``lstat`` the decision so far was based on: if the opened file is not that
    entry, the answer is :attr:`_Check.CHANGED`. ``FileNotFoundError`` propagates (the caller
    forgets the file). A file system that cannot do ``flock`` does not count as locked.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        # ELOOP: a symlink now stands where the file was; the next scan hands it over as one.
        return _Check.CHANGED if exc.errno == errno.ELOOP else _Check.UNREADABLE
    try:
        opened = os.fstat(fd)
        if not _regular(opened) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            return _Check.CHANGED
        if sys.platform != "win32":
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _Check.LOCKED  # someone holds LOCK_EX: still being written
            except OSError:
                pass  # ENOLCK / EOPNOTSUPP / EINVAL: this file system cannot tell us
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if _open_for_writing(fd):
            return _Check.WRITING
        if not _looks_complete(fd, opened.st_size):
            return _Check.INCOMPLETE
        return _Check.READY
    except OSError:
        return _Check.UNREADABLE
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StuckEntry:
    """An inbox entry the watcher will not hand over by itself, and why (in Chinese)."""

    name: str
    cause: str


#: Hidden names that are someone's working files, not a person's forms: never "stuck".
_HIDDEN_NOT_STUCK: tuple[str, ...] = (
    ".~lock.",  # LibreOffice owner files
    "._",  # macOS AppleDouble metadata
    ".nfs",  # NFS silly-renamed files, removed by the client
    ".fuse_hidden",  # the same on FUSE
)
_HIDDEN_NAMES_NOT_STUCK: frozenset[str] = frozenset({".ds_store", ".gitkeep", ".directory"})
_HOLD_SUFFIX = ".taking"  # the processor's own hold-aside names: .<name>.<pid>.taking

_KIND_NAMES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISLNK, "符号链接(快捷方式)"),
    (stat.S_ISDIR, "文件夹"),
    (stat.S_ISFIFO, "命名管道"),
    (stat.S_ISSOCK, "套接字"),
    (stat.S_ISCHR, "设备文件"),
    (stat.S_ISBLK, "设备文件"),
)


def _hidden_for_ever(name: str) -> bool:
    """A name starting with a dot that no program of ours, Office's or the OS's explains."""
    lowered = name.casefold()
    return (
        name.startswith(".")
        and not lowered.startswith(_HIDDEN_NOT_STUCK)
        and lowered not in _HIDDEN_NAMES_NOT_STUCK
        and not lowered.endswith((*JUNK_SUFFIXES, _HOLD_SUFFIX))
    )


def stuck_entries(inbox: Path) -> list[StuckEntry]:
    """Entries in ``inbox`` that will not be handled as they are, each with its cause.

    ``refundflow status`` shows them so that nothing a person dropped sits unanswered: hidden
    names (ignored for ever), files that cannot be opened, forms held by an Office owner file,
    and entries that are not plain files (answered by the processor while a watcher runs).
    Looks with ``lstat`` and opens with ``O_NOFOLLOW | O_NONBLOCK`` only.
    """
    try:
        with os.scandir(inbox) as it:
            names = sorted(entry.name for entry in it)
    except OSError:
        return []
    all_names = {name.casefold() for name in names}
    stuck: list[StuckEntry] = []
    for name in names:
        if is_junk(name):
            if _hidden_for_ever(name):
                stuck.append(
                    StuckEntry(
                        name,
                        "文件名以“.”开头,会被当作隐藏文件,永远不会被处理;"
                        "请把文件改名,去掉开头的“.”后再放入 inbox",
                    )
                )
            continue
        try:
            st = os.lstat(inbox / name)
        except OSError:
            continue  # gone meanwhile
        if not _regular(st):
            kind = next((text for test, text in _KIND_NAMES if test(st.st_mode)), "特殊文件")
            if stat.S_ISREG(st.st_mode):
                kind = "有多个硬链接的文件"
            stuck.append(
                StuckEntry(
                    name,
                    f"这是{kind},不是普通文件,不会被读取;运行中的 refundflow watch 会把它退回到 "
                    "outbox/rejected;请把表单文件本身(不是链接或文件夹)直接放入 inbox",
                )
            )
            continue
        owners = [o for o in _owner_file_names(name) if o.casefold() in all_names]
        if owners:
            stuck.append(
                StuckEntry(
                    name,
                    f"存在 Office 锁定文件 {owners[0]},表示文件正在 Excel/WPS/LibreOffice 中打开;"
                    "请关闭该文件;如果确认没有人打开它,请删除这个锁定文件",
                )
            )
            continue
        try:
            fd = os.open(inbox / name, _OPEN_FLAGS)
        except FileNotFoundError:
            continue
        except OSError as exc:
            stuck.append(
                StuckEntry(
                    name,
                    f"无法打开文件({exc.strerror}),可能没有读取权限;"
                    "请检查文件权限,或把文件重新保存一份后放入 inbox",
                )
            )
            continue
        os.close(fd)
    return stuck


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


class _Hints:
    """Names the kernel said were closed after writing or renamed into place (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()

    def add(self, name: str) -> None:
        with self._lock:
            self._names.add(name)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._names)

    def take(self) -> set[str]:
        with self._lock:
            names, self._names = self._names, set()
        return names


class _WakeHandler(FileSystemEventHandler):
    """Any change in the inbox wakes the loop; the loop decides what it means.

    With ``hints`` (native inotify on a local disk), a write-close (IN_CLOSE_WRITE) or a
    rename into the inbox also records the name: that file's writer is done with it.
    """

    def __init__(self, wake: threading.Event, inbox: Path, hints: _Hints | None) -> None:
        super().__init__()
        self._wake = wake
        self._inbox = os.path.abspath(inbox)
        self._hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _QUIET_EVENTS:
            return
        if self._hints is not None and not event.is_directory:
            path = {EVENT_TYPE_CLOSED: event.src_path, EVENT_TYPE_MOVED: event.dest_path}.get(
                event.event_type
            )
            if path:
                text = os.fsdecode(path)
                if os.path.dirname(os.path.abspath(text)) == self._inbox:
                    self._hints.add(os.path.basename(text))
        self._wake.set()


def _native_observer() -> BaseObserver:
    """The platform's event observer; on Linux one that reports renames into the inbox.

    watchdog's default inotify emitter reports a file moved in from another folder as
    "created", which says nothing about whether it is complete; the full emitter says
    "moved", and a rename into place means the writer is done.
    """
    if sys.platform.startswith("linux"):
        return InotifyObserver(generate_full_events=True)
    return Observer()


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
                observer.schedule(handler, str(self.inbox), recursive=False)
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
