"""The copies a refund form is answered by: the routed copy of a hand-off (numbered, with
its 流转记录 and copy token, values cleaned) and the returned copy (with its 退回原因 sheet).

Functions of the :class:`Processor` whose gates decided the outcome; each returns the
:class:`Plan` the processor commits and delivers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from . import replies
from .archive import sha256
from .config import ROLE_NAMES, UNCHECKED_SIGNER
from .forms import FieldProblem, RefundForm
from .layout import (
    BLOCK_FIELDS,
    COPY_TOKEN_LABEL,
    FIELDS_BY_NAME,
    TEMPLATE_VERSION,
    VERSION_PROPERTY,
)
from .ledger import EventKind, FormUpdate, NewEvent
from .plans import Intake, Outcome, Plan, Result
from .replies import (
    FINANCE_RETURNED_CHOICES,
    HISTORY_HEADER,
    MARK_RESTORED,
    RETURN_HEADER,
    history_row,
    how_to_fix,
    returned_name,
    typed_note,
)
from .routing import (
    FINANCE_ROLES,
    STEP_NAMES,
    WAITING_ON,
    Stamp,
    Step,
    fill_was_late,
    next_step,
)
from .xlsxpatch import Patch, apply_patch

if TYPE_CHECKING:
    from .processor import Processor


def plan_hand_off(p: Processor, intake: Intake) -> Plan:
    """The form moves on: number it, note what happened, and make the routed copy."""
    form, step, now, name = intake.form, intake.step, intake.now, intake.name
    approvals = {b: form.blocks[b].approval for b in form.blocks}
    move = next_step(step, approvals, form.amount, p.config, resubmitted=intake.resubmitted)
    form_no = p.new_form_no(now) if step is Step.NEW else form.form_no
    assert form_no is not None
    actor = form.blocks[move.signed_block].by if move.signed_block else None
    restore: dict[str, str] = {}
    if intake.reading is not None and intake.reading.version_mark_missing:
        # A tool that re-saved the form dropped the version mark; the copy gets it back.
        restore = {VERSION_PROPERTY: f'"{TEMPLATE_VERSION}"'}
    detail = _notes(p, intake, move.to_step, move.signed_block, form_no, bool(restore))
    from_role = WAITING_ON[step]
    history = [
        *(
            history_row(e.at, e.to_step, e.from_role, e.to_role, e.actor, e.file_name, e.detail)
            for e in p.ledger.events(form_no)
            if e.kind == EventKind.ACCEPTED
        ),
        history_row(now, move.to_step, from_role, move.to_role, actor, name, detail),
    ]
    if move.to_step is Step.FINANCE_RETURNED:
        # Where customer service reads it: what it can do with the returned form.
        *row, note = history[-1]
        history[-1] = (*row, f"{note};{FINANCE_RETURNED_CHOICES}")
    # The copy we send now is the form's len(history)-th hand-off: its token proves it.
    token = p.copy_key.token(form_no, len(history))
    header = (*HISTORY_HEADER, f"{COPY_TOKEN_LABEL}{token}")
    out_name = f"{form_no}.xlsx"
    earlier = p.deliverer.earlier_copies(form_no, name, intake.sha, from_role)
    if move.to_role is None:
        dest = p.ws.sheets / "归档" / now.strftime("%Y-%m") / out_name
        message = f"{form_no} 已办结归档"
        outcome = Outcome.CLOSED
    else:
        dest = p.deliverer.free_name(p.ws.outbox(move.to_role) / out_name, reusing=earlier)
        message = f"{form_no} → {ROLE_NAMES[move.to_role]}({STEP_NAMES[move.to_step]})"
        outcome = Outcome.ROUTED
    cell = form.cells.get("form_no", FIELDS_BY_NAME["form_no"].cell)
    patched = _patched(
        p,
        intake,
        out_name,
        Patch(
            sheet=form.sheet,
            cell_values={**clean_values(form), cell: form_no},
            history_rows=[header, *history],
            history_title=replies.history_title(form_no),
            missing_names=restore,
        ),
    )
    snapshot_now = form.canonical()
    snapshot_now["form_no"] = form_no
    update = FormUpdate(
        form_no=form_no,
        order_no=form.order_no or "",
        step=move.to_step,
        waiting_on=WAITING_ON[move.to_step],
        reported_at=form.reported_at,
        amount=str(form.amount) if form.amount is not None else None,
        snapshot=snapshot_now,
        closed=move.to_step is Step.CLOSED,
        supersedes=intake.supersedes,
    )
    event = NewEvent(
        now,
        EventKind.ACCEPTED,
        name,
        intake.sha,
        form_no=form_no,
        from_step=step,
        to_step=move.to_step,
        from_role=from_role,
        to_role=move.to_role,
        actor=actor,
        stamp=move.stamp,
        out_sha=sha256(patched),
        detail=detail,
    )
    return Plan(
        event,
        update,
        [(dest, patched)],
        sent=True,
        result=Result(outcome, name, message, form_no, move.to_role),
        take_away=earlier,
    )


def _notes(
    p: Processor,
    intake: Intake,
    to_step: Step,
    signed_block: str | None,
    form_no: str,
    mark_restored: bool,
) -> str | None:
    """What the 流转记录 row of this hand-off notes (kept in the event for later copies)."""
    form, step = intake.form, intake.step
    notes: list[str] = []
    if step is Step.NEW and fill_was_late(form.reported_at, intake.now, p.config):
        notes.append(replies.fill_late(p.config.limits.fill_minutes))
    if to_step is Step.FINANCE_RETURNED and signed_block:
        notes = [replies.finance_returned(form.blocks[signed_block].opinion)]
    if intake.resubmitted:
        rounds = 1 + sum(
            e.kind == EventKind.ACCEPTED and e.stamp == Stamp.FINANCE
            for e in p.ledger.events(form_no)
        )
        notes = [replies.resubmitted(rounds)]
    if signed_block and not p.config.has_roster(signed_block):
        notes.append(UNCHECKED_SIGNER)
    if intake.supersedes:
        notes.append(replies.linked_to(intake.supersedes))
    if step is Step.NEW and form.form_no and form.form_no != form_no:
        notes.append(replies.filer_number(form.form_no, form_no))
    if form.typed:
        notes.append(typed_note(form))  # the copy carries the clean value
    if mark_restored:
        notes.append(MARK_RESTORED)
    return "\n".join(notes) or None


def plan_return(p: Processor, intake: Intake, problems: list[FieldProblem], to_role: str) -> Plan:
    """Send the form back to ``to_role`` with a 退回原因 sheet and the problem cells marked."""
    form, step, name = intake.form, intake.step, intake.name
    form_no = form.form_no if step is not Step.NEW else None
    rows = [(str(i), p.label, p.cell, p.message, how_to_fix(p)) for i, p in enumerate(problems, 1)]
    earlier = p.deliverer.earlier_copies(form_no, name, intake.sha, to_role)
    returned = f"{form_no}-退回.xlsx" if form_no else returned_name(name)
    dest = p.deliverer.free_name(p.ws.outbox(to_role) / returned, reusing=earlier)
    patched = _patched(
        p,
        intake,
        returned,
        Patch(
            sheet=form.sheet,
            return_rows=[RETURN_HEADER, *rows],
            title=replies.return_title(form_no, name, intake.now),
            highlight_cells=[p.cell for p in problems if p.cell],
        ),
    )
    reasons = "\n".join(f"{p.label}:{p.message}" for p in problems)
    message = f"退回{ROLE_NAMES[to_role]}:{len(problems)} 个问题"
    return Plan(
        NewEvent(
            intake.now,
            EventKind.RETURNED,
            name,
            intake.sha,
            form_no=form_no,
            from_step=step,
            to_step=step,
            to_role=to_role,
            out_sha=sha256(patched),
            detail=reasons,
        ),
        outputs=[(dest, patched)],
        result=Result(Outcome.RETURNED, name, message, form_no, to_role, problems=tuple(problems)),
        take_away=earlier,
    )


def _patched(p: Processor, intake: Intake, name: str, patch: Patch) -> bytes:
    """The copy ``patch`` makes of the file, to be sent as ``name`` (or ``name (2)`` …).

    Replaying, it is the copy archived when the file was first processed, when the
    archive can tell which one that was: the same bytes, without making them again.
    """
    if p.sent_copies is not None and intake.archived is not None:
        kept = p.sent_copies(intake.archived, intake.now, name)
        # The file itself sent back under that name (rejected) is not a copy of it.
        if kept is not None and kept != intake.data:
            return kept
    return apply_patch(intake.content, patch, limits=p.zip_limits)


def clean_values(form: RefundForm) -> dict[str, str | float]:
    """Cell -> the canonical value of every field accepted in another shape than typed.

    Amounts and date-times become numbers (a SUM counts them, the cell's format shows them),
    everything else its canonical text (11-digit mobile, the bank's full name).
    """
    epoch = dt.datetime(1904, 1, 1) if form.date1904 else dt.datetime(1899, 12, 30)
    out: dict[str, str | float] = {}
    for name in form.typed:
        value = form.value(name)
        cell = form.cells.get(name)
        if cell is None or value is None:
            continue
        if isinstance(value, Decimal):
            out[cell] = float(value)
        elif isinstance(value, dt.datetime):
            out[cell] = round((value - epoch).total_seconds() / 86400, 10)
        else:
            out[cell] = str(value)
    return out


def finance_cleared(form: RefundForm, snapshot: dict[str, str] | None) -> bool:
    """Did customer service empty every finance block of a form finance had filled?"""
    names = [f.name for role in FINANCE_ROLES for f in BLOCK_FIELDS[role]]
    current = form.canonical()
    had = any((snapshot or {}).get(name, "") for name in names)
    return had and not any(current.get(name, "") for name in names)
