"""The README and the default refundflow.toml say what the code does (as sqlite-utils'
test_docs.py does for its docs): every configuration key the parser reads is documented in
both, neither names a key the parser does not read, and every command is in the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from refundflow.cli import cli
from refundflow.config import DEFAULT_CONFIG_TEXT, ConfigError, parse_config

from conftest import REPO, Invoke, drop, make_form

README = (REPO / "README.md").read_text(encoding="utf-8")
# Tables whose keys are data (role keys, shift names), not names the parser knows.
DATA_TABLES = {"roster", "folders", "shifts"}
NOT_A_VALUE = {"not": "a value"}  # wrong for every key: the parser names the key it refuses


def parser_top_level_keys() -> set[str]:
    with pytest.raises(ConfigError) as refused:
        parse_config({"no_such_key": 1})
    return set(re.search(r"可用:([^)]*)", refused.value.message)[1].split("、"))  # type: ignore[index]


def readme_keys() -> set[tuple[str | None, str]]:
    """(section, key) from the configuration table's first column; (None, key) at top level,
    (section, "") for a table of data such as [roster]."""
    table = README.split("## Configuration reference", 1)[1].split("\n\n", 2)[1]
    keys: set[tuple[str | None, str]] = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1].strip().strip("`")
        section = re.match(r"\[(\w+)\]\s*", first)
        if section is None:
            keys.add((None, first.split()[0]))  # `banks = [...]`: the key
        elif section[1] in DATA_TABLES:
            keys.add((section[1], ""))
        else:
            keys |= {(section[1], key) for key in first[section.end() :].split()}
    return keys


def default_toml_keys() -> set[tuple[str | None, str]]:
    """The same from DEFAULT_CONFIG_TEXT, whose keys are all written, commented out."""
    keys: set[tuple[str | None, str]] = set()
    section: str | None = None
    for line in DEFAULT_CONFIG_TEXT.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header[1]
            keys.add((section, "") if section in DATA_TABLES else (section, "-"))
        elif (key := re.match(r"# (\w+) = ", line)) and section not in DATA_TABLES:
            keys.add((section, key[1]))
    return {k for k in keys if k[1] != "-"}


def test_readme_and_default_toml_name_the_same_keys() -> None:
    assert readme_keys() == default_toml_keys()


def test_every_top_level_key_the_parser_reads_is_documented() -> None:
    documented = {key if section is None else section for section, key in readme_keys()}
    assert documented == parser_top_level_keys()


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param(s, k, id=f"{s}.{k}" if s else k)
        for s, k in sorted(readme_keys() | default_toml_keys(), key=str)
        if k
    ],
)
def test_every_documented_key_is_read_by_the_parser(section: str | None, key: str) -> None:
    data = {key: NOT_A_VALUE} if section is None else {section: {key: NOT_A_VALUE}}
    name = key if section is None else f"{section}.{key}"
    with pytest.raises(ConfigError) as refused:  # a key the parser ignores raises nothing
        parse_config(data)
    assert f" {name} " in refused.value.message and "未知" not in refused.value.message


@pytest.mark.parametrize("command", [pytest.param(c, id=c) for c in sorted(cli.commands)])  # type: ignore[attr-defined]
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"refundflow {command} " in README


def test_the_procedure_the_readme_links_to_is_in_the_project() -> None:
    links = re.findall(r"\]\(([^)]+refund-process\.md)\)", README)
    assert links == ["docs/refund-process.md"]
    assert (REPO / links[0]).read_text(encoding="utf-8").startswith("# The refund process")


def test_git_ignores_everything_refundflow_writes_in_a_workspace(root: Path, run: Invoke) -> None:
    """What a day's work leaves in inbox/, outbox/ and refundsheets/, mapped onto the
    repository's own workspace folders, is ignored: live data never shows in git status."""
    drop(root, "a.xlsx", make_form())
    drop(root, "bad.xlsx", make_form(order_no="TK20261122002", amount="abc"))
    drop(root, "junk.txt", b"not a form")
    drop(root, "~$x.xlsx", b"owner file")  # an Office owner file: left in inbox/
    run("process", now="2026-11-23 09:10")
    run("handover", now="2026-11-23 16:50")
    run("report", "--month", "2026-11", now="2026-11-30 10:00")
    made = sorted(
        str(path.relative_to(root))
        for folder in ("inbox", "outbox", "refundsheets")
        for path in (root / folder).rglob("*")
        if path.is_file() and path.name != ".gitkeep"
    )
    assert {m.split("/")[0] for m in made} == {"inbox", "outbox", "refundsheets"}
    assert "outbox/状态看板.xlsx" in made and "refundsheets/ledger.sqlite3" in made
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", "--stdin", "-z"],
        input="\0".join(made) + "\0",
        capture_output=True,
        text=True,
        check=False,
    )
    if ignored.returncode == 128:
        pytest.skip(f"not a git checkout: {ignored.stderr.strip()}")
    assert sorted(ignored.stdout.split("\0")[:-1]) == made
