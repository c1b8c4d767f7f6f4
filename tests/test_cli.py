"""The command line as staff and schedulers use it: exact output, clear errors."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from refundflow.cli import cli
from refundflow.config import load_config
from refundflow.workspace import Workspace, WorkspaceLock

from conftest import REPO, Invoke, drop, make_form


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_init_creates_the_workspace_and_says_what(tmp_path: Path) -> None:
    root = tmp_path / "share"
    code, output = invoke("init", "--root", str(root))
    assert code == 0
    assert output.splitlines() == [
        "已创建 inbox",
        *(f"已创建 outbox/{role}" for role in
          ("cs", "tech", "cashier", "accountant", "director", "president", "admin", "rejected")),
        "已创建 refundsheets",
        "已创建 templates",
        "已创建 refundflow.toml",
        "已创建 templates/退款申请表.xlsx",
        "已创建 templates/客服部值班交接单.xlsx",
        "已创建 templates/客服退单统计表.xlsx",
        "已创建 templates/财务退单统计表.xlsx",
    ]  # fmt: skip
    # One command, a ready workspace: the templates are the ones `templates` writes.
    for path in (root / "templates").iterdir():
        assert _members(path.read_bytes()) == _members(
            (REPO / "templates" / path.name).read_bytes()
        )
    assert sorted(p.name for p in (root / "templates").iterdir()) == sorted(TEMPLATE_NAMES)


def test_init_never_overwrites_a_template(tmp_path: Path) -> None:
    invoke("init", "--root", str(tmp_path))
    own = tmp_path / "templates" / "退款申请表.xlsx"
    own.write_bytes(b"the site's own version")
    (tmp_path / "templates" / "客服部值班交接单.xlsx").unlink()
    code, output = invoke("init", "--root", str(tmp_path))
    assert (code, output) == (0, "已创建 templates/客服部值班交接单.xlsx\n")
    assert own.read_bytes() == b"the site's own version"
    assert sorted(p.name for p in (tmp_path / "templates").iterdir()) == sorted(TEMPLATE_NAMES)


def test_init_is_idempotent_and_keeps_a_changed_configuration(tmp_path: Path) -> None:
    invoke("init", "--root", str(tmp_path))
    config = tmp_path / "refundflow.toml"
    config.write_text("president_threshold = 5000\n", encoding="utf-8")
    code, output = invoke("init", "--root", str(tmp_path))
    assert (code, output) == (0, f"工作区 {tmp_path.resolve()} 已完整,无需创建\n")
    assert config.read_text(encoding="utf-8") == "president_threshold = 5000\n"


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != "docProps/core.xml"}


TEMPLATE_NAMES = [
    "退款申请表.xlsx",
    "客服部值班交接单.xlsx",
    "客服退单统计表.xlsx",
    "财务退单统计表.xlsx",
]


def test_init_writes_templates_on_a_share_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(_src: object, _dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    code, output = invoke("init", "--root", str(tmp_path))
    assert code == 0
    assert output.splitlines()[-4:] == [f"已创建 templates/{n}" for n in TEMPLATE_NAMES]
    assert sorted(p.name for p in (tmp_path / "templates").iterdir()) == sorted(TEMPLATE_NAMES)
    assert (tmp_path / "templates" / "退款申请表.xlsx").read_bytes()[:2] == b"PK"


def test_templates_command_writes_what_is_committed(tmp_path: Path) -> None:
    invoke("init", "--root", str(tmp_path))
    code, output = invoke("templates", "--root", str(tmp_path))
    assert code == 0
    assert output.splitlines() == [f"已生成 templates/{n}" for n in TEMPLATE_NAMES]
    for name in TEMPLATE_NAMES:
        fresh = (tmp_path / "templates" / name).read_bytes()
        assert _members(fresh) == _members((REPO / "templates" / name).read_bytes()), name


def test_repository_root_is_a_ready_workspace() -> None:
    # check() only looks: a missing folder fails the test without being created in the repo.
    Workspace(REPO, load_config(REPO)).check()


@pytest.mark.parametrize(
    "command",
    [pytest.param("process", id="process"), pytest.param("status", id="status"),
     pytest.param("watch", id="watch"), pytest.param("rebuild", id="rebuild")],
)  # fmt: skip
def test_commands_refuse_a_folder_that_is_not_a_workspace(tmp_path: Path, command: str) -> None:
    code, output = invoke(command, "--root", str(tmp_path))
    assert code == 1
    assert "不是完整的 refundflow 工作区,缺少文件夹:inbox" in output
    assert f"处理办法:请先运行 refundflow init --root {tmp_path.resolve()}" in output


def test_process_refuses_an_inbox_it_cannot_write_and_leaves_the_files(
    root: Path, run: Invoke
) -> None:
    # Nothing could be taken out of inbox/ after processing: refused before anything is read.
    drop(root, "a.xlsx", make_form())
    inbox = root / "inbox"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(inbox)]).returncode:
        pytest.skip("cannot make a folder immutable here (chattr +i)")
    try:
        result = run("process")
    finally:
        subprocess.run(["chattr", "-i", str(inbox)], check=True)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: 错误:无法写入文件夹 {inbox.resolve()}(没有写入权限),refundflow 无法工作\n"
        "处理办法:请让运行 refundflow 的账户可以写入 inbox 和 refundsheets 文件夹(inbox 中的文件"
        "处理后要从中取走,refundsheets 存放账本和存档),然后重新启动\n"
    )
    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == ["a.xlsx"]
    assert list((root / "outbox" / "tech").iterdir()) == []


def test_bad_configuration_is_refused_at_start(root: Path, run: Invoke) -> None:
    (root / "refundflow.toml").write_text('[limits]\nfinance_hours = "twelve"\n', "utf-8")
    result = run("process")
    assert result.exit_code == 1
    assert "limits.finance_hours 应为正整数" in result.output
    assert str(root / "refundflow.toml") in result.output


def test_now_must_be_a_minute(root: Path) -> None:
    code, output = invoke("--now", "2026-11-23", "status", "--root", str(root))
    assert code == 2
    assert "YYYY-MM-DD HH:MM" in output


def test_status_shows_who_each_form_waits_on_and_what_is_late(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    drop(root, "b.xlsx", make_form(order_no="TK20261122002", reported_at="2026-11-23 09:05"))
    run("process", now="2026-11-23 09:10")
    header = "编号             订单号         金额    环节          等待    自                期限              状态"
    assert run("status", now="2026-11-24 08:30").output.splitlines() == [
        header,
        "TKD20261123-001  TK20261122001  268.50  待技术部核实  技术部  2026-11-23 09:10  2026-11-24 09:00  正常",
        "TKD20261123-002  TK20261122002  268.50  待技术部核实  技术部  2026-11-23 09:10  2026-11-24 09:05  正常",
        "共 2 张未办结,其中逾期 0 张",
    ]  # fmt: skip
    late = run("status", now="2026-11-24 09:01").output.splitlines()
    assert late[1].endswith("逾期 1 分") and late[2].endswith("正常")
    assert late[-1] == "共 2 张未办结,其中逾期 1 张"


def test_status_lists_inbox_files_that_will_not_be_processed(root: Path, run: Invoke) -> None:
    drop(root, ".退款单.xlsx", make_form())  # hidden: ignored for ever
    drop(root, ".gitkeep", b"")  # the workspace's own: not stuck
    assert run("status").output.splitlines() == [
        "没有未办结的退款单",
        "收件箱中无法处理的文件(1 个):",
        "  .退款单.xlsx:文件名以“.”开头,会被当作隐藏文件,永远不会被处理;"
        "请把文件改名,去掉开头的“.”后再放入 inbox",
    ]
    drop(root, "a.xlsx", make_form())
    run("process")
    lines = run("status").output.splitlines()
    assert lines[-3:-1] == ["共 1 张未办结,其中逾期 0 张", "收件箱中无法处理的文件(1 个):"]


def test_process_does_not_wait_for_files_last_changed_long_ago(root: Path) -> None:
    config = root / "refundflow.toml"
    text = config.read_text(encoding="utf-8").replace(
        "\nstable_seconds = 0", "\nstable_seconds = 3600"
    )
    config.write_text(text, encoding="utf-8")
    path = drop(root, "a.xlsx", make_form())
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    # A real process with a timeout: the old rule started the stability clock when process
    # first saw the file, and would have waited the full hour.
    command = [sys.executable, "-m", "refundflow.cli", "--now", "2026-11-23 09:10"]
    result = subprocess.run(
        [*command, "process", "--root", str(root)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[已流转] a.xlsx: TKD20261123-001 → 技术部(待技术部核实)\n"


def test_form_filled_late_is_visible_in_its_history(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:25")  # reported 09:00: the 10-minute limit passed
    output = run("status", "TKD20261123-001", now="2026-11-23 09:30").output
    assert "填单超时:上报后超过 10 分钟才提交" in output


def test_unknown_form_number(root: Path, run: Invoke) -> None:
    result = run("status", "TKD19990101-001")
    assert result.exit_code == 1
    assert "没有编号为 TKD19990101-001 的退款单" in result.output


COMMANDS = sorted(cli.commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [pytest.param(c, id=c) for c in COMMANDS])
def test_every_command_has_help_in_chinese_with_examples(command: str) -> None:
    code, output = invoke(command, "--help")
    assert code == 0 and "--root" in output and "--now" in output and "--verbose" in output
    assert any("\u4e00" <= ch <= "\u9fff" for ch in output), command
    example = output.split("\n  Example:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert example and all(line.startswith(f"      refundflow {command}") for line in example)


def test_init_help_says_what_it_does_and_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["init", "--help"], prog_name="refundflow", terminal_width=80)
    assert (
        result.output
        == """\
