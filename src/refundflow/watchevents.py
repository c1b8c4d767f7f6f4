"""Filesystem events for the inbox watcher: which ones wake its loop, and which can be trusted.

Events only wake the loop (and, from inotify on a local disk, say which files were closed
after writing or renamed into place); the loop decides what a change means. On a network
share events are not delivered reliably: :func:`detect_network_fs` tells the watcher to poll.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .inboxfile import is_hold_name

if sys.platform.startswith("linux"):
    from watchdog.observers.inotify import InotifyObserver

#: Observer event types that do not mean the directory changed. inotify reports opens and
#: read-only closes; our own readiness check opens files, so waking on these would make the
#: loop wake itself for ever.
_QUIET_EVENTS: frozenset[str] = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})

#: The events an observer is asked for. Not opens and read-only closes (our own reads of every
#: form would cause them: inotify then does not even generate them), nor "directory modified"
#: for the inbox, which comes beside every entry's own event and says nothing more.
WAKE_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
]

#: File-system types that do not deliver change notifications reliably (or at all).
NETWORK_FS_TYPES: frozenset[str] = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "davfs", "fuse.sshfs"}
)


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


def _self_caused(event: FileSystemEvent, inbox: str) -> bool:
    """Is this an event our own processing causes in the inbox, which needs no new scan?

    Taking a form out renames it to its hold name (``.<name>.<pid>.taking``), then deletes
    it; the loop learns what became of the file when the handler returns, so these events
    would only wake it for an empty scan. A changed file put back reappears under a person's
    name: that event still wakes the loop. "Directory modified" for the inbox itself comes
    beside every entry's own event and says nothing more (observers not asked for
    :data:`WAKE_EVENTS` deliver it).
    """
    if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
        return os.path.abspath(os.fsdecode(event.src_path)) == inbox
    # A move counts by where it goes: out of sight into a hold name is ours; back into view
    # under a person's name (a changed file put back) must be looked at again.
    path = event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path
    return bool(path) and is_hold_name(os.path.basename(os.fsdecode(path)))


class _WakeHandler(FileSystemEventHandler):
    """Any change in the inbox wakes the loop; the loop decides what it means.

    With ``hints`` (native inotify on a local disk), a write-close (IN_CLOSE_WRITE) or a
    rename into the inbox also records the name: that file's writer is done with it. Events
    our own processing causes are not passed on (:func:`_self_caused`).
    """

    def __init__(self, wake: threading.Event, inbox: Path, hints: _Hints | None) -> None:
        super().__init__()
        self._wake = wake
        self._inbox = os.path.abspath(inbox)
        self._hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _QUIET_EVENTS or _self_caused(event, self._inbox):
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
