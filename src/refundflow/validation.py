"""What a dropped refund form must satisfy at its current step.

Every problem names the field by its label on the form and its cell, says what is wrong and
how to fix it, in Chinese: the list is written into the returned workbook's 退回原因 sheet.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .config import ROLE_NAMES, Config
from .errors import Reason
from .forms import FieldProblem, RefundForm, field_label
from .layout import (
    ALL_BLOCKS,
    APPROVE,
    BLOCK_FIELDS,
    FIELDS_BY_NAME,
    HEADER_FIELDS,
    REFUND_FIELDS,
    TEMPLATE_VERSION,
    Field,
    Kind,
)
from .routing import BLOCK_FILLED_AT, FINANCE_ROLES, STEP_NAMES, WAITING_ON, Step

BLOCK_TITLES = {b.role: b.title for b in ALL_BLOCKS}
# Header fields the customer-service block must carry; form_no is ours to write.
REQUIRED_HEADER = tuple(f for f in HEADER_FIELDS if f.name != "form_no")
# What customer service may correct when it resubmits a form finance returned: not the
# order number (the form's identity), nor anything technical or finance confirmed.
RESUBMIT_FIELDS = tuple(f for f in REQUIRED_HEADER if f.name != "order_no") + BLOCK_FIELDS["cs"]


@dataclass(frozen=True)
class Context:
    """What validation needs to know beyond the form itself."""

    step: Step
    now: dt.datetime
    config: Config
    snapshot: dict[str, str] | None = None  # values accepted at the previous steps
    order_owner: tuple[str, Step] | None = None  # another form holding this order number
    resubmission: bool = False  # a form finance returned, its finance blocks cleared


def problem(form: RefundForm, name: str, reason: Reason, message: str) -> FieldProblem:
    field = FIELDS_BY_NAME[name]
    cell = form.cells.get(name, field.cell)
    return FieldProblem(name, field_label(field), cell, reason, message)


def validate(
    form: RefundForm, reading_problems: tuple[FieldProblem, ...], ctx: Context
) -> list[FieldProblem]:
    """Every problem of ``form`` at ``ctx.step``; an empty list means it may move on."""
    problems: list[FieldProblem] = []
    # No mark at all is not an old template when the layout is the current one: web tools and
    # scripts (ExcelJS) drop the custom property and the constant name when they re-save.
    mark_dropped = form.template_version is None and form.has_current_layout()
    if form.template_version != TEMPLATE_VERSION and not mark_dropped:
        problems.append(_template_problem(form))
    unreadable = {p.field for p in reading_problems}
    problems.extend(reading_problems)
    due_block = BLOCK_FILLED_AT.get(ctx.step)
    due_fields: tuple[Field, ...] = BLOCK_FIELDS[due_block] if due_block else ()
    cleared: set[str] = set()
    if ctx.step is Step.NEW:
        due_fields = REQUIRED_HEADER + due_fields
    elif ctx.resubmission:
        # Customer service may correct the customer's details and its own block (the duty
        # lead approves again); the finance blocks are empty for the new cycle.
        due_block = "cs"
        due_fields = RESUBMIT_FIELDS
        cleared = {f.name for role in FINANCE_ROLES for f in BLOCK_FIELDS[role]}
    for field in due_fields:
        if field.name in unreadable:
            continue
        problems.extend(_check_due_field(form, field, ctx))
    if due_block is not None and not any(p.field.startswith(due_block) for p in problems):
        problems.extend(_check_signature(form, due_block, ctx))
    if ctx.step is Step.NEW:
        problems.extend(_check_new_form(form, ctx))
    frozen = _check_frozen(form, {f.name for f in due_fields} | unreadable | cleared, ctx)
    if frozen and ctx.step is Step.FINANCE_RETURNED:
        finance = {f.name for role in FINANCE_ROLES for f in BLOCK_FIELDS[role]}
        if any(p.field in finance for p in frozen):
            frozen.append(_resubmit_hint(form))
    problems.extend(frozen)
    return problems


def _resubmit_hint(form: RefundForm) -> FieldProblem:
    return problem(
        form,
        "cashier_opinion",
        Reason.EARLIER_STEP_CHANGED,
        "财务退回的单有两种处理:要重新提交财务,请清空出纳、会计、财务总监、总裁四栏的全部内容,"
        "并由值班负责人在“客服部处理意见”重新审批(日期填当前时间);只需反馈用户时,请不要修改任何内容。",
    )


def _template_problem(form: RefundForm) -> FieldProblem:
    found = form.template_version or "无版本标记"
    return FieldProblem(
        "",
        "模板版本",
        "",
        Reason.OLD_TEMPLATE,
        f"此表不是当前版本的退款申请表模板(当前 {TEMPLATE_VERSION},此表:{found})。"
        "请用 templates/退款申请表.xlsx 重新填写后放入 inbox。",
    )


def _check_due_field(form: RefundForm, field: Field, ctx: Context) -> list[FieldProblem]:
    value = form.value(field.name)
    label = field_label(field)
    cell = form.cells.get(field.name, field.cell)
    if value is None:
        return [problem(form, field.name, Reason.REQUIRED, f"“{label}”({cell})未填写,此项必填。")]
    out: list[FieldProblem] = []
    if field.kind is Kind.DATETIME and isinstance(value, dt.datetime) and value > ctx.now:
        out.append(
            problem(
                form,
                field.name,
                Reason.FUTURE_TIME,
                f"“{label}”({cell})是将来的时间 {value:%Y-%m-%d %H:%M},请填写实际发生的时间。",
            )
        )
    if field.kind is Kind.BANK and value not in ctx.config.banks:
        out.append(
            problem(
                form,
                field.name,
                Reason.BAD_CHOICE,
                f"“{label}”({cell})“{value}”不在银行列表中,请从下拉列表中选择支付银行。",
            )
        )
    if field.kind is Kind.ORDER_NO and not re.fullmatch(ctx.config.order_no_pattern, str(value)):
        out.append(
            problem(
                form,
                field.name,
                Reason.BAD_ORDER_NO,
                f"“{label}”({cell})“{value}”不是订单号。请填写这张单对应的 TK 订单号"
                "(如 TK20261122001);一个订单号写一张单子,不能写“同上”“无”。",
            )
        )
    if field.kind is Kind.PERSON and field.block is None:
        # 提交人 is customer service: its list is the cs roster, duty leads included.
        out.extend(_check_roster(form, field.name, str(value), "cs", ctx.config))
    return out


def _check_roster(
    form: RefundForm, name: str, person: str, role: str, config: Config
) -> list[FieldProblem]:
    """``person`` may sign for ``role``: on its list, or the role has none and that is allowed."""
    field = FIELDS_BY_NAME[name]
    where = f"“{field_label(field)}”({form.cells.get(name, field.cell)})“{person}”"
    if not config.has_roster(role):
        if not config.require_roster:
            return []  # accepted; the 流转记录 row and every start-up say it was not checked
        return [
            problem(
                form,
                name,
                Reason.NO_ROSTER,
                f"{where}无法核对:refundflow.toml 的 [roster] 中没有{ROLE_NAMES[role]}的名单"
                f"({role} 一项),而本工作区要求先核对名单(require_roster = true)。",
            )
        ]
    if config.in_roster(role, person):
        return []
    people = "、".join(config.roster[role])
    return [
        problem(
            form,
            name,
            Reason.NOT_IN_ROSTER,
            f"{where}不是{ROLE_NAMES[role]}的人员(名单:{people}),"
            f"请由{ROLE_NAMES[role]}的人员填写并签名。",
        )
    ]


def _check_signature(form: RefundForm, role: str, ctx: Context) -> list[FieldProblem]:
    """The block's signer belongs to the role and signed no other block of this form."""
    out: list[FieldProblem] = []
    by_name = f"{role}_by"
    person = form.value(by_name)
    if not isinstance(person, str):
        return out
    out.extend(_check_roster(form, by_name, person, role, ctx.config))
    for other in BLOCK_TITLES:
        if other != role and form.value(f"{other}_by") == person:
            out.append(
                problem(
                    form,
                    by_name,
                    Reason.SAME_PERSON,
                    f"“{BLOCK_TITLES[role]}·执行人”“{person}”已签署“{BLOCK_TITLES[other]}”,"
                    "同一人不能签署同一张单的两个环节,请由另一位人员处理并签名。",
                )
            )
    approval = form.value(f"{role}_approval")
    if role == "cs" and approval is not None and approval != APPROVE:
        out.append(
            problem(
                form,
                "cs_approval",
                Reason.NOT_APPROVED,
                "“客服部处理意见·领导审批”须由当日值班负责人审核为“同意”后才能提交技术部。",
            )
        )
    return out


