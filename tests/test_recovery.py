"""What a crash or a concurrent save can do around taking a file out of the inbox."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from refundflow.archive import sha256
from refundflow.config import load_config
from refundflow.inboxfile import remove_if_unchanged
from refundflow.processor import Processor
from refundflow.sandbox import ParserPool
from refundflow.workspace import Workspace

from conftest import Invoke, drop, make_form


def test_a_version_saved_during_processing_is_put_back_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "form.xlsx"
    path.write_bytes(b"the version someone saved meanwhile")
    remove_if_unchanged(path, sha256(b"the version that was processed"), None)
    assert path.read_bytes() == b"the version someone saved meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["form.xlsx"]


def test_the_processed_version_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "form.xlsx"
    path.write_bytes(b"processed")
    remove_if_unchanged(path, sha256(b"processed"), None)
    assert list(tmp_path.iterdir()) == []


def test_restart_releases_files_a_killed_run_held_aside(root: Path, run: Invoke) -> None:
    form = make_form()
    drop(root, "a.xlsx", form)
    run("process")  # a.xlsx is processed and done
    inbox = root / "inbox"
    (inbox / ".a.xlsx.4242.taking").write_bytes(form)  # killed after the rename: done
    (inbox / ".b.xlsx.4242.taking").write_bytes(b"not processed yet")  # killed: not done
    workspace = Workspace(root, load_config(root))
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 20), pool=pool)
        try:
            processor.recover()
        finally:
            processor.close()
    assert sorted(p.name for p in inbox.iterdir()) == ["b.xlsx"]
    assert (inbox / "b.xlsx").read_bytes() == b"not processed yet"


def test_a_file_taken_back_before_it_is_read_is_not_a_failure(root: Path) -> None:
    from refundflow.cli.run import _handler

    workspace = Workspace(root, load_config(root))
    failures: list[str] = []
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 20), pool=pool)
        try:
            _handler(processor, failures)(root / "inbox" / "gone.xlsx")
        finally:
            processor.close()
    assert failures == []


def test_restart_never_deletes_what_someone_is_uploading_into_the_inbox(
    root: Path, run: Invoke
) -> None:
    upload = root / "inbox" / ".form.xlsx.part"  # an uploader's temporary, not ours
    upload.write_bytes(b"half of someone's upload")
    ours = root / "outbox" / "tech" / ".TKD20261123-001.xlsx.4242.part"  # a killed delivery
    ours.write_bytes(b"half a delivery")
    theirs = root / "outbox" / "tech" / ".notes.part"
    theirs.write_bytes(b"a person's file")
    workspace = Workspace(root, load_config(root))
    with ParserPool(memory_mb=512, timeout=20) as pool:
        processor = Processor(workspace, clock=lambda: dt.datetime(2026, 11, 23, 9, 20), pool=pool)
        try:
            processor.recover()
        finally:
            processor.close()
    assert upload.read_bytes() == b"half of someone's upload"
    assert theirs.exists()
    assert not ours.exists()
