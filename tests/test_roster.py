"""Who may sign which block: a missing roster is said loudly, or refused when the site wants.

The ``root`` workspace has a roster for every role (conftest.ROSTER); these tests take roles'
lists away with ``set_roster`` to see what a new workspace, fresh from ``init``, does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import python_calamine

from refundflow.config import UNCHECKED_SIGNER

from conftest import ROSTER, Invoke, block, drop, edit_form, make_form, set_roster, take

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
ALL_OPEN = (
    "客服部(cs)、技术部(tech)、财务部出纳(cashier)、财务部会计(accountant)、"
    "财务总监(director)、总裁(president)、行政部(admin)"
)
ANYONE = f"任何人都能签署这些环节,签名人不会被核对;流转记录中会注明“{UNCHECKED_SIGNER}”。"
REFUSED = "这些环节签名的退款单都会被退回(require_roster = true)。"


def warning(root: Path, roles: str, effect: str, example: str) -> str:
    """The two lines every command prints on stderr before anything else."""
    return (
        f"警告:未配置名单的角色:{roles}。{effect}\n"
        f"处理办法:在 {root.resolve() / 'refundflow.toml'} 的 [roster] 中填写这些角色的人员名单"
        f'(例如 {example} = ["姓名1", "姓名2"]),然后重新启动 refundflow。\n'
    )


def sheet(path: Path, name: str) -> list[list[object]]:
    """A sheet's rows; for 退回原因 the table under its title row."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    rows = book.get_sheet_by_name(name).to_python()
    if name == "退回原因":
        assert str(rows[0][0]).endswith(")") and "退回原因(退回时间:" in str(rows[0][0])
        return rows[1:]
    return rows


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.strptime(f"2026-11-23 {hhmm}", "%Y-%m-%d %H:%M")


def to_cashier(root: Path, run: Invoke) -> bytes:
    """A new form, verified by 王五 of 技术部 and forwarded: the cashier's copy."""
    drop(root, "申请.xlsx", make_form())
    assert run("process", now="2026-11-23 09:10").exit_code == 0
    drop(root, FILE, edit_form(take(root, "tech", FILE), block("tech", "王五", at("09:20"))))
    assert run("process", now="2026-11-23 09:30").exit_code == 0
    drop(root, FILE, take(root, "cs", FILE))  # the duty lead forwards it
    result = run("process", now="2026-11-23 09:40")
    assert result.stdout == f"[已流转] {FILE}: {FORM} → 财务部出纳(待出纳初核)\n", result.output
    return take(root, "cashier", FILE)


# ------------------------------------------------------------- a workspace without a roster


def test_process_without_roster_warns_first_naming_every_open_role(root: Path, run: Invoke) -> None:
    set_roster(root, {})  # what `refundflow init` leaves: every example commented out
    drop(root, "申请.xlsx", make_form())
    result = run("process")
    assert result.exit_code == 0, result.output
    assert result.output == (
        warning(root, ALL_OPEN, ANYONE, "cs")
        + f"[已流转] 申请.xlsx: {FORM} → 技术部(待技术部核实)\n"
    )
    assert result.stderr == warning(root, ALL_OPEN, ANYONE, "cs"), "on stderr, not stdout"


def test_process_with_a_full_roster_says_nothing_about_it(root: Path, run: Invoke) -> None:
    drop(root, "申请.xlsx", make_form())
    result = run("process")
    assert (result.exit_code, result.output) == (
        0,
        f"[已流转] 申请.xlsx: {FORM} → 技术部(待技术部核实)\n",
    )


def test_status_without_roster_warns_at_the_top(root: Path, run: Invoke) -> None:
    set_roster(root, {role: people for role, people in ROSTER.items() if role != "cashier"})
    drop(root, "申请.xlsx", make_form())
    run("process")
    only_cashier = warning(root, "财务部出纳(cashier)", ANYONE, "cashier")

    result = run("status", now="2026-11-23 09:20")
    assert result.exit_code == 0, result.output
    header = "编号             订单号         金额    环节          等待    自                期限              状态"
    assert result.output.splitlines() == [
        *only_cashier.splitlines(),
        header,
        f"{FORM}  TK20261122001  268.50  待技术部核实  技术部  2026-11-23 09:10  2026-11-24 09:00  正常",
        "共 1 张未办结,其中逾期 0 张",
    ]  # fmt: skip

    one = run("status", FORM, now="2026-11-23 09:20")
    assert one.output.startswith(only_cashier + f"编号 {FORM}"), one.output
    as_json = run("status", "--json", now="2026-11-23 09:20")
    assert as_json.stderr == only_cashier
    assert json.loads(as_json.stdout)[0]["form_no"] == FORM, "stdout stays pure JSON"


def test_steps_signed_without_roster_are_marked_in_history(root: Path, run: Invoke) -> None:
    # 技术部 has a list, 客服部 and 出纳 have none: 陈七 of 技术部 signs the 出纳 block.
    set_roster(root, {"tech": ["王五", "陈七"]})
    cashier = block("cashier", "陈七", at("09:50"))
    drop(root, FILE, edit_form(to_cashier(root, run), cashier))
    result = run("process", now="2026-11-23 10:00")
    assert result.stdout == f"[已流转] {FILE}: {FORM} → 财务部会计(待会计复核)\n"

    history = sheet(root / "outbox" / "accountant" / FILE, "流转记录")
    assert history[0][7].startswith("副本凭证:")  # the copy token ends the header row
    assert [row[:7] for row in history] == [
        ["时间", "环节", "从", "到", "经办人", "文件", "备注"],
        ["2026-11-23 09:10", "待技术部核实", "客服部", "技术部", "李四", "申请.xlsx",
         UNCHECKED_SIGNER],
        ["2026-11-23 09:30", "技术部已核实,待值班负责人提交财务", "技术部", "客服部", "王五",
         FILE, ""],
        ["2026-11-23 09:40", "待出纳初核", "客服部", "财务部出纳", "", FILE, ""],
        ["2026-11-23 10:00", "待会计复核", "财务部出纳", "财务部会计", "陈七", FILE,
         UNCHECKED_SIGNER],
    ]  # fmt: skip
    shown = run("status", FORM, now="2026-11-23 10:01").stdout
    assert shown.count(UNCHECKED_SIGNER) == 2, shown


