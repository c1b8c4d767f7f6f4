"""``process_file()``: one dropped file in, exactly one answer out, nothing lost.

The order of work is what makes a kill -9 at any instant safe:

1. archive the received bytes (write-once, fsynced) — before anything else;
2. decide (sniff, read in the sandbox, validate, route) and build every output in memory;
3. archive the outputs, then commit receipt + event + form state + planned deliveries in ONE
   ledger transaction;
4. deliver (idempotent), then remove the file from ``inbox/``, then mark the receipt done.

A restart finishes step 4 for committed receipts (:meth:`Processor.recover`) and re-does
everything for files still in the inbox with no commit; archived bytes of such an uncommitted
attempt are moved aside as orphans, so a rebuild replays each received file exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .archive import (
    ORPHANS,
    RECEIVED,
    SENT,
    archive_path,
    place_exact,
    place_new,
    remove_partial_writes,
    safe_name,
    sha256,
    write_exclusive,
)
from .calendar import WorkCalendar
from .config import ROLE_NAMES
from .errors import FileRejected, Reason
from .forms import FieldProblem, FormReading, read_form
from .layout import FIELDS_BY_NAME, REFUND_TEMPLATE_FILE, TEMPLATE_VERSION, VERSION_PROPERTY
from .ledger import FormUpdate, Ledger, NewEvent, iso
from .routing import STEP_NAMES, WAITING_ON, Step, fill_was_late, next_step
from .sandbox import ParserPool
from .sniff import sniff
from .validation import Context, validate
from .workspace import Workspace
from .xlsxpatch import Patch, PatchError, apply_patch

log = logging.getLogger(__name__)

HISTORY_HEADER = ("时间", "环节", "从", "到", "经办人", "文件")
RETURN_HEADER = ("序号", "项目", "单元格", "问题", "如何修改")
REPLY_SUFFIX = ".退回原因.txt"
DEFAULT_HINT = f"请用 templates/{REFUND_TEMPLATE_FILE} 填写后重新放入 inbox 文件夹。"


class Outcome(StrEnum):
    ROUTED = "routed"  # accepted and sent on to the next role
    CLOSED = "closed"  # accepted at the last step and archived
    RETURNED = "returned"  # a refund form with problems, sent back to who must fix it
    REJECTED = "rejected"  # not one of our workbooks: outbox/rejected/ with a reason file
    DUPLICATE = "duplicate"  # the very same bytes were already received
    RECOVERED = "recovered"  # finished work a crash had interrupted


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    file_name: str
    message: str  # one line for the operator, in Chinese
    form_no: str | None = None
    to_role: str | None = None
    delivered: tuple[Path, ...] = ()
    problems: tuple[FieldProblem, ...] = field(default=())


@dataclass
class _Plan:
    """Everything one file's processing will commit and deliver."""

    event: NewEvent
    update: FormUpdate | None = None
    outputs: list[tuple[Path, bytes]] = field(default_factory=list)  # (destination, bytes)
    sent: bool = False  # outputs are routed copies that may come back as hand-offs
    result: Result | None = None


