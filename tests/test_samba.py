"""Staff reach the folders over SMB: a real Samba server on loopback, the watcher on its side.

The watcher runs on the file server that serves the share (inotify sees what Samba writes).
Each test starts smbd on a free loopback port with a throw-away configuration whose share is
the workspace, and plays the staff through it with smbclient: a plain upload, the way Excel
saves (a temporary name renamed over the target), a slow upload that pauses with the file open,
and a form held open in Excel (its ``~$`` owner file on the share). Each form must be routed
exactly once, and a half-uploaded file never answered as damaged.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import make_form, wait_until

FORM = "TKD20261123-001.xlsx"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("smbd") is None or shutil.which("smbclient") is None,
        reason="Samba (smbd, smbclient) is not installed: apt-get install samba smbclient",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="a throw-away smbd needs root here"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Share:
    conf: Path
    port: int

    def run(self, commands: str, *, check: bool = True) -> str:
        done = subprocess.run(
            ["smbclient", "-p", str(self.port), "//127.0.0.1/refunds", "-N", "-s",
             str(self.conf), "-c", commands],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check and (done.returncode != 0 or "NT_STATUS_" in done.stdout):
            raise AssertionError(f"smbclient {commands!r}: {done.stdout}{done.stderr}")
        return done.stdout

    def put(self, local: Path, remote: str) -> None:
        self.run(f'put "{local}" "{remote}"')


@pytest.fixture
def share(root: Path, tmp_path: Path) -> Iterator[Share]:
    """smbd serving the workspace as //127.0.0.1/refunds on a free loopback port."""
    state = tmp_path / "samba"
    for sub in ("state", "private", "lock", "cache", "log"):
        (state / sub).mkdir(parents=True)
    port = free_port()
    conf = state / "smb.conf"
    conf.write_text(
        f"""[global]
  workgroup = TEST
  server role = standalone server
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  state directory = {state}/state
  private dir = {state}/private
  lock directory = {state}/lock
  cache directory = {state}/cache
  pid directory = {state}/state
  ncalrpc dir = {state}/state/ncalrpc
  log file = {state}/log/smbd.log
  map to guest = Bad User
  guest account = root
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[refunds]
  path = {root}
  read only = no
  guest ok = yes
  force user = root
""",
        encoding="utf-8",
    )
    server = subprocess.Popen(
        ["smbd", "--foreground", "--no-process-group", f"--configfile={conf}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    served = Share(conf, port)
    try:
        if not wait_until(lambda: "inbox" in served.run("ls", check=False), timeout=30):
            pytest.fail(f"smbd did not serve the share: {(state / 'log').iterdir()}")
        yield served
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def watching(root: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`refundflow watch` on the server's side of the share, with its real waiting rules."""
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("stable_seconds = 0", "stable_seconds = 2")
    text = text.replace("incomplete_seconds = 0", "incomplete_seconds = 60")
    config.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    log = (tmp_path / "watch.out").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "refundflow.cli", "--now", "2026-11-23 09:10", "watch",
         "--root", str(root)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def outbox(root: Path, role: str) -> list[str]:
    return sorted(p.name for p in (root / "outbox" / role).iterdir() if p.name != ".gitkeep")


def inbox(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "inbox").iterdir() if p.name != ".gitkeep")


def form_file(tmp_path: Path) -> Path:
    path = tmp_path / "申请.xlsx"
    path.write_bytes(make_form())
    return path


def test_form_uploaded_over_smb_is_routed_once(
    root: Path, tmp_path: Path, share: Share, watching: subprocess.Popen[str]
) -> None:
    share.put(form_file(tmp_path), "inbox/申请.xlsx")
    assert wait_until(lambda: outbox(root, "tech") == [FORM], timeout=60)
    assert wait_until(lambda: inbox(root) == [], timeout=30)
    assert outbox(root, "rejected") == []


def test_excel_style_save_temp_then_rename_is_routed_once(
    root: Path, tmp_path: Path, share: Share, watching: subprocess.Popen[str]
) -> None:
    # Excel writes a temporary without a suffix, then renames it over the form's name.
    share.run(
        f'put "{form_file(tmp_path)}" "inbox/6F2A1B00"; rename inbox/6F2A1B00 inbox/申请.xlsx'
    )
    assert wait_until(lambda: outbox(root, "tech") == [FORM], timeout=60)
    assert wait_until(lambda: inbox(root) == [], timeout=30)
    assert outbox(root, "rejected") == []


def test_slow_upload_is_waited_for_not_rejected(
    root: Path, share: Share, watching: subprocess.Popen[str]
) -> None:
    whole = make_form()
    # smbclient copying from a pipe creates the file on the server at once and keeps it open
    # while it waits for the data: the upload pauses 5 s (stable_seconds is 2) before the
    # rest arrives. (smbclient sends piped data only at the end, so the file stays empty;
    # a file with its first bytes written is tested with a local writer in test_watcher.)
    feeder = subprocess.Popen(
        ["smbclient", "-p", str(share.port), "//127.0.0.1/refunds", "-N", "-s",
         str(share.conf), "-c", "put /dev/stdin inbox/申请.xlsx"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert feeder.stdin is not None
    feeder.stdin.write(whole[: len(whole) // 2])
    feeder.stdin.flush()
    received = root / "inbox" / "申请.xlsx"
    assert wait_until(received.exists, timeout=30)
    assert not wait_until(lambda: outbox(root, "rejected") or outbox(root, "tech"), timeout=5)
    assert received.exists()  # still there, not taken as an empty or damaged file
    feeder.stdin.write(whole[len(whole) // 2 :])
    feeder.stdin.close()
    assert feeder.wait(timeout=60) == 0
    assert wait_until(lambda: outbox(root, "tech") == [FORM], timeout=60)
    assert outbox(root, "rejected") == []


def test_form_open_in_excel_on_the_share_waits_for_its_owner_file(
    root: Path, tmp_path: Path, share: Share, watching: subprocess.Popen[str]
) -> None:
    owner = tmp_path / "owner"
    owner.write_bytes(b"\x05excel-user")
    share.put(owner, "inbox/~$申请.xlsx")  # Excel's owner file: the form is open
    share.put(form_file(tmp_path), "inbox/申请.xlsx")
    assert not wait_until(lambda: outbox(root, "tech"), timeout=5)
    assert "申请.xlsx" in inbox(root)
    share.run('del "inbox/~$申请.xlsx"')  # Excel closed
    assert wait_until(lambda: outbox(root, "tech") == [FORM], timeout=60)
