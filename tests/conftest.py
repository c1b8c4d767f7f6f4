"""Shared fixtures: a fresh workspace, a filled refund form, and a CLI runner."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from refundflow.cli import cli

from corpus import CORPUS, CORPUS_VARIABLE
from formfill import NEW_FORM, fill_form

REPO = Path(__file__).resolve().parents[1]
REFUND_TEMPLATE = REPO / "templates" / "退款申请表.xlsx"


@pytest.hookimpl(tryfirst=True)  # before an empty corpus table's own "empty parameter set" skip
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``corpus`` skip without the corpus, naming the variable; under CI they fail.

    A clone without ``shared/`` beside it would otherwise turn some 300 corpus cases into quiet
    skips, and a CI run would pass without having read a single wild file.
    """
    if item.get_closest_marker("corpus") is None or CORPUS.is_dir():
        return
    missing = f"wild-spreadsheet corpus not found at {CORPUS}: set {CORPUS_VARIABLE} to its folder"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing} (CI is set, so a missing corpus fails)", pytrace=False)
    pytest.skip(missing)


def block(
    role: str, person: str, at: dt.datetime, *, approval: str = "同意", opinion: str = "核实无误"
) -> dict[str, object]:
    return {
        f"{role}_opinion": opinion,
        f"{role}_by": person,
        f"{role}_date": at,
        f"{role}_approval": approval,
    }


def make_form(values: Mapping[str, object] | None = None, **overrides: object) -> bytes:
    """A new refund form filled through the defined names, as staff would in Excel."""
    merged = dict(NEW_FORM if values is None else values)
    merged.update(overrides)
    return fill_form(REFUND_TEMPLATE, merged)


def edit_form(data: bytes, values: Mapping[str, object]) -> bytes:
    """What a person does to a routed copy: open it, fill their block, save."""
    return fill_form(data, values)


# Who may sign each block in the test workspaces: the names the tests sign with.
ROSTER: dict[str, list[str]] = {
    "cs": ["张三", "李四"],
    "tech": ["王五"],
    "cashier": ["赵六"],
    "accountant": ["钱七"],
    "director": ["孙八"],
    "president": ["周九"],
    "admin": ["吴十"],
}


def set_roster(
    root: Path, roster: Mapping[str, list[str]], *, require_roster: bool | None = None
) -> None:
    """Replace the [roster] table of ``root``'s refundflow.toml; set require_roster or unset it.

    An empty ``roster`` leaves the table as ``init`` writes it: every role open to anyone.
    """
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    head, rest = text.split("\n[roster]\n", 1)
    head = "".join(line for line in head.splitlines(True) if not line.startswith("require_"))
    tail = rest[rest.index("\n[") :]  # from the table after [roster] on
    top = "" if require_roster is None else f"\nrequire_roster = {str(require_roster).lower()}\n"
    # A TOML array of strings is written like a JSON one.
    table = "".join(
        f"{role} = {json.dumps(people, ensure_ascii=False)}\n" for role, people in roster.items()
    )
    config.write_text(f"{head}{top}\n[roster]\n{table}{tail}", encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An initialised workspace with a roster, whose files count as stable and complete at once.

    Tests about waiting for files still being written set their own values; the others drop
    whole files, and truncated workbooks among them are to be answered, not waited for.
    """
    workspace = tmp_path / "ws"
    result = CliRunner().invoke(cli, ["init", "--root", str(workspace)])
    assert result.exit_code == 0, result.output
    config = workspace / "refundflow.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("# stable_seconds = 2", "stable_seconds = 0")
    text = text.replace("# incomplete_seconds = 60", "incomplete_seconds = 0")
    # The watcher's own handover sheet follows the real clock: tests that want it turn it on.
    text = text.replace("# auto = true", "auto = false")
    config.write_text(text, encoding="utf-8")
    set_roster(workspace, ROSTER)
    return workspace


Invoke = Callable[..., Result]


@pytest.fixture
def run(root: Path) -> Invoke:
    """Run a refundflow command on the workspace as of --now (default 2026-11-23 09:10)."""

    def invoke(*args: str, now: str = "2026-11-23 09:10") -> Result:
        command, *rest = args
        return CliRunner().invoke(cli, ["--now", now, command, "--root", str(root), *rest])

    return invoke


def drop(root: Path, name: str, data: bytes) -> Path:
    path = root / "inbox" / name
    path.write_bytes(data)
    return path


def take(root: Path, role: str, name: str) -> bytes:
    """A person takes the file out of their outbox folder."""
    path = root / "outbox" / role / name
    data = path.read_bytes()
    path.unlink()
    return data


def amount(value: str) -> Decimal:
    return Decimal(value)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    """Check ``predicate`` every 10 ms until it is true or ``timeout`` runs out.

    Tests wait for behaviour with this, never with bare sleeps.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
