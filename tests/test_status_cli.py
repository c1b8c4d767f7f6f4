"""`refundflow status` as staff use it: filters, how late, notes, plain Chinese, any case."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from conftest import Invoke, block, drop, edit_form, make_form, take

HEADER = "编号             订单号         金额    环节          等待    自                期限              状态"  # fmt: skip
AT_TECH = "TKD20261123-001  TK20261122001  268.50  待技术部核实  技术部  2026-11-23 09:10  2026-11-24 09:00"  # fmt: skip


def close_by_refusal(root: Path, run: Invoke, form: str) -> None:
    """Tech refuses, customer service tells the customer, administration closes: the
    shortest way to a closed form."""
    refusal = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20), approval="不同意")
    drop(root, f"{form}.xlsx", edit_form(take(root, "tech", f"{form}.xlsx"), refusal))
    run("process", now="2026-11-23 09:30")
    drop(root, f"{form}.xlsx", take(root, "cs", f"{form}.xlsx"))
    run("process", now="2026-11-23 09:45")
    admin = block("admin", "吴十", dt.datetime(2026, 11, 23, 10, 0))
    admin["admin_followup"] = admin.pop("admin_opinion")
    drop(root, f"{form}.xlsx", edit_form(take(root, "admin", f"{form}.xlsx"), admin))
    run("process", now="2026-11-23 10:05")


def test_late_form_says_how_late_and_its_notes(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:25")  # reported 09:00: filled after the 10 minutes
    assert run("status", now="2026-11-24 12:20").output.splitlines() == [
        HEADER,
        "TKD20261123-001  TK20261122001  268.50  待技术部核实  技术部  2026-11-23 09:25  2026-11-24 09:00  逾期 3 小时 20 分",
        "共 1 张未办结,其中逾期 1 张",
        "超时记录:",
        "  TKD20261123-001 填单超时:上报后10分钟内填好退款单,期限 2026-11-23 09:10,当时等待客服部(新建退款单)",
    ]  # fmt: skip
    history = run("status", "TKD20261123-001", now="2026-11-26 09:01").output.splitlines()
    assert history[1] == (
        "当前:待技术部核实,等待技术部,期限 2026-11-24 09:00(上报后24小时内全额退款)  逾期 2 天 1 分"
    )


def test_notes_other_than_lateness_follow_the_table(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form(form_no="KF-0001"))  # a number of the filer's own
    run("process", now="2026-11-23 09:10")
    lines = run("status", now="2026-11-23 09:20").output.splitlines()
    assert lines[:3] == [HEADER, f"{AT_TECH}  正常", "共 1 张未办结,其中逾期 0 张"]
    assert lines[3] == "备注:"
    # The wording is the processor's (the 流转记录 row says the same): here, that it is shown.
    assert lines[4].startswith("  TKD20261123-001 ") and "“KF-0001”" in lines[4]
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--role", "tech"], ["001"], id="role-key"),
        pytest.param(["--role", "客服部"], ["002"], id="role-name"),
        pytest.param(["--person", "王五"], ["001", "002"], id="person-signed-or-must-act"),
        pytest.param(["--person", "吴十"], [], id="person-on-closed-only"),
        pytest.param(["--all"], ["001", "002", "003"], id="all"),
        pytest.param(["--all", "--person", "吴十"], ["003"], id="all-person"),
        pytest.param(["--all", "--role", "tech"], ["001"], id="all-role"),
    ],
)
def test_status_filters_by_role_person_and_closed(
    root: Path, run: Invoke, args: list[str], expected: list[str]
) -> None:
    for name, order in (("a", "001"), ("b", "002"), ("c", "003")):
        drop(root, f"{name}.xlsx", make_form(order_no=f"TK20261122{order}"))
    run("process", now="2026-11-23 09:10")
    close_by_refusal(root, run, "TKD20261123-003")
    tech = block("tech", "王五", dt.datetime(2026, 11, 23, 10, 20))
    drop(root, "b.xlsx", edit_form(take(root, "tech", "TKD20261123-002.xlsx"), tech))
    run("process", now="2026-11-23 10:30")
    lines = run("status", *args, now="2026-11-23 10:40").output.splitlines()
    listed = [line[12:15] for line in lines if line.startswith("TKD20261123-")]
    assert listed == expected
    if not expected:
        assert lines == ["没有符合条件的退款单"]


def test_status_all_shows_closed_forms_as_closed(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    close_by_refusal(root, run, "TKD20261123-001")
    assert run("status", "--all", now="2026-11-23 10:40").output.splitlines() == [
        "编号             订单号         金额    环节    等待  自                期限  状态",
        "TKD20261123-001  TK20261122001  268.50  已归档        2026-11-23 10:05  -     已办结",
        "共 1 张,其中未办结 0 张(逾期 0 张),已办结 1 张",
    ]  # fmt: skip
    assert run("status", now="2026-11-23 10:40").output == "没有未办结的退款单\n"


def test_status_month_lists_the_forms_submitted_that_month(root: Path, run: Invoke) -> None:
    october = {
        "order_no": "TK20261030001",
        "purchase_time": dt.datetime(2026, 10, 30, 20, 15),
        "reported_at": dt.datetime(2026, 10, 31, 9, 0),
        "submitted_at": dt.datetime(2026, 10, 31, 9, 5),
        "cs_date": dt.datetime(2026, 10, 31, 9, 6),
    }
    drop(root, "october.xlsx", make_form(**october))
    run("process", now="2026-10-31 09:10")
    drop(root, "november.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    lines = run("status", "--month", "2026-10", now="2026-11-23 09:20").output.splitlines()
    assert [line[:15] for line in lines if line.startswith("TKD")] == ["TKD20261031-001"]
    lines = run("status", "--month", "2026-11", now="2026-11-23 09:20").output.splitlines()
    assert lines[-3:] == [HEADER, f"{AT_TECH}  正常", "共 1 张未办结,其中逾期 0 张"]
    bad = run("status", "--month", "2026-13")
    assert bad.exit_code == 2 and '"2026-13" 不是月份,格式应为 YYYY-MM' in bad.output


def test_unknown_role_names_the_roles_there_are(root: Path, run: Invoke) -> None:
    result = run("status", "--role", "财务部")
    assert result.exit_code == 2
    assert '没有 "财务部" 这个角色,可用:cs(客服部)、tech(技术部)' in result.output


def test_form_number_is_found_in_any_letter_case(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    assert run("status", "tkd20261123-001", now="2026-11-23 09:20").output.splitlines() == [
        "编号 TKD20261123-001  订单号 TK20261122001  金额 268.50",
        "当前:待技术部核实,等待技术部,期限 2026-11-24 09:00(上报后24小时内全额退款)",
        "时间              结果  环节          去向    经办人  文件    说明",
        "2026-11-23 09:10  通过  待技术部核实  技术部  李四    a.xlsx",
    ]  # fmt: skip
    as_json = json.loads(run("status", "Tkd20261123-001", "--json").output)
    assert as_json["form_no"] == "TKD20261123-001"


def test_refused_stale_copy_reads_without_its_internal_code(root: Path, run: Invoke) -> None:
    drop(root, "a.xlsx", make_form())
    run("process", now="2026-11-23 09:10")
    first = (root / "outbox" / "tech" / "TKD20261123-001.xlsx").read_bytes()
    tech = block("tech", "王五", dt.datetime(2026, 11, 23, 9, 20))
    drop(root, "t.xlsx", edit_form(take(root, "tech", "TKD20261123-001.xlsx"), tech))
    run("process", now="2026-11-23 09:30")
    drop(root, "old.xlsx", first)
    run("process", now="2026-11-23 09:31")
    lines = run("status", "TKD20261123-001", now="2026-11-23 09:40").output.splitlines()
    assert lines[-1] == (
        "2026-11-23 09:31  拒收                                                     old.xlsx"
        "  这是退款单 TKD20261123-001 的旧副本;该单已流转到“技术部已核实,待值班负责人提交财务”。"
    )
    history = json.loads(run("status", "TKD20261123-001", "--json").output)["history"]
    assert history[-1]["detail"].startswith("stale_copy: 这是退款单")  # scripts keep the code


def test_returned_new_form_waits_on_customer_service_until_fixed(root: Path, run: Invoke) -> None:
    drop(root, "退款单.xlsx", make_form(amount="abc"))
    run("process", now="2026-11-23 09:10")
    waiting = [
        "没有未办结的退款单",
        "退回客服部修改、尚未编号的新退款单(1 张):",
        "  outbox/cs/退款单-退回.xlsx  2026-11-23 09:10 退回,等待客服部按“退回原因”修改后重新放入 inbox/",
    ]  # fmt: skip
    assert run("status", now="2026-11-23 09:15").output.splitlines() == waiting
    assert run("status", "--role", "cs").output.splitlines()[1:] == waiting[1:]
    assert run("status", "--person", "张三").output.splitlines()[1:] == waiting[1:]
    assert "尚未编号" not in run("status", "--role", "tech").output
    fixed = edit_form(take(root, "cs", "退款单-退回.xlsx"), {"amount": 268.5})
    drop(root, "退款单.xlsx", fixed)
    run("process", now="2026-11-23 09:20")
    assert "尚未编号" not in run("status", now="2026-11-23 09:25").output


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("--now", "2026-11-24 09:01", "status"), id="before-the-command"),
        pytest.param(("status", "--now", "2026-11-24 09:01"), id="after-the-command"),
    ],
)
def test_now_works_before_or_after_the_command(root: Path, order: tuple[str, ...]) -> None:
    from click.testing import CliRunner

    from refundflow.cli import cli

    drop(root, "a.xlsx", make_form())
    CliRunner().invoke(cli, ["--now", "2026-11-23 09:10", "process", "--root", str(root)])
    result = CliRunner().invoke(cli, [*order, "--root", str(root)])
    assert result.output.splitlines() == [
        HEADER,
        f"{AT_TECH}  逾期 1 分",
        "共 1 张未办结,其中逾期 1 张",
    ]
