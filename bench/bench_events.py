"""CPU the watcher spends on the inbox events our own processing causes.

    python3 bench/bench_events.py [--forms 1000]

Runs the real watch loop (native events) in a thread over a fresh inbox and drops forms one
at a time, each after the previous one was taken out. The handler does to the inbox what the
processor does (read the file, hold it aside, remove it), nothing else, so what is left of the
process's CPU after the dropping and the handling is the watcher's: its event threads and its
scans. Measured twice in the same run, with the filter for self-caused events and without.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from unittest import mock

from watchdog.observers.api import BaseObserver

from refundflow import inboxfile, watchevents
from refundflow import watcher as watcher_module
from refundflow.watcher import InboxWatcher


def _form() -> bytes:
    """A complete zip the size of a filled form (the watcher checks the end record only)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", bytes(range(256)) * 32)
    return buffer.getvalue()


FORM = _form()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one of this process's threads (Linux: /proc/self/task/<tid>/stat)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _event_threads_cpu(observers: list[BaseObserver | None]) -> float:
    """CPU of the observers' threads (the emitter reading inotify, the dispatcher)."""
    threads: list[threading.Thread] = []
    for observer in observers:
        if observer is not None:
            threads += [observer, *observer.emitters]
    return sum(_thread_cpu(thread.native_id) for thread in threads)


def measure(forms: int, *, filtered: bool = True) -> dict[str, float]:
    """Watcher CPU seconds (outside dropping and handling) and scans for ``forms`` drops."""
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        inbox.mkdir()
        handled = threading.Semaphore(0)
        handling = [0.0]

        def handle(path: Path) -> None:
            started = time.thread_time()
            data = path.read_bytes()
            inboxfile.remove_if_unchanged(path, inboxfile.sha256_of(path), None)
            del data
            handling[0] += time.thread_time() - started
            handled.release()

        watcher = InboxWatcher(inbox, handle, stable_seconds=2.0, rescan_seconds=3600.0)
        scans = [0]
        scan_once = watcher.scan_once

        def counted() -> list[Path]:
            scans[0] += 1
            return scan_once()

        watcher.scan_once = counted  # type: ignore[method-assign]
        observers: list[BaseObserver | None] = []
        start_observer = watcher._start_observer

        def started() -> BaseObserver | None:
            observers.append(start_observer())
            return observers[-1]

        watcher._start_observer = started  # type: ignore[method-assign]
        stop = threading.Event()
        loop = threading.Thread(target=watcher.run, args=(stop,))
        with contextlib.ExitStack() as stack:
            if not filtered:  # as before: every event asked for, every event passed on
                stack.enter_context(mock.patch.object(watcher_module, "WAKE_EVENTS", None))
                stack.enter_context(
                    mock.patch.object(watchevents, "_self_caused", lambda event, inbox: False)
                )
            loop.start()
            stack.callback(loop.join)
            stack.callback(stop.set)
            time.sleep(0.5)  # the observer is up; the startup scan is done
            before, dropping = _cpu(), 0.0
            events_before = _event_threads_cpu(observers)
            for i in range(forms):
                started = time.thread_time()
                (inbox / f"form-{i}.xlsx").write_bytes(FORM)
                dropping += time.thread_time() - started
                if not handled.acquire(timeout=30):
                    raise SystemExit(f"form-{i}.xlsx was not taken within 30 s")
            time.sleep(0.3)  # the events of the last form are dispatched
            total = _cpu() - before
            events = _event_threads_cpu(observers) - events_before
    return {
        "forms": forms,
        "watcher_cpu_s": total - dropping - handling[0],
        "event_threads_cpu_s": events,
        "scans": scans[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forms", type=int, default=1000)
    args = parser.parse_args()
    for filtered in (False, True, False, True):
        r = measure(args.forms, filtered=filtered)
        label = "filtered  " if filtered else "unfiltered"
        print(
            f"{label} watcher CPU {r['watcher_cpu_s']:.2f} s, of which event threads"
            f" {r['event_threads_cpu_s']:.2f} s; {r['scans']:.0f} scans"
        )


if __name__ == "__main__":
    main()