def _check_new_form(form: RefundForm, ctx: Context) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    purchase, reported = form.purchase_time, form.reported_at
    if (
        isinstance(purchase, dt.datetime)
        and isinstance(reported, dt.datetime)
        and (purchase > reported)
    ):
        out.append(
            problem(
                form,
                "purchase_time",
                Reason.TIME_ORDER,
                f"“购买时间”{purchase:%Y-%m-%d %H:%M} 晚于“上报时间”{reported:%Y-%m-%d %H:%M},"
                "请核对:购买应在上报之前。",
            )
        )
    if ctx.order_owner is not None:
        owner, step = ctx.order_owner
        out.append(
            problem(
                form,
                "order_no",
                Reason.DUPLICATE_ORDER,
                f"订单号 {form.order_no} 已有退款单 {owner}(当前环节:{STEP_NAMES[step]})。"
                "一个订单号只能填写一张退款单,请勿重复提交;如需补充,请在原单上处理。",
            )
        )
    return out


def _check_frozen(form: RefundForm, due: set[str], ctx: Context) -> list[FieldProblem]:
    """Fields outside the block due now must be as accepted before (or still empty)."""
    out: list[FieldProblem] = []
    current = form.canonical()
    snapshot = ctx.snapshot or {}
    for field in REFUND_FIELDS:
        if field.name in due or field.name == "form_no":
            continue
        before = snapshot.get(field.name, "")
        now = current.get(field.name, "")
        if before == now:
            continue
        label = field_label(field)
        cell = form.cells.get(field.name, field.cell)
        if before == "" and field.block is not None:
            owner = WAITING_ON.get(_step_filling(field.block))
            who = ROLE_NAMES.get(owner or "", "")
            out.append(
                problem(
                    form,
                    field.name,
                    Reason.FILLED_TOO_EARLY,
                    f"“{label}”({cell})应由{who}在其环节填写,现在还不能填,请清空此项。",
                )
            )
        else:
            out.append(
                problem(
                    form,
                    field.name,
                    Reason.EARLIER_STEP_CHANGED,
                    f"“{label}”({cell})已在之前的环节确认为“{before or '空'}”,"
                    f"现在被改成了“{now or '空'}”。已通过的内容不能修改,请改回原值。",
                )
            )
    return out


def _step_filling(block: str) -> Step:
    return next(step for step, b in BLOCK_FILLED_AT.items() if b == block)
