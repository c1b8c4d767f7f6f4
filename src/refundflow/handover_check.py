"""The rules of a filled handover sheet (交接单注意事项, spec §4), over the values of a sheet read
back from a file (:func:`handover_intake.read_handover`). A sheet dropped in ``inbox/`` is
checked by them on its way (:mod:`handover_intake`): accepted, it goes to the next shift;
otherwise it comes back with each problem named. Each problem is a Chinese sentence naming the
item by its label on the sheet, what is wrong and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from . import layout
from .config import Config
from .ledger import Ledger

NOTHING = "无"
# Items the procedure requires (rule a); the signatures are checked by people on paper.
REQUIRED = tuple(n for n in layout.HANDOVER_NAMES if n != "signatures")
# Items written as numbered lists (rules b, c, d).
LISTS = ("work_done", "follow_ups", "fin_processed", "fin_submitted", "fin_returned")
_NUMBERED = re.compile(r"^\s*(\d+)\s*[.、.)]")
_FORM_NO = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{1,10}?\d{8}-\d{3,}(?!\d)")
_MOBILE = re.compile(r"(?<!\d)1\d{10}(?!\d)")
_AMOUNT = re.compile(r"金额\s*[::]?\s*(\d+(?:\.\d+)?)")
_BANK = re.compile(r"银行\s*[::]?\s*([^,,;;::((\s]+)")
Report = Callable[[str, str, str], None]  # (item's defined name, message, hint)


@dataclass(frozen=True)
class HandoverProblem:
    item: str  # the item's label on the sheet
    message: str  # 错误: what is wrong
    hint: str  # 处理办法: how to fix it
    name: str = ""  # the item's defined name on the sheet (where the returned copy marks it)

    def __str__(self) -> str:
        return f"{self.item}:错误:{self.message} 处理办法:{self.hint}"


def _entries(text: str) -> list[str]:
    """The numbered entries of a list item; a line without a number continues the last."""
    entries: list[str] = []
    for line in text.splitlines():
        if _NUMBERED.match(line) or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


def _people(text: str) -> list[str]:
    return [p for p in re.split(r"[,,、;;\s]+", text) if p]


def check_handover(
    values: dict[str, str], *, ledger: Ledger, config: Config
) -> list[HandoverProblem]:
    """Every rule the sheet breaks; empty when it may be handed over."""
    labels = layout.HANDOVER_LABELS
    problems: list[HandoverProblem] = []

    def problem(name: str, message: str, hint: str) -> None:
        problems.append(HandoverProblem(labels[name], message, hint, name))

    for name in REQUIRED:
        if not values.get(name, "").strip():
            # A person signs these two: "无" is no answer there, a name is.
            hint = (
                f"填写{labels[name]}的姓名(客服部人员)"
                if name in ("handed_by", "taken_by")
                else f"每项必填,没有的写“{NOTHING}”"
            )
            problem(name, "未填写", hint)
    shift = values.get("shift", "").strip()
    shift_names = [s.name for s in config.shifts]
    if shift and shift not in shift_names:
        problem(
            "shift",
            f"“{shift}”不是一个班次,必须且只能选一个班次",
            f"从下拉列表中选择{'或'.join(shift_names)}之一",
        )
    for name in LISTS:
        text = values.get(name, "").strip()
        if not text or text == NOTHING:
            continue
        numbers = []
        for entry in _entries(text):
            match = _NUMBERED.match(entry)
            numbers.append(int(match.group(1)) if match else None)
        if numbers != list(range(1, len(numbers) + 1)):
            problem(name, "没有逐项按 1、2、3……编号", "每件事单独一行,行首写 1. 2. 3. ……")
            continue
        for entry in _entries(text):
            _check_forms(name, entry, ledger, problem)
    handed, taken = values.get("handed_by", ""), values.get("taken_by", "")
    if handed and taken and set(_people(handed)) & set(_people(taken)):
        problem("taken_by", "接交人与交接人是同一人", "请由接班的另一位客服填写接交人")
    roster = config.roster.get("cs") or ()
    for name in ("handed_by", "taken_by"):
        if not roster or not values.get(name):
            continue
        unknown = [p for p in _people(values[name]) if p not in roster]
        if unknown:
            problem(
                name,
                f"{'、'.join(unknown)} 不在客服部名单中",
                f"填写客服部人员的姓名(名单:{'、'.join(roster)})",
            )
    return problems


def _check_forms(name: str, entry: str, ledger: Ledger, report: Report) -> None:
    """Every form number named exists; the mobile, amount and bank beside it match."""
    for form_no in _FORM_NO.findall(entry):
        row = ledger.form(form_no)
        if row is None:
            report(name, f"退款单 {form_no} 不存在", "核对文件编号,照退款单上的“编号”抄写")
            continue
        diffs = []
        mobile = row.snapshot.get("mobile", "")
        mobiles = _MOBILE.findall(entry)
        if mobile and mobiles and mobile not in mobiles:
            diffs.append(f"手机号写的是 {mobiles[0]},退款单上是 {mobile}")
        amounts = _AMOUNT.findall(entry)
        if row.amount and amounts and not _same_amount(amounts[0], row.amount):
            diffs.append(f"金额写的是 {amounts[0]},退款单上是 {row.amount}")
        bank = row.snapshot.get("bank", "")
        match = _BANK.search(entry)
        if bank and match and match.group(1) != bank:
            diffs.append(f"银行写的是 {match.group(1)},退款单上是 {bank}")
        if diffs:
            report(name, f"退款单 {form_no}:" + ";".join(diffs), "照退款单改正")


def _same_amount(written: str, recorded: str) -> bool:
    try:
        return Decimal(written) == Decimal(recorded)
    except InvalidOperation:
        return False