class Processor:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], dt.datetime],
        pool: ParserPool,
        deliver: bool = True,
    ) -> None:
        self.ws = workspace
        self.config = workspace.config
        self.clock = clock
        self.pool = pool
        self.ledger = Ledger(workspace.ledger_path)
        self.calendar = WorkCalendar(self.config)
        self._deliver = deliver  # False while rebuilding: the copies were delivered long ago

    def close(self) -> None:
        self.ledger.close()

    # ---- crash recovery ------------------------------------------------------------------
    def recover(self) -> list[Result]:
        """Finish receipts committed before a crash; set aside uncommitted archive copies."""
        results = []
        for receipt in self.ledger.unfinished_receipts():
            self._finish(receipt.id, self.ws.inbox / receipt.name, receipt.sha)
            results.append(Result(Outcome.RECOVERED, receipt.name, "已完成中断前的投递"))
        self._set_aside_orphans()
        self._remove_partial_writes()
        self._release_held_files()
        return results

    def _release_held_files(self) -> None:
        """Files a killed run had renamed aside in the inbox: done ones go, others come back."""
        for hold in self.ws.inbox.glob(f".*{HOLD_SUFFIX}"):
            original = hold.name[1:].rsplit(".", 2)[0]
            if any(r.state == "done" for r in self.ledger.receipts_for(sha256(hold.read_bytes()))):
                hold.unlink()
            else:
                _put_back(hold, self.ws.inbox / original)

    def _remove_partial_writes(self) -> None:
        # Only where place_new writes: never the inbox, which holds what people dropped.
        folders = [
            *(folder for folder in self.ws.folders() if folder != self.ws.inbox),
            *(self.ws.sheets / "archive").glob("*/*"),
            *(self.ws.sheets / "归档").glob("*"),
        ]
        for folder in folders:
            if folder.is_dir() and remove_partial_writes(folder):
                log.info("removed partial writes of an interrupted run in %s", folder)

    def _set_aside_orphans(self) -> None:
        folder = self.ws.sheets / "archive" / RECEIVED
        if not folder.is_dir():
            return
        known = self.ledger.archived_names()
        for month in sorted(folder.iterdir())[-2:]:  # a crash leaves them in the last month(s)
            for path in month.iterdir():
                rel = str(path.relative_to(self.ws.sheets))
                if rel not in known and not path.name.startswith("."):
                    target = self.ws.sheets / "archive" / ORPHANS / path.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                    log.info("set aside uncommitted archive copy %s", path.name)

    # ---- the one entry point ---------------------------------------------------------------
    def process_file(self, path: Path) -> Result:
        """Archive, decide, commit, deliver: one answer for one dropped file."""
        stat = path.stat()
        data = path.read_bytes()
        sha = sha256(data)
        now = self.clock()
        previous = self.ledger.receipts_for(sha)
        for receipt in previous:
            if receipt.state != "done" and receipt.name == path.name:
                self._finish(receipt.id, path, sha)
                return Result(Outcome.RECOVERED, path.name, "已完成中断前的处理")
        received: list[Path] = []

        def archive_received() -> None:
            # Durable before any outcome is written; overlapped with the sandboxed parse.
            received.append(
                place_new(archive_path(self.ws.sheets, RECEIVED, now, sha, path.name), data)
            )

        if previous:
            archive_received()
            plan = self._duplicate(path.name, sha, now, previous[0].received_at, data)
        else:
            plan = self._decide(path.name, data, sha, now, while_reading=archive_received)
            if not received:
                archive_received()
        return self._commit_and_deliver(
            plan, path, (stat.st_size, stat.st_mtime_ns), sha, received[0]
        )

    def replay(self, archived: Path, at: dt.datetime, name: str) -> Result:
        """Process an archived received file again, as of ``at`` (for ``rebuild``).

        Nothing is archived or delivered: that happened when the file first arrived.
        """
        data = archived.read_bytes()
        sha = sha256(data)
        previous = self.ledger.receipts_for(sha)
        if previous:
            plan = self._duplicate(name, sha, at, previous[0].received_at, data)
        else:
            plan = self._decide(name, data, sha, at)
        return self._commit_and_deliver(plan, self.ws.inbox / name, (len(data), 0), sha, archived)

    # ---- deciding ----------------------------------------------------------------------------
    def _decide(
        self,
        name: str,
        data: bytes,
        sha: str,
        now: dt.datetime,
        *,
        while_reading: Callable[[], object] | None = None,
    ) -> _Plan:
        limit_mb = self.config.max_file_mb
        if len(data) > limit_mb * 1024 * 1024:
            return self._reject(
                name,
                sha,
                now,
                data,
                f"文件太大({len(data) / 1024 / 1024:.1f} MB),退款申请表不会超过 {limit_mb} MB。",
                "请确认放入的是退款申请表;如表中粘贴了大图片,请压缩图片后再保存。",
                Reason.TOO_LARGE,
            )
        sniffed = sniff(data, name=name)
        if not sniffed.accepted:
            return self._reject(
                name, sha, now, data, sniffed.description, sniffed.hint, sniffed.reason
            )
        try:
            reading = self.pool.run(read_form, data, while_waiting=while_reading)
        except FileRejected as exc:
            return self._reject(name, sha, now, data, exc.message, exc.hint, exc.reason)
        try:
            return self._route_known(name, data, sha, now, reading)
        except PatchError as exc:
            # Readable, but our sheets cannot be written into it (e.g. 编号 holds a formula).
            return self._reject(name, sha, now, data, exc.message, exc.hint, exc.reason)

    def _route_known(
        self, name: str, data: bytes, sha: str, now: dt.datetime, reading: FormReading
    ) -> _Plan:
        """Route a readable refund form according to the ledger's view of it."""
        form = reading.form
        row = self.ledger.form(form.form_no) if form.form_no else None
        if row is None:
            return self._route(name, data, sha, now, reading, Step.NEW, None)
        step = Step(row.step)
        if step is Step.CLOSED:
            return self._reject(
                name,
                sha,
                now,
                data,
                f"退款单 {row.form_no} 已于 {row.closed_at:%Y-%m-%d %H:%M} 办结归档,不再接收。",
                "如需更正,请联系行政部。",
                Reason.FORM_CLOSED,
            )
        stale = self.ledger.sent_copy(sha)
        is_stale = (stale is not None and sha != row.last_sent_sha) or (
            reading.history_rows is not None and reading.history_rows < row.transitions
        )
        if is_stale:
            role = WAITING_ON[step]
            where = f"outbox/{self.config.folder(role)}/" if role else "归档"
            return self._reject(
                name,
                sha,
                now,
                data,
                f"这是退款单 {row.form_no} 的旧副本;该单已流转到「{STEP_NAMES[step]}」。",
                f"请使用最新的文件({where}中的 {row.form_no}.xlsx),不要重复提交旧文件。",
                Reason.STALE_COPY,
                form_no=row.form_no,
            )
        return self._route(name, data, sha, now, reading, step, row.snapshot)

    def _route(
        self,
        name: str,
        data: bytes,
        sha: str,
        now: dt.datetime,
        reading: FormReading,
        step: Step,
        snapshot: dict[str, str] | None,
    ) -> _Plan:
        form = reading.form
        owner = None
        if step is Step.NEW and form.order_no:
            other = self.ledger.form_by_order(form.order_no)
            owner = (other.form_no, Step(other.step)) if other else None
        ctx = Context(step=step, now=now, config=self.config, snapshot=snapshot, order_owner=owner)
        problems = validate(form, reading.problems, ctx)
        waiting = WAITING_ON[step] or "cs"
        form_no = form.form_no if step is not Step.NEW else None
        if problems:
            rows = [
                (str(i), p.label, p.cell, p.message, _how_to_fix(p))
                for i, p in enumerate(problems, 1)
            ]
            patched = apply_patch(
                data,
                Patch(
                    sheet=form.sheet,
                    return_rows=[RETURN_HEADER, *rows],
                    highlight_cells=[p.cell for p in problems if p.cell],
                ),
            )
            dest = self.ws.outbox(waiting) / _returned_name(name)
            reasons = "\n".join(f"{p.label}:{p.message}" for p in problems)
            message = f"退回{ROLE_NAMES[waiting]}:{len(problems)} 个问题"
            return _Plan(
                NewEvent(
                    now,
                    "returned",
                    name,
                    sha,
                    form_no=form_no,
                    from_step=step,
                    to_step=step,
                    to_role=waiting,
                    out_sha=sha256(patched),
                    detail=reasons,
                ),
                outputs=[(dest, patched)],
                result=Result(
                    Outcome.RETURNED, name, message, form_no, waiting, problems=tuple(problems)
                ),
            )
        approvals = {b: form.blocks[b].approval for b in form.blocks}
        move = next_step(step, approvals, form.amount, self.config)
        if step is Step.NEW:
            form_no = self._new_form_no(now)
        assert form_no is not None
        actor = form.blocks[move.signed_block].by if move.signed_block else None
        detail: str | None = None
        if step is Step.NEW and fill_was_late(form.reported_at, now, self.config):
            detail = f"填单超时:上报后超过 {self.config.limits.fill_minutes} 分钟才提交"
        if move.to_step is Step.FINANCE_RETURNED and move.signed_block:
            detail = f"财务退回:{form.blocks[move.signed_block].opinion or ''}"
        from_role = WAITING_ON[step]
        # A tool that re-saved the form dropped the version mark; the routed copy gets it back.
        mark_note, restore = "", {}
        if reading.version_mark_missing:
            mark_note = "(缺少模板版本标记,按当前模板读取,已补回)"
            restore = {VERSION_PROPERTY: f'"{TEMPLATE_VERSION}"'}
        history = [
            *(
                _history_row(e.at, e.to_step, e.from_role, e.to_role, e.actor, e.file_name)
                for e in self.ledger.events(form_no)
                if e.kind == "accepted"
            ),
            _history_row(now, move.to_step, from_role, move.to_role, actor, name + mark_note),
        ]
        cell = form.cells.get("form_no", FIELDS_BY_NAME["form_no"].cell)
        patched = apply_patch(
            data,
            Patch(
                sheet=form.sheet,
                cell_values={cell: form_no},
                history_rows=[HISTORY_HEADER, *history],
                missing_names=restore,
            ),
        )
        out_name = f"{form_no}.xlsx"
        if move.to_role is None:
            dest = self.ws.sheets / "归档" / now.strftime("%Y-%m") / out_name
            message = f"{form_no} 已办结归档"
            outcome = Outcome.CLOSED
        else:
            dest = self.ws.outbox(move.to_role) / out_name
            message = f"{form_no} → {ROLE_NAMES[move.to_role]}({STEP_NAMES[move.to_step]})"
            outcome = Outcome.ROUTED
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
        )
        event = NewEvent(
            now,
            "accepted",
            name,
            sha,
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
        return _Plan(
            event,
            update,
            [(dest, patched)],
            sent=True,
            result=Result(outcome, name, message, form_no, move.to_role),
        )

    def _new_form_no(self, now: dt.datetime) -> str:
        prefix = f"{self.config.form_no_prefix}{now:%Y%m%d}-"
        return f"{prefix}{self.ledger.forms_created_on(prefix) + 1:03d}"

    def _reject(
        self,
        name: str,
        sha: str,
        now: dt.datetime,
        data: bytes,
        what: str,
        hint: str,
        reason: Reason,
        *,
        form_no: str | None = None,
    ) -> _Plan:
        text = _reply_text(name, now, what, hint)
        dest = self.ws.rejected / safe_name(name)
        return _Plan(
            NewEvent(now, "rejected", name, sha, form_no=form_no, detail=f"{reason}: {what}"),
            outputs=[(dest, data), (dest.with_name(dest.name + REPLY_SUFFIX), text)],
            result=Result(Outcome.REJECTED, name, f"退回:{what}", form_no),
        )

    def _duplicate(
        self, name: str, sha: str, now: dt.datetime, first: dt.datetime, data: bytes
    ) -> _Plan:
        what = f"同样的文件已于 {first:%Y-%m-%d %H:%M} 收到并处理过,本次不再重复处理。"
        plan = self._reject(
            name,
            sha,
            now,
            data,
            what,
            "无需重复提交;如有修改,请修改后再放入。",
            Reason.ALREADY_RECEIVED,
        )
        plan.event = NewEvent(now, "duplicate", name, sha, detail=what)
        plan.result = Result(Outcome.DUPLICATE, name, f"已于 {first:%Y-%m-%d %H:%M} 收到")
        return plan

    # ---- committing and delivering ---------------------------------------------------------
    def _commit_and_deliver(
        self, plan: _Plan, path: Path, stat: tuple[int, int], sha: str, received: Path
    ) -> Result:
        deliveries = []
        for dest, payload in plan.outputs:
            out_sha = sha256(payload)
            kept = archive_path(self.ws.sheets, SENT, plan.event.at, out_sha, dest.name)
            if self._deliver:
                # Not fsynced: outputs can be made again from the received archive (rebuild).
                kept = write_exclusive(kept, payload)
            deliveries.append((str(kept.relative_to(self.ws.sheets)), str(dest), out_sha))
        size, mtime_ns = stat
        receipt_id = self.ledger.record(
            event=plan.event,
            receipt=(path.name, size, mtime_ns, str(received.relative_to(self.ws.sheets))),
            update=plan.update,
            deliveries=deliveries,
            sent_shas=[d[2] for d in deliveries] if plan.sent else [],
        )
        delivered = self._finish(receipt_id, path, sha)
        assert plan.result is not None
        result = plan.result
        return Result(
            result.outcome,
            result.file_name,
            result.message,
            result.form_no,
            result.to_role,
            tuple(delivered),
            result.problems,
        )

    def _finish(self, receipt_id: int, inbox_file: Path, sha: str) -> list[Path]:
        """Deliver what is committed, then take the file out of the inbox. Idempotent."""
        delivered = []
        for delivery in self.ledger.deliveries(receipt_id):
            dest = Path(delivery.dest)
            if not delivery.done and self._deliver:
                payload = (self.ws.sheets / delivery.source).read_bytes()
                if not place_exact(dest, payload, durable=False):
                    # Someone else's file holds the name: never overwrite it.
                    dest = place_new(dest, payload, durable=False)
            delivered.append(dest)
        if self._deliver:
            _remove_if_unchanged(inbox_file, sha)
        # One commit for all marks: a crash before it only repeats idempotent deliveries.
        self.ledger.mark_finished(receipt_id)
        return delivered


def _history_row(
    at: dt.datetime,
    to_step: str | None,
    from_role: str | None,
    to_role: str | None,
    actor: str | None,
    file_name: str,
) -> tuple[str, ...]:
    """One line of the 流转记录 sheet: time, step reached, from, to, who, which file."""
    return (
        iso(at) or "",
        STEP_NAMES[Step(to_step)] if to_step else "",
        ROLE_NAMES.get(from_role or "", ""),
        ROLE_NAMES.get(to_role or "", "归档"),
        actor or "",
        file_name,
    )


HOLD_SUFFIX = ".taking"


def _remove_if_unchanged(path: Path, sha: str) -> None:
    """Take the processed file out of the inbox unless someone saved a new version meanwhile.

    The file is first renamed aside (atomic), so a version saved between our check and the
    delete cannot be deleted unseen: what we hold is exactly what we compare.
    """
    hold = path.with_name(f".{path.name}.{os.getpid()}{HOLD_SUFFIX}")
    try:
        os.rename(path, hold)
    except FileNotFoundError:
        return
    if sha256(hold.read_bytes()) == sha:
        hold.unlink()
        return
    log.info("%s changed while being processed: left for the next pass", path.name)
    _put_back(hold, path)


def _put_back(hold: Path, original: Path) -> None:
    """Return a held file to the inbox under its name, or a free variant of it."""
    for n in range(1, 10_000):
        candidate = (
            original if n == 1 else original.with_name(f"{original.stem} ({n}){original.suffix}")
        )
        try:
            os.link(hold, candidate)
        except FileExistsError:
            continue
        hold.unlink()
        return
    # Left hidden it would never be processed: better fail loudly and keep it.
    raise FileExistsError(f"no free name in inbox/ to put {hold.name} back as {original.name}")


def _returned_name(name: str) -> str:
    stem = Path(safe_name(name)).stem
    return f"{stem}.xlsx" if stem.endswith("退回") else f"{stem}-退回.xlsx"


def _how_to_fix(problem: FieldProblem) -> str:
    return {
        Reason.REQUIRED: "请填写此项",
        Reason.BAD_DATETIME: "按 2026-11-03 14:05 的格式填写",
        Reason.AMBIGUOUS_DATETIME: "时间精确到分钟,如 2026-11-03 14:05",
        Reason.BAD_AMOUNT: "填写大于 0 的金额,最多两位小数",
        Reason.AMBIGUOUS_AMOUNT: "每张单只填一个金额",
        Reason.BAD_MOBILE: "填写 11 位手机号码",
        Reason.BAD_CHOICE: "从下拉列表中选择",
        Reason.FUTURE_TIME: "填写实际发生的时间",
        Reason.TIME_ORDER: "核对两个时间的先后",
        Reason.NOT_IN_ROSTER: "由本部门名单中的人员签名",
        Reason.SAME_PERSON: "由另一位人员处理并签名",
        Reason.DUPLICATE_ORDER: "勿重复提交,在原单上处理",
        Reason.EARLIER_STEP_CHANGED: "改回原值",
        Reason.FILLED_TOO_EARLY: "清空此项",
        Reason.NOT_APPROVED: "值班负责人审核同意后再提交",
        Reason.OLD_TEMPLATE: "用 templates/ 中的最新模板重新填写",
    }.get(problem.reason, "按说明修改")


def _reply_text(name: str, now: dt.datetime, what: str, hint: str) -> bytes:
    lines = [
        f"文件:{name}",
        f"时间:{now:%Y-%m-%d %H:%M}",
        f"问题:{what}",
        f"处理办法:{hint or DEFAULT_HINT}",
        "原文件已原样放在本文件旁边,并已存档。",
        "",
    ]
    # CRLF and a BOM so Notepad on the office PCs shows the Chinese text correctly.
    return "\r\n".join(lines).encode("utf-8-sig")