Usage: refundflow init [OPTIONS]

  创建工作区:文件夹、refundflow.toml 和四张模板 (create a ready workspace).

  Creates inbox/, outbox/<role>/, refundsheets/, templates/ with the four
  templates, and a commented refundflow.toml; fill in its [roster] at once.
  Never overwrites a file that exists; says what it created.

  Example:

      refundflow init --root /srv/share/refunds

Options:
  --root DIRECTORY          工作区文件夹 (workspace folder)  [default: .]
  --now "YYYY-MM-DD HH:MM"  按这个时刻处理,而不是当前时钟 (act as of this moment)
  -v, --verbose             输出详细日志 (debug logging)
  --help                    Show this message and exit.
"""
    )


def test_main_help_shows_the_global_options_and_examples() -> None:
    output = CliRunner().invoke(cli, ["--help"], prog_name="refundflow", terminal_width=80).output
    assert (
        output.split("Options:")[0]
        == """\
Usage: refundflow [OPTIONS] COMMAND [ARGS]...

  refundflow: 客户退款流程 — Excel 表单的收件、校验、流转与统计。

  The customer-refund procedure on Excel files in a shared folder. Every command
  takes --root DIR (the workspace, default: the current folder); --now and -v
  may be given before or after the command.

  Example:

      refundflow init --root /srv/share/refunds
      refundflow watch --root /srv/share/refunds
      refundflow status --root /srv/share/refunds
      refundflow --now "2026-11-23 14:05" process --root /srv/share/refunds

