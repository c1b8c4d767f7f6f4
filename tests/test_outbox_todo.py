"""Each outbox folder is a to-do list: exactly the forms waiting on that role (issue 8, point 1).

Staff do not move files out of their folder: they open the copy on the share, fill it in, save
it in place and copy it into inbox/. What they leave behind must not pile up.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from refundflow.archive import sha256

from conftest import Invoke, block, edit_form, make_form

FORM = "TKD20261123-001"
FILE = f"{FORM}.xlsx"
ROLES = ("cs", "tech", "cashier", "accountant", "director", "president", "admin")


def folders(root: Path) -> dict[str, list[str]]:
    """What each role sees in its folder (hidden temporaries and .gitkeep aside)."""
    return {
        role: sorted(
            p.name for p in (root / "outbox" / role).iterdir() if not p.name.startswith(".")
        )
        for role in ROLES
    }


def only(role: str, *files: str) -> dict[str, list[str]]:
    return {r: (sorted(files) if r == role else []) for r in ROLES}


def work_in_place(root: Path, role: str, name: str, values: dict[str, object]) -> bytes:
    """Open the copy in the folder, fill it, save it there, copy it into inbox/."""
    copy = root / "outbox" / role / name
    data = edit_form(copy.read_bytes(), values) if values else copy.read_bytes()
    copy.write_bytes(data)
    (root / "inbox" / name).write_bytes(data)
    return data


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.strptime(f"2026-11-23 {hhmm}", "%Y-%m-%d %H:%M")


def test_each_folder_holds_exactly_what_waits_on_its_role(root: Path, run: Invoke) -> None:
    (root / "inbox" / "申请.xlsx").write_bytes(make_form())
    assert run("process", now="2026-11-23 09:10").exit_code == 0
    assert folders(root) == only("tech", FILE)

    tech = work_in_place(root, "tech", FILE, block("tech", "王五", at("09:30")))
    assert run("process", now="2026-11-23 09:31").output.startswith(f"[已流转] {FILE}")
    assert folders(root) == only("cs", FILE)
    # 技术部 filled its copy in place: those bytes are archived before the copy went away
    superseded = root / "refundsheets" / "archive" / "superseded"
    assert [sha256(p.read_bytes()) for p in superseded.rglob("*.xlsx")] == [sha256(tech)]

    work_in_place(root, "cs", FILE, {})  # the duty lead forwards it unchanged
    assert run("process", now="2026-11-23 09:40").output.startswith(f"[已流转] {FILE}")
    assert folders(root) == only("cashier", FILE)

    for role, person, now, nxt in [
        ("cashier", "赵六", "10:00", "accountant"),
        ("accountant", "钱七", "10:30", "director"),
        ("director", "孙八", "11:00", "cs"),
    ]:
        work_in_place(root, role, FILE, block(role, person, at(now) - dt.timedelta(minutes=1)))
        result = run("process", now=f"2026-11-23 {now}")
        assert result.output.startswith(f"[已流转] {FILE}"), result.output
        assert folders(root) == only(nxt, FILE)

    work_in_place(root, "cs", FILE, {})  # customer told
    assert run("process", now="2026-11-23 11:20").output.startswith(f"[已流转] {FILE}")
    assert folders(root) == only("admin", FILE)

    followup = {
        "admin_followup": "已核实退款到账",
        "admin_by": "吴十",
        "admin_date": dt.datetime(2026, 11, 24, 9, 0),
        "admin_approval": "同意",
    }
    work_in_place(root, "admin", FILE, followup)
    assert run("process", now="2026-11-24 09:05").output == f"[已归档] {FILE}: {FORM} 已办结归档\n"
    assert folders(root) == only("admin")  # closed: no copy left in anyone's folder
    assert [p.name for p in (root / "refundsheets" / "归档").rglob("*.xlsx")] == [FILE]


def test_returned_copy_replaces_the_copy_it_answers(root: Path, run: Invoke) -> None:
    (root / "inbox" / "申请.xlsx").write_bytes(make_form())
    run("process", now="2026-11-23 09:10")
    # 技术部 forgets its 执行人: the form comes back, named by its number, and is the only copy
    unsigned = block("tech", "王五", at("09:30"))
    unsigned["tech_by"] = None
    work_in_place(root, "tech", FILE, unsigned)
    result = run("process", now="2026-11-23 09:31")
    assert result.output.startswith(f"[已退回] {FILE}: 退回技术部:1 个问题"), result.output
    assert folders(root) == only("tech", f"{FORM}-退回.xlsx")

    work_in_place(root, "tech", f"{FORM}-退回.xlsx", {"tech_by": "王五"})
    result = run("process", now="2026-11-23 09:35")
    assert result.output.startswith(f"[已流转] {FORM}-退回.xlsx"), result.output
    assert folders(root) == only("cs", FILE)


def test_returned_new_form_fixed_in_place_leaves_no_copy_behind(root: Path, run: Invoke) -> None:
    (root / "inbox" / "申请.xlsx").write_bytes(make_form(mobile="1380013800"))  # 10 digits
    result = run("process", now="2026-11-23 09:10")
    assert result.output.startswith("[已退回] 申请.xlsx: 退回客服部"), result.output
    assert folders(root) == only("cs", "申请-退回.xlsx")
    work_in_place(root, "cs", "申请-退回.xlsx", {"mobile": "13800138000"})
    result = run("process", now="2026-11-23 09:12")
    assert result.output.startswith("[已流转] 申请-退回.xlsx"), result.output
    assert folders(root) == only("tech", FILE)


def test_stale_copy_refusal_names_the_current_file(root: Path, run: Invoke) -> None:
    (root / "inbox" / "申请.xlsx").write_bytes(make_form())
    run("process", now="2026-11-23 09:10")
    first = (root / "outbox" / "tech" / FILE).read_bytes()
    work_in_place(root, "tech", FILE, block("tech", "王五", at("09:30")))
    run("process", now="2026-11-23 09:31")
    (root / "inbox" / "旧的.xlsx").write_bytes(edit_form(first, {"tech_opinion": "再看看"}))
    assert run("process", now="2026-11-23 09:40").output.startswith("[已拒收] 旧的.xlsx")
    reply = root / "outbox" / "rejected" / "旧的.xlsx.退回原因.txt"
    text = reply.read_text(encoding="utf-8-sig")
    assert "处理办法:请使用最新的文件(outbox/cs/TKD20261123-001.xlsx)" in text, text


def test_copy_open_in_excel_is_not_taken_from_under_its_user(root: Path, run: Invoke) -> None:
    (root / "inbox" / "申请.xlsx").write_bytes(make_form())
    run("process", now="2026-11-23 09:10")
    work_in_place(root, "tech", FILE, block("tech", "王五", at("09:30")))
    owner = root / "outbox" / "tech" / f"~${FILE}"
    owner.write_bytes(b"\x05wang-wu")  # 王五 still has the copy open in Excel
    assert run("process", now="2026-11-23 09:31").output.startswith(f"[已流转] {FILE}")
    assert (root / "outbox" / "tech" / FILE).exists()
    assert folders(root)["cs"] == [FILE]