def test_unchecked_step_stays_marked_after_the_roster_is_filled_in(root: Path, run: Invoke) -> None:
    set_roster(root, {})
    drop(root, "申请.xlsx", make_form())
    run("process")
    set_roster(root, ROSTER)  # the site fills it in while the form is at 技术部
    drop(root, FILE, edit_form(take(root, "tech", FILE), block("tech", "王五", at("09:20"))))
    result = run("process", now="2026-11-23 09:30")
    assert result.output == f"[已流转] {FILE}: {FORM} → 客服部(技术部已核实,待值班负责人提交财务)\n"
    notes = [row[6] for row in sheet(root / "outbox" / "cs" / FILE, "流转记录")[1:]]
    assert notes == [UNCHECKED_SIGNER, ""], "the first step was signed without a check"


def test_history_notes_join_what_the_step_recorded(root: Path, run: Invoke) -> None:
    set_roster(root, {})
    drop(root, "申请.xlsx", make_form())
    run("process", now="2026-11-23 09:25")  # reported 09:00: past the 10-minute limit
    history = sheet(root / "outbox" / "tech" / FILE, "流转记录")
    assert history[1][6] == f"填单超时:上报后超过 10 分钟才提交;{UNCHECKED_SIGNER}"


# ----------------------------------------------------------------- refusing a missing roster


def test_with_require_roster_a_form_signed_by_anyone_comes_back_naming_the_roster(
    root: Path, run: Invoke
) -> None:
    set_roster(
        root,
        {role: people for role, people in ROSTER.items() if role != "cashier"},
        require_roster=True,
    )
    signed = edit_form(to_cashier(root, run), block("cashier", "赵六", at("09:50")))
    drop(root, FILE, signed)
    result = run("process", now="2026-11-23 10:00")
    assert result.output == (
        warning(root, "财务部出纳(cashier)", REFUSED, "cashier")
        + f"[已退回] {FILE}: 退回财务部出纳:1 个问题\n"
    )
    back = root / "outbox" / "cashier" / f"{FORM}-退回.xlsx"
    assert sheet(back, "退回原因") == [
        ["序号", "项目", "单元格", "问题", "如何修改"],
        [
            "1",
            "出纳处理意见·执行人",
            "B16",
            "“出纳处理意见·执行人”(B16)“赵六”无法核对:refundflow.toml 的 [roster] 中"
            "没有财务部出纳的名单(cashier 一项),而本工作区要求先核对名单(require_roster = true)。",
            "请管理员在 refundflow.toml 的 [roster] 中填写该角色的名单并重启 refundflow,"
            "然后把本表重新放入 inbox",
        ],
    ]

    set_roster(root, ROSTER, require_roster=True)  # the administrator fills it in
    drop(root, back.name, back.read_bytes())
    result = run("process", now="2026-11-23 10:10")
    assert result.output == f"[已流转] {back.name}: {FORM} → 财务部会计(待会计复核)\n"


def test_with_require_roster_and_no_roster_a_new_form_comes_back_to_customer_service(
    root: Path, run: Invoke
) -> None:
    set_roster(root, {}, require_roster=True)
    drop(root, "申请.xlsx", make_form())
    result = run("process")
    assert result.stdout == "[已退回] 申请.xlsx: 退回客服部:2 个问题\n"
    rows = sheet(root / "outbox" / "cs" / "申请-退回.xlsx", "退回原因")
    assert [(row[1], row[2]) for row in rows[1:]] == [
        ("提交人", "B7"),
        ("客服部处理意见·执行人", "B10"),
    ]
    for row in rows[1:]:
        assert "没有客服部的名单(cs 一项)" in str(row[3])
    assert not list((root / "outbox" / "tech").iterdir())


# ------------------------------------------------------------ one role's people, another's block


@pytest.mark.parametrize(
    ("person", "their_role"),
    [
        pytest.param("陈七", "技术部", id="technical-staff"),
        pytest.param("钱七", "财务部会计", id="accountant"),
        pytest.param("孙八", "财务总监", id="finance-director"),
    ],
)
def test_cashier_block_signed_by_someone_of_another_role_comes_back(
    root: Path, run: Invoke, person: str, their_role: str
) -> None:
    set_roster(root, {**ROSTER, "tech": ["王五", "陈七"]})
    drop(root, FILE, edit_form(to_cashier(root, run), block("cashier", person, at("09:50"))))
    result = run("process", now="2026-11-23 10:00")
    assert result.output == f"[已退回] {FILE}: 退回财务部出纳:1 个问题\n", their_role
    rows = sheet(root / "outbox" / "cashier" / f"{FORM}-退回.xlsx", "退回原因")
    assert rows[1][1:4] == [
        "出纳处理意见·执行人",
        "B16",
        f"“出纳处理意见·执行人”(B16)“{person}”不是财务部出纳的人员(名单:赵六),"
        "请由财务部出纳的人员填写并签名。",
    ]
    status = json.loads(run("status", FORM, "--json", now="2026-11-23 10:01").stdout)
    assert status["step"] == "at_cashier", "the form did not move on"
