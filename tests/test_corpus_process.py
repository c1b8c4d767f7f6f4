"""Every wild spreadsheet dropped in the inbox is answered: no crash, none lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from refundflow.archive import sha256
from refundflow.ledger import Ledger

from conftest import Invoke
from corpus import CORPUS

pytestmark = pytest.mark.corpus


def test_every_corpus_file_is_answered_without_loss(root: Path, run: Invoke) -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.name not in ("MANIFEST.tsv", "SOURCES.md"))
    assert len(files) > 250
    for path in files:
        shutil.copyfile(path, root / "inbox" / path.name)

    result = run("process")

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "inbox").iterdir()) == []
    rejected = root / "outbox" / "rejected"
    answered = {p.name for p in rejected.iterdir()}
    for path in files:
        # Each file comes back byte for byte, with a reason a person can read.
        assert path.name in answered, path.name
        assert (rejected / path.name).read_bytes() == path.read_bytes(), path.name
        reply = (rejected / f"{path.name}.退回原因.txt").read_text(encoding="utf-8-sig")
        assert "问题:" in reply and "处理办法:" in reply, path.name
    ledger = Ledger(root / "refundsheets" / "ledger.sqlite3")
    try:
        events = ledger.events()
        assert len(events) == len(files)
        assert {e.file_sha for e in events} == {sha256(p.read_bytes()) for p in files}
    finally:
        ledger.close()
    received = list((root / "refundsheets" / "archive" / "received").glob("*/*"))
    assert len(received) == len(files)
    assert len(result.output.splitlines()) == len(files)
