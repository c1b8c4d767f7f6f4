"""Every text a person reads about a dropped file, in one place (Chinese, full-width punctuation).

The reply file beside a rejected file, the 退回原因 rows and how to fix each problem, the
流转记录 rows and their notes, and the messages the processor gives for a file it refuses.
Stable reason codes (:class:`~refundflow.errors.Reason`) stay apart from these texts.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .archive import safe_name
from .config import ROLE_NAMES
from .errors import Reason
from .forms import FieldProblem, RefundForm
from .inboxfile import EntryKind
from .layout import FIELDS_BY_NAME, REFUND_TEMPLATE_FILE
from .routing import STEP_NAMES, Step

FINANCE_RETURNED_CHOICES = (
    "客服部可二选一:款项到账等问题解决后,清空财务各栏、由值班负责人重新审批,"
    "放回 inbox 重新提交财务;或不作修改放回 inbox,反馈用户后转行政部。"
)
MARK_RESTORED = "缺少模板版本标记,按当前模板读取,已补回"
HISTORY_HEADER = ("时间", "环节", "从", "到", "经办人", "文件", "备注")
RETURN_HEADER = ("序号", "项目", "单元格", "问题", "如何修改")
REPLY_SUFFIX = ".退回原因.txt"
DEFAULT_HINT = f"请用 templates/{REFUND_TEMPLATE_FILE} 填写后重新放入 inbox 文件夹。"


ENTRY_TEXTS: dict[EntryKind, tuple[str, str, str]] = {
    EntryKind.SYMLINK: (
        "这是一个快捷方式(符号链接),不是文件本身;为安全起见,不读取链接指向的文件。",
        "请把退款申请表文件本身复制到 inbox 文件夹,不要放快捷方式或链接。",
        "链接已从 inbox 中删除;链接指向的文件没有被读取,也没有被改动。",
    ),
    EntryKind.HARDLINK: (
        "这个文件在别处还有另一个名字(硬链接),不是单独的一份文件;为安全起见不读取。",
        "请把退款申请表复制一份(不要创建链接)放入 inbox 文件夹。",
        "inbox 中的这个名字已删除;文件的另一个名字和内容没有被读取,也没有被改动。",
    ),
    EntryKind.DIRECTORY: (
        "这是一个文件夹,不是 Excel 文件;inbox 只处理直接放入的文件,不进入文件夹。",
        "请把文件夹中的退款申请表逐个放入 inbox 文件夹。",
        "文件夹已原样移到本文件旁边,其中的文件没有被读取。",
    ),
    EntryKind.FIFO: (
        "这不是普通文件(命名管道),无法作为表格处理。",
        "请放入 .xlsx 文件本身。",
        "该特殊文件已从 inbox 中删除。",
    ),
    EntryKind.SOCKET: (
        "这不是普通文件(套接字),无法作为表格处理。",
        "请放入 .xlsx 文件本身。",
        "该特殊文件已从 inbox 中删除。",
    ),
    EntryKind.DEVICE: (
        "这不是普通文件(设备文件),无法作为表格处理。",
        "请放入 .xlsx 文件本身。",
        "该特殊文件已从 inbox 中删除,没有被读取。",
    ),
}


def typed_note(form: RefundForm) -> str:
    canonical = form.canonical()
    changes = ";".join(
        f"{FIELDS_BY_NAME[name].label}“{typed}”→ {canonical[name]}"
        for name, typed in form.typed.items()
    )
    return f"已规范:{changes}"


def history_row(
    at: dt.datetime,
    to_step: str | None,
    from_role: str | None,
    to_role: str | None,
    actor: str | None,
    file_name: str,
    detail: str | None,
) -> tuple[str, ...]:
    """One line of the 流转记录 sheet: time, step reached, from, to, who, which file, notes."""
    return (
        f"{at:%Y-%m-%d %H:%M}",  # the procedure writes times to the minute
        STEP_NAMES[Step(to_step)] if to_step else "",
        ROLE_NAMES.get(from_role or "", ""),
        ROLE_NAMES.get(to_role or "", "归档"),
        actor or "",
        file_name,
        (detail or "").replace("\n", ";"),
    )


def returned_name(name: str) -> str:
    stem = Path(safe_name(name)).stem
    return f"{stem}.xlsx" if stem.endswith("退回") else f"{stem}-退回.xlsx"


def how_to_fix(problem: FieldProblem) -> str:
    return {
        Reason.REQUIRED: "请填写此项",
        Reason.BAD_DATETIME: "按 2026-11-03 14:05 的格式填写",
        Reason.AMBIGUOUS_DATETIME: "时间精确到分钟,如 2026-11-03 14:05",
        Reason.BAD_AMOUNT: "填写大于 0 的金额,最多两位小数",
        Reason.AMBIGUOUS_AMOUNT: "每张单只填一个金额",
        Reason.BAD_MOBILE: "填写 11 位手机号码",
        Reason.BAD_ORDER_NO: "填写本单的 TK 订单号",
        Reason.BAD_CHOICE: "从下拉列表中选择",
        Reason.FUTURE_TIME: "填写实际发生的时间",
        Reason.TIME_ORDER: "核对两个时间的先后",
        Reason.NOT_IN_ROSTER: "由本部门名单中的人员签名",
        Reason.NO_ROSTER: "请管理员在 refundflow.toml 的 [roster] 中填写该角色的名单并重启"
        " refundflow,然后把本表重新放入 inbox",
        Reason.SAME_PERSON: "由另一位人员处理并签名",
        Reason.DUPLICATE_ORDER: "勿重复提交,在原单上处理",
        Reason.EARLIER_STEP_CHANGED: "改回原值",
        Reason.FILLED_TOO_EARLY: "清空此项",
        Reason.NOT_APPROVED: "值班负责人审核同意后再提交",
        Reason.OLD_TEMPLATE: "用 templates/ 中的最新模板重新填写",
        Reason.FORMULA: "删除公式,直接填写数值",
        Reason.FOREIGN_FORM_NO: "新填的退款单请清空编号,编号由系统填写",
    }.get(problem.reason, "按说明修改")


def reply_text(
    name: str,
    now: dt.datetime,
    what: str,
    hint: str,
    *,
    kept: str = "原文件已原样放在本文件旁边,并已存档。",
) -> bytes:
    lines = [
        f"文件:{name}",
        f"时间:{now:%Y-%m-%d %H:%M}",
        f"问题:{what}",
        f"处理办法:{hint or DEFAULT_HINT}",
        kept,
        "",
    ]
    # CRLF and a BOM so Notepad on the office PCs shows the Chinese text correctly.
    return "\r\n".join(lines).encode("utf-8-sig")


# ---- why a readable form is refused or returned, and the notes 流转记录 keeps ---------------


def closed_form(form_no: str, closed_at: dt.datetime | None) -> tuple[str, str]:
    when = f"于 {closed_at:%Y-%m-%d %H:%M} " if closed_at else ""
    return f"退款单 {form_no} 已{when}办结归档,不再接收。", "如需更正,请联系行政部。"


def foreign_form_no(form_no: str, its_order: str, this_order: str) -> str:
    return (
        f"编号 {form_no} 已是另一张退款单(订单号 {its_order})的编号,"
        f"与本单的订单号 {this_order} 不符"
    )


def stale_copy(
    form_no: str, step: Step, current: str, *, token: str | None, old: bool
) -> tuple[str, str]:
    """Why an earlier (or another department's) copy is refused, and which file to use."""
    if old:
        what = f"这是退款单 {form_no} 的旧副本;该单已流转到“{STEP_NAMES[step]}”。"
    else:
        problem = "不符" if token else "缺失"
        what = (
            f"这不是最近一次发出的退款单 {form_no}(流转记录中的副本凭证{problem});"
            f"该单正处于“{STEP_NAMES[step]}”。"
        )
    hint = f"请使用最新的文件({current}),不要重复提交旧文件,也不要删除其中的“流转记录”工作表。"
    return what, hint


def too_large(size: int, limit_mb: int) -> tuple[str, str]:
    return (
        f"文件太大({size / 1024 / 1024:.1f} MB),退款申请表不会超过 {limit_mb} MB。",
        "请确认放入的是退款申请表;如表中粘贴了大图片,请压缩图片后再保存。",
    )


def already_received(first: dt.datetime) -> tuple[str, str]:
    return (
        f"同样的文件已于 {first:%Y-%m-%d %H:%M} 收到并处理过,本次不再重复处理。",
        "无需重复提交;如有修改,请修改后再放入。",
    )


def fill_late(minutes: int) -> str:
    return f"填单超时:上报后超过 {minutes} 分钟才提交"


def finance_returned(opinion: str | None) -> str:
    return f"财务退回:{opinion or ''}"


def resubmitted(rounds: int) -> str:
    return f"重新提交财务(第 {rounds} 轮)"


def linked_to(earlier: str) -> str:
    return f"同一订单的前一张退款单 {earlier} 已退回办结,本单为重新申请"


def filer_number(typed: str, form_no: str) -> str:
    return f"填单人填写的编号“{typed}”不是系统编号,本单编号为 {form_no}"


def history_title(form_no: str) -> str:
    """Printed at the top of every 流转记录 page, so a loose page finds its form."""
    return f"退款单 {form_no} 流转记录"


def return_title(form_no: str | None, name: str, at: dt.datetime) -> str:
    """The first row of a 退回原因 sheet: which form (or file), and when it came back."""
    which = f"退款单 {form_no}" if form_no else f"文件 {name}"
    return f"{which} 退回原因(退回时间:{at:%Y-%m-%d %H:%M})"
