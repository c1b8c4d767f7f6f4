"""One watcher, `process` or `rebuild` per workspace, even when someone deletes or replaces
files under refundsheets/: two would give the same form numbers to two customers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import drop, make_form, wait_until

NOW = "2026-11-23 09:10"
HINT = "处理办法:同一工作区同时只能运行一个 watch 或 process;请等它结束或先停止它"


def refundflow(root: Path, command: str) -> list[str]:
    return [sys.executable, "-m", "refundflow.cli", "--now", NOW, command, "--root", str(root)]


def second(root: Path, command: str) -> tuple[int, str]:
    """Run a second command as its own process; it must give up at once, not wait."""
    done = subprocess.run(refundflow(root, command), capture_output=True, timeout=60, check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def replace_with_a_new_file(lock: Path) -> None:
    lock.unlink()
    lock.write_text("", encoding="utf-8")


def replace_with_a_link(lock: Path) -> None:
    lock.unlink()
    lock.symlink_to(lock.parent / "elsewhere")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(Path.unlink, id="lock-file-deleted"),
        pytest.param(replace_with_a_new_file, id="lock-file-replaced"),
        pytest.param(replace_with_a_link, id="lock-file-replaced-by-a-link"),
    ],
)
def test_the_lock_holds_when_its_file_is_deleted_or_replaced(
    root: Path, tmp_path: Path, tamper: Callable[[Path], object]
) -> None:
    out = tmp_path / "first.stdout"
    with out.open("wb") as stdout:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        first = subprocess.Popen(
            refundflow(root, "watch"), stdout=stdout, stderr=subprocess.DEVNULL, env=env
        )
    try:
        started = wait_until(
            lambda: "正在监视" in out.read_text("utf-8") or first.poll() is not None
        )
        assert started and first.poll() is None, out.read_text("utf-8")
        lock = root / "refundsheets" / ".refundflow.lock"
        assert f"refundflow watch (pid {first.pid}" in lock.read_text("utf-8")
        tamper(lock)
        drop(root, "form.xlsx", make_form())

        for command in ("process", "watch", "rebuild"):
            code, output = second(root, command)
            assert code == 1, output
            assert output == f"Error: 错误:工作区正在被使用:另一个 refundflow 进程\n{HINT}\n"

        # The first watcher alone answers the form: once, with the first number.
        tech = root / "outbox" / "tech"
        assert wait_until(lambda: (tech / "TKD20261123-001.xlsx").exists())
        assert wait_until(lambda: not (root / "inbox" / "form.xlsx").exists())
        assert sorted(p.name for p in tech.iterdir()) == ["TKD20261123-001.xlsx"]
        assert not (root / "refundsheets" / "elsewhere").exists(), "written through a link"
    finally:
        first.kill()
        first.wait(timeout=30)
