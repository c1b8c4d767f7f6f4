"""`refundflow demo`: a month played through the real pipeline in a new workspace.

The month is played once per module (about 10-20 s for ten forms); the tests look at what it
left. LibreOffice is kept off the PATH there, so the summary is the same on every machine;
the office test plays it with LibreOffice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result

from refundflow.cli import cli
from refundflow.fillin import fill_in
from refundflow.forms import read_form

from conftest import REFUND_TEMPLATE
from formfill import NEW_FORM, fill_form
from office import needs_soffice, soffice_convert

BOOK_SHEETS = ["汇总", "客服退单统计表", "财务退单统计表", "核对", "超时", "明细", "人员"]
OPEN_FIRST = [
    ("outbox/状态看板.xlsx", "状态看板:月底每张未办结的单在哪个环节、等谁、期限"),
    ("outbox/admin/月度退款报表-2026-11.xlsx", "行政部月度退款报表:汇总、核对、超时、明细、人员"),
    ("outbox/cs/客服退单统计表-2026-11.xlsx", "客服退单统计表"),
    ("outbox/cashier/财务退单统计表-2026-11.xlsx", "财务退单统计表"),
    ("outbox/cs/客服部值班交接单-20261130-中班.xlsx", "最后一班的值班交接单"),
    ("refundsheets/归档/2026-11/TKD20261102-001.xlsx", "一张办结归档的退款单,看它的“流转记录”"),
]


def summary(root: Path, *, office: bool = False) -> str:
    lines = [
        f"演示工作区:{root}",
        "演示完成:2026-11 共 10 张退款单,真实流程处理了 77 个放入 inbox/ 的文件",
        "逐个文件的处理结果:已流转 65、已归档 10、已退回 2",
        "已办结 10 张(已退款 8、技术部不同意 1、财务退回 1)",
        "月底仍在流转 0 张",
        "退回修改:手机号填错退回后改正 1 张,重复订单号退回 1 份(客服已删除)",
        "超时 4 次:填单超时 1、提交财务超时 1、财务处理超时 1、退款超时 1",
        *(["用 LibreOffice 保存后放入的退款单 1 张,照常流转"] if office else []),
        "先打开这些文件(在演示工作区中):",
        *(f"  {path}:{what}" for path, what in OPEN_FIRST),
        f"接着可以运行:refundflow status --root {root}",
    ]
    return "\n".join(lines) + "\n"


def play(root: Path, path: str | None = None, *args: str) -> Result:
    """The demo month of November 2026 with ten forms; ``path``: PATH (None: this one's)."""
    command = ["demo", "--root", str(root), "--month", "2026-11", "--forms", "10", *args]
    env = None if path is None else {"PATH": path}
    return CliRunner().invoke(cli, command, env=env)


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    root = tmp_path_factory.mktemp("demo") / "demo"
    no_office = tmp_path_factory.mktemp("no-office")  # a PATH without soffice
    return root, play(root, str(no_office))


def test_a_value_typed_by_the_demo_reads_back_as_when_typed_in_excel() -> None:
    by_demo = read_form(fill_in(REFUND_TEMPLATE.read_bytes(), NEW_FORM))
    by_openpyxl = read_form(fill_form(REFUND_TEMPLATE, NEW_FORM))
    assert by_demo.problems == by_openpyxl.problems == ()
    assert by_demo.form == by_openpyxl.form


def test_demo_month_ends_with_what_happened_and_the_files_to_open(
    played: tuple[Path, Result],
) -> None:
    root, result = played
    assert result.exit_code == 0, result.output
    assert result.stdout == summary(root)  # not a terminal: no progress bar
    for path, _ in OPEN_FIRST:
        assert (root / path).is_file(), path


def test_demo_monthly_workbook_has_every_sheet_and_each_refund(
    played: tuple[Path, Result],
) -> None:
    root, _ = played
    book = openpyxl.load_workbook(root / "outbox" / "admin" / "月度退款报表-2026-11.xlsx")
    assert book.sheetnames == BOOK_SHEETS
    details = book["明细"]
    assert details.max_row == 1 + 10  # header and one row a refund


def test_demo_workspace_is_a_real_one_with_the_sample_roster(
    played: tuple[Path, Result],
) -> None:
    root, _ = played
    config = (root / "refundflow.toml").read_text(encoding="utf-8")
    assert "require_roster = true" in config
    assert 'tech = ["王五", "周强", "吴敏"]' in config
    result = CliRunner().invoke(
        cli, ["--now", "2026-12-01 09:00", "status", "--root", str(root), "--all"]
    )
    assert result.exit_code == 0, result.output
    assert "共 10 张,其中未办结 0 张(逾期 0 张),已办结 10 张\n" in result.stdout
    assert sorted(p.name for p in (root / "inbox").iterdir()) == []


def test_second_demo_in_the_same_folder_starts_afresh_and_keeps_other_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "demo"
    assert play(root, str(tmp_path)).exit_code == 0
    (root / "notes.txt").write_text("my notes", encoding="utf-8")
    (root / "outbox" / "cs" / "草稿.xlsx").write_bytes(b"left by the first demo's month")
    again = play(root, str(tmp_path))
    assert again.exit_code == 0, again.output
    assert again.stdout == summary(root)
    assert (root / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert not (root / "outbox" / "cs" / "草稿.xlsx").exists()


def test_demo_refuses_a_folder_that_is_not_empty_and_touches_nothing(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "账目.xlsx").write_bytes(b"someone's own file")
    result = play(root, str(tmp_path))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: 错误:{root} 不是空文件夹,也不是以前生成的演示工作区,演示不会改动其中的文件\n"
        "处理办法:请用 --root 指定一个新的或空的文件夹,例如 refundflow demo --root demo2\n"
    )
    assert [p.name for p in root.iterdir()] == ["账目.xlsx"]


def test_demo_keeps_a_file_dropped_in_a_previous_demos_inbox(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    assert play(root, str(tmp_path)).exit_code == 0
    (root / "inbox" / "试一试.xlsx").write_bytes(b"a person's try")
    result = play(root, str(tmp_path))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: 错误:以前的演示工作区 {root} 的 inbox/ 中还有放入的文件:试一试.xlsx,"
        "重新演示会清空工作区\n"
        "处理办法:请先把这些文件移走(或用 refundflow process 处理掉),"
        "或用 --root 指定另一个文件夹\n"
    )
    assert (root / "inbox" / "试一试.xlsx").read_bytes() == b"a person's try"


def test_demo_leaves_no_helper_processes_behind(tmp_path: Path) -> None:
    """Like `process`: the parser's forkserver and resource tracker end with the command."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "PATH": str(tmp_path)}  # no soffice
    done = subprocess.Popen(
        [sys.executable, "-m", "refundflow.cli", "demo", "--root", str(tmp_path / "demo"),
         "--month", "2026-11", "--forms", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err.decode()
    assert out.decode() == summary(tmp_path / "demo")
    session = subprocess.run(
        ["ps", "-o", "pid=,cmd=", "--sid", str(done.pid)], capture_output=True, text=True
    )
    assert session.stdout.strip() == "", session.stdout


@pytest.mark.slow
@pytest.mark.office
@needs_soffice
# openpyxl cannot read the charts LibreOffice writes back (it says so); LibreOffice read them.
@pytest.mark.filterwarnings("ignore:Unable to read chart")
def test_demo_with_libreoffice_and_its_workbook_opens_in_libreoffice(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = play(root)  # soffice on the PATH: one new form is saved with it
    assert result.exit_code == 0, result.output
    assert result.stdout == summary(root, office=True)
    book = root / "outbox" / "admin" / "月度退款报表-2026-11.xlsx"
    resaved = openpyxl.load_workbook(soffice_convert(book, "xlsx", tmp_path / "lo"))
    assert resaved.sheetnames == BOOK_SHEETS
    rows = resaved["明细"].iter_rows(values_only=True)
    assert sum(any(v is not None for v in row) for row in rows) == 1 + 10
