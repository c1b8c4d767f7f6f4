"""Fault injection: kill -9 the watcher during a burst, restart, count.

Every dropped file must end up processed exactly once or still waiting in inbox/: never lost,
never routed twice, never half-recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refundflow.ledger import Ledger

from conftest import Invoke, make_form

BURST = 60


def _watch(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "refundflow.cli",
            "--now",
            "2026-11-23 09:10",
            "watch",
            "--root",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _routed(root: Path) -> int:
    return sum(1 for p in (root / "outbox" / "tech").iterdir() if p.suffix == ".xlsx")


@pytest.mark.slow
def test_kill_9_during_a_burst_loses_nothing_and_doubles_nothing(root: Path, run: Invoke) -> None:
    for i in range(BURST):
        form = make_form(order_no=f"TK2026112200{i:03d}", mobile=f"1380013{i:04d}")
        (root / "inbox" / f"form-{i:03d}.xlsx").write_bytes(form)

    kills = 0
    deadline = time.monotonic() + 240
    # Kill at moments spread over the burst: after 1, 8, 15, ... files were routed, and
    # also a few times at arbitrary instants right after a start.
    thresholds = iter([1, 8, 15, 23, 30, 38, 45, 52])
    target = next(thresholds, None)
    while target is not None and time.monotonic() < deadline:
        proc = _watch(root)
        try:
            while _routed(root) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # polling a counter, not waiting for behaviour
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        kills += 1
        target = next(thresholds, None)
    assert kills >= 6

    result = run("process")  # the restart finishes what was interrupted
    assert result.exit_code == 0, result.output

    assert [p.name for p in (root / "inbox").iterdir()] == []
    routed = sorted(p.name for p in (root / "outbox" / "tech").iterdir())
    assert len(routed) == BURST, routed
    assert not any("(" in name for name in routed), "a form was delivered twice"
    ledger = Ledger(root / "refundsheets" / "ledger.sqlite3")
    try:
        forms = ledger.all_forms()
        assert len(forms) == BURST
        assert len({f.order_no for f in forms}) == BURST
        events = ledger.events()
        assert [e.kind for e in events] == ["accepted"] * BURST
        assert ledger.unfinished_receipts() == []
    finally:
        ledger.close()
    received = list((root / "refundsheets" / "archive" / "received").glob("*/*"))
    assert len(received) == BURST, "each received file archived exactly once (orphans aside)"