"""
    )


@pytest.mark.parametrize("command", [pytest.param(c, id=c) for c in COMMANDS])
def test_now_is_accepted_after_every_command(tmp_path: Path, command: str) -> None:
    # A malformed --now is refused by our own check, so the option is there and parsed.
    code, output = invoke(command, "--now", "2026-11-23", "--root", str(tmp_path))
    assert code == 2
    assert '格式应为 "YYYY-MM-DD HH:MM",例如 "2026-11-23 14:05"' in output


@pytest.fixture
def root_log_level() -> Iterator[None]:
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.mark.usefixtures("root_log_level")
def test_verbose_is_accepted_after_the_command(root: Path) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    code, output = invoke("status", "-v", "--root", str(root))
    assert (code, output) == (0, "没有未办结的退款单\n")
    assert logging.getLogger().level == logging.DEBUG


def test_busy_workspace_says_since_when_to_the_minute(root: Path, run: Invoke) -> None:
    lock = WorkspaceLock(Workspace(root, load_config(root)), command="watch")
    lock.acquire()
    try:
        result = run("process")
    finally:
        lock.release()
    assert result.exit_code == 1
    holder = r"工作区正在被使用:refundflow watch \(pid \d+, [^,]+, \d{4}-\d\d-\d\d \d\d:\d\d\)\n"
    assert re.search(holder, result.output), result.output


def test_process_leaves_no_helper_processes_behind(root: Path) -> None:
    """A scheduled `process` ends with nothing of its own still running (forkserver, tracker)."""
    import subprocess
    import sys

    from conftest import make_form

    (root / "inbox" / "a.xlsx").write_bytes(make_form())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.Popen(
        [sys.executable, "-m", "refundflow.cli", "--now", "2026-11-23 09:10", "process",
         "--root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    out, _err = done.communicate(timeout=120)
    assert done.returncode == 0 and b"[\xe5\xb7\xb2\xe6\xb5\x81\xe8\xbd\xac]" in out  # [已流转]
    session = subprocess.run(
        ["ps", "-o", "pid=,cmd=", "--sid", str(done.pid)], capture_output=True, text=True
    )
    assert session.stdout.strip() == "", session.stdout


def test_on_windows_the_command_says_where_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from refundflow import entry

    monkeypatch.setattr(entry.sys, "platform", "win32")
    with pytest.raises(SystemExit) as stop:
        entry.main()
    assert str(stop.value).startswith("错误:refundflow 需要在 Linux 上运行")
    assert "处理办法:在提供共享文件夹的 Linux 文件服务器上运行 refundflow watch" in str(stop.value)
