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

A delivery that fails (a folder that cannot be written) does not hold anything else up: the
file is out of the inbox once its outcome is committed, the receipt stays ``delivering`` and
:meth:`Processor.retry_deliveries` tries again later (``status`` lists what is pending).

Nothing in ``inbox/`` is opened through a link: links, hard links, folders and special files
are answered in ``outbox/rejected/`` without being read (see :mod:`inboxfile`), and a file
over the size limit is hashed in chunks and moved, never read whole or copied.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from .archive import (
    ORPHANS,
    RECEIVED,
    SENT,
    SUPERSEDED,
    archive_path,
    archived_files,
    form_numbers_sent,
    free_names,
    numbered,
    place_exact,
    place_new,
    remove_partial_writes,
    safe_name,
    sha256,
    write_exclusive,
)
from .calendar import WorkCalendar
from .config import ROLE_NAMES, UNCHECKED_SIGNER
from .copytoken import CopyKey
from .errors import FileRejected, Reason, StorageError, os_problem, storage_error
from .forms import FieldProblem, FormReading, RefundForm, read_form
from .inboxfile import (
    HOLD_SUFFIX,
    ChangedWhileReading,
    EntryKind,
    Identity,
    kind_of,
    original_name,
    put_back,
    read_dropped,
    remove_entry,
    remove_if_unchanged,
    sha256_of,
    take_aside,
)
from .layout import (
    BLOCK_FIELDS,
    COPY_TOKEN_LABEL,
    FIELDS_BY_NAME,
    REFUND_TEMPLATE_FILE,
    TEMPLATE_VERSION,
    VERSION_PROPERTY,
)
from .ledger import Delivery, FormRow, FormUpdate, Ledger, NewEvent, Receipt, iso
from .ledgercheck import open_ledger, unrecorded
from .routing import (
    FINANCE_ROLES,
    STAMP_FINANCE,
    STEP_NAMES,
    UNSIGNED_STEPS,
    WAITING_ON,
    Step,
    fill_was_late,
    next_step,
)
from .sandbox import ParserPool
from .sniff import sniff
from .validation import Context, validate
from .workspace import Workspace
from .xlsxpatch import Patch, PatchError, apply_patch

log = logging.getLogger(__name__)

FINANCE_RETURNED_CHOICES = (
    "客服部可二选一:款项到账等问题解决后,清空财务各栏、由值班负责人重新审批,"
    "放回 inbox 重新提交财务;或不作修改放回 inbox,反馈用户后转行政部。"
)
MARK_RESTORED = "缺少模板版本标记,按当前模板读取,已补回"
HISTORY_HEADER = ("时间", "环节", "从", "到", "经办人", "文件", "备注")
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
    WAITING = "waiting"  # still being written: left in the inbox for the next pass


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    file_name: str
    message: str  # one line for the operator, in Chinese
    form_no: str | None = None
    to_role: str | None = None
    delivered: tuple[Path, ...] = ()
    problems: tuple[FieldProblem, ...] = field(default=())
    pending: tuple[str, ...] = ()  # deliveries that failed and will be retried (why, in Chinese)


@dataclass
class _Plan:
    """Everything one file's processing will commit and deliver."""

    event: NewEvent
    update: FormUpdate | None = None
    outputs: list[tuple[Path, bytes]] = field(default_factory=list)  # (destination, bytes)
    sent: bool = False  # outputs are routed copies that may come back as hand-offs
    result: Result | None = None
    move_to: Path | None = None  # a file over the size limit is moved here, never copied
    # Our earlier copies of the form still in people's folders, (path, sha as delivered):
    # taken away when this outcome is delivered, so each folder is a to-do list.
    take_away: list[tuple[Path, str]] = field(default_factory=list)


class Processor:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Callable[[], dt.datetime],
        pool: ParserPool,
        deliver: bool = True,
        ledger: Ledger | None = None,
    ) -> None:
        """``ledger``: the one to record in (rebuild's new one); by default the workspace's,
        refused (LedgerError) unless it can be the record of the archive."""
        self.ws = workspace
        self.config = workspace.config
        self.clock = clock
        self.pool = pool
        self.ledger = ledger if ledger is not None else open_ledger(workspace)
        self.calendar = WorkCalendar(self.config)
        self.copy_key = CopyKey.load_or_create(workspace.sheets, now=clock())
        self._deliver = deliver  # False while rebuilding: the copies were delivered long ago
        # Form numbers our routed copies carry in the archive: never given again, even if the
        # ledger lost their record. Read at the first new form, after recover() set aside the
        # copies of an interrupted attempt. Not while rebuilding: it gives the same numbers.
        self._numbers_sent: frozenset[str] | None = None if deliver else frozenset()

    def close(self) -> None:
        self.ledger.close()

    # ---- crash recovery ------------------------------------------------------------------
    def recover(self) -> list[Result]:
        """Finish receipts committed before a crash; set aside uncommitted archive copies.

        Never raises for one folder that cannot be written: what cannot be delivered now is
        retried later, and every other file goes on being processed.
        """
        results = []
        for receipt in self.ledger.unfinished_receipts():
            results.append(self._finish_receipt(receipt, "已完成中断前的投递"))
        self._set_aside_orphans()
        self._remove_partial_writes()
        self._release_held_files()
        return results

    def retry_deliveries(self) -> list[Result]:
        """Deliver again what a failed delivery left pending (a folder that was not writable).

        Returns the receipts now complete; those still failing stay pending, quietly (they
        were reported when they first failed, and ``status`` lists them).
        """
        results = [
            self._finish_receipt(receipt, "已补发")
            for receipt in self.ledger.unfinished_receipts()
            if receipt.state == "delivering"
        ]
        return [r for r in results if not r.pending]

    def pending_deliveries(self) -> list[Delivery]:
        return self.ledger.pending_deliveries()

    def _finish_receipt(self, receipt: Receipt, message: str) -> Result:
        in_inbox = receipt.state == "committed"  # 'delivering': the inbox part is done
        delivered, failed = self._finish(
            receipt.id, self.ws.inbox / receipt.name, receipt.sha, None, in_inbox=in_inbox
        )
        if failed:
            return Result(
                Outcome.RECOVERED,
                receipt.name,
                "仍有投递失败,稍后再试:" + ";".join(failed),
                delivered=tuple(delivered),
                pending=tuple(failed),
            )
        return Result(Outcome.RECOVERED, receipt.name, message, delivered=tuple(delivered))

    def _release_held_files(self) -> None:
        """Entries a killed run had renamed aside in the inbox: done ones go, others come back."""
        for hold in self.ws.inbox.glob(f".*{HOLD_SUFFIX}"):
            original = self.ws.inbox / original_name(hold)
            try:
                # Only a plain file is ever read: a held link or FIFO simply goes back.
                regular = kind_of(os.lstat(hold)) is EntryKind.FILE
                done = regular and any(
                    r.state != "committed" for r in self.ledger.receipts_for(sha256_of(hold))
                )
                if done:
                    hold.unlink()
                else:
                    put_back(hold, original)
            except OSError as exc:
                log.warning("无法放回收件箱中暂存的 %s:%s", hold.name, exc)

    def _remove_partial_writes(self) -> None:
        # Only where place_new writes: never the inbox, which holds what people dropped.
        folders = [
            *(folder for folder in self.ws.folders() if folder != self.ws.inbox),
            *(self.ws.sheets / "archive").glob("*/*"),
            *(self.ws.sheets / "归档").glob("*"),
        ]
        for folder in folders:
            try:
                if folder.is_dir() and remove_partial_writes(folder):
                    log.info("removed partial writes of an interrupted run in %s", folder)
            except OSError as exc:  # an unwritable folder must not stop the start-up
                log.warning("无法清理 %s 中中断时留下的临时文件:%s", folder, exc)

    def _set_aside_orphans(self) -> None:
        # open_ledger() made sure that each received copy the ledger does not know is an
        # attempt a kill interrupted before its commit, whose file is still in the inbox and is
        # processed again (its month follows --now, so every month is looked at). The copies
        # that attempt archived as sent were never delivered: their numbers were not given.
        sheets = self.ws.sheets
        received = archived_files(sheets, RECEIVED)
        orphans = unrecorded(self.ledger, received, sheets)
        if not orphans:
            return
        first = min(sequence for sequence, _ in orphans)
        sent = [
            path
            for sequence, path in archived_files(sheets, SENT)
            if sequence > first
            and not self.ledger.is_delivery_source(str(path.relative_to(sheets)))
        ]
        for path in [*(p for _, p in orphans), *sent]:
            target = sheets / "archive" / ORPHANS / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            log.info("set aside uncommitted archive copy %s", path.name)

    # ---- the one entry point ---------------------------------------------------------------
    def process_file(self, path: Path) -> Result:
        """Archive, decide, commit, deliver: one answer for one dropped entry.

        Raises FileNotFoundError when the entry is gone before it was read, and
        :class:`StorageError` (with a Chinese message) when the workspace cannot be written or
        the file cannot be read; in both cases nothing was committed and the file stays.
        """
        try:
            dropped = read_dropped(path, max_bytes=self.config.max_file_mb * 1024 * 1024)
        except ChangedWhileReading:
            log.info("%s changed while it was read: left for the next pass", path.name)
            return Result(Outcome.WAITING, path.name, "文件仍在写入,稍后再处理")
        except PermissionError as exc:
            raise StorageError(
                f"无法读取 inbox/{path.name}(没有读取权限)",
                reason=Reason.UNREADABLE,
                hint="请把文件复制一份重新放入 inbox(复制出的文件归您自己所有),"
                "或请管理员开放读取权限",
            ) from exc
        try:
            if dropped.kind is not EntryKind.FILE:
                return self._answer_entry(path, dropped.kind)
            return self._process_dropped(path, dropped.identity, dropped.sha or "", dropped.data)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not path.exists():
                raise
            raise storage_error(exc, doing=f"处理 inbox/{path.name}") from exc
        except sqlite3.Error as exc:
            raise StorageError(
                f"处理 inbox/{path.name} 时无法写入账本 {self.ws.ledger_path}:{exc}",
                hint="请检查磁盘空间和账本文件的写权限;文件仍在 inbox 中,问题解决后会自动再处理",
            ) from exc

    def _process_dropped(
        self, path: Path, identity: Identity, sha: str, data: bytes | None
    ) -> Result:
        now = self.clock()
        previous = self.ledger.receipts_for(sha)
        for receipt in previous:
            if receipt.state == "committed" and receipt.name == path.name:
                return self._finish_receipt(receipt, "已完成中断前的处理")
        # The arrival sequence is committed before the archived copy exists (ledgercheck).
        arrival = self.ledger.reserve_arrival()
        received_path = archive_path(
            self.ws.sheets, RECEIVED, now, sha, path.name, sequence=arrival
        )
        if data is None:  # over the size limit: moved into the archive later, never read whole
            plan = self._too_large(path.name, sha, now, identity.size)
            return self._commit_and_deliver(
                plan, path, identity, sha, received_path, identity=identity
            )
        received: list[Path] = []

        def archive_received() -> None:
            # Durable before any outcome is written; overlapped with the sandboxed parse.
            received.append(place_new(received_path, data))

        if previous:
            archive_received()
            plan = self._duplicate(path.name, sha, now, previous[0].received_at, data)
        else:
            plan = self._decide(path.name, data, sha, now, while_reading=archive_received)
            if not received:
                archive_received()
        return self._commit_and_deliver(plan, path, identity, sha, received[0], identity=identity)

    def replay(self, archived: Path, at: dt.datetime, name: str) -> Result:
        """Process an archived received file again, as of ``at`` (for ``rebuild``).

        Nothing is archived or delivered: that happened when the file first arrived.
        """
        st = archived.stat()
        size = Identity(st.st_dev, st.st_ino, st.st_size, 0)
        if st.st_size > self.config.max_file_mb * 1024 * 1024:
            sha = sha256_of(archived)
            plan = self._too_large(name, sha, at, st.st_size)
            return self._commit_and_deliver(plan, self.ws.inbox / name, size, sha, archived)
        data = archived.read_bytes()
        sha = sha256(data)
        previous = self.ledger.receipts_for(sha)
        if previous:
            plan = self._duplicate(name, sha, at, previous[0].received_at, data)
        else:
            plan = self._decide(name, data, sha, at)
        return self._commit_and_deliver(plan, self.ws.inbox / name, size, sha, archived)

    def _answer_entry(self, path: Path, kind: EntryKind) -> Result:
        """Answer a link, hard link, folder or special file without reading through it."""
        hold = take_aside(path)
        if hold is None:
            raise FileNotFoundError(path)
        kind = kind_of(os.lstat(hold))  # what we hold now, not what the listing said
        if kind is EntryKind.FILE:  # replaced by a plain file meanwhile: read it next pass
            put_back(hold, path)
            return Result(Outcome.WAITING, path.name, "文件刚被替换,稍后再处理")
        what, hint, done = _ENTRY_TEXTS[kind]
        now = self.clock()
        base = next(free_names(self.ws.rejected / safe_name(path.name), REPLY_SUFFIX))
        reply = base.with_name(base.name + REPLY_SUFFIX)
        place_new(reply, _reply_text(path.name, now, what, hint, kept=done), durable=False)
        if kind is EntryKind.DIRECTORY:
            put_back(hold, base)  # the folder, whole, next to its reply
        else:
            remove_entry(hold)  # the link or special file itself; never what it points to
        log.warning("answered %s in inbox/ (%s) in %s", path.name, kind, reply.parent)
        return Result(Outcome.REJECTED, path.name, f"退回:{what}", delivered=(reply,))

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
        # Callers have checked the size limit before reading (see _too_large).
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
        if form.order_no and row.order_no and form.order_no != row.order_no and stale is None:
            # Another form's number typed (or copied) into a new form: its filer must fix it.
            message = (
                f"编号 {row.form_no} 已是另一张退款单(订单号 {row.order_no})的编号,"
                f"与本单的订单号 {form.order_no} 不符"
            )
            foreign = FieldProblem(
                "form_no",
                "编号",
                form.cells.get("form_no", FIELDS_BY_NAME["form_no"].cell),
                Reason.FOREIGN_FORM_NO,
                message,
            )
            # A new form to its filer, not a step of the other form: that form is left alone.
            return self._plan_return(name, data, sha, now, reading, [foreign], Step.NEW, "cs")
        is_stale = (stale is not None and sha != row.last_sent_sha) or (
            reading.history_rows is not None and reading.history_rows < row.transitions
        )
        if is_stale or not self._is_current_copy(row, reading):
            copies = self.ledger.form_copies(row.form_no)
            current = _shown(Path(copies[0][0]), self.ws.root) if copies else row.form_no
            what = f"这是退款单 {row.form_no} 的旧副本;该单已流转到「{STEP_NAMES[step]}」。"
            if not is_stale:
                problem = "不符" if reading.copy_token else "缺失"
                what = (
                    f"这不是最近一次发出的退款单 {row.form_no}"
                    f"(流转记录中的{COPY_TOKEN_LABEL[:-1]}{problem});"
                    f"该单正处于「{STEP_NAMES[step]}」。"
                )
            return self._reject(
                name,
                sha,
                now,
                data,
                what,
                f"请使用最新的文件({current}),不要重复提交旧文件,"
                "也不要删除其中的「流转记录」工作表。",
                Reason.STALE_COPY,
                form_no=row.form_no,
            )
        return self._route(name, data, sha, now, reading, step, row.snapshot)

    def _is_current_copy(self, row: FormRow, reading: FormReading) -> bool:
        """Does the file carry the token of the copy we delivered last?

        Required where the hand-off changes no field (forward to finance, feedback to the
        customer), since nothing else tells the current copy from another department's;
        elsewhere a token, when present, must still be the latest one.
        """
        if self.copy_key.matches(reading.copy_token, row.form_no, row.transitions):
            return True
        if reading.copy_token:
            return False  # an earlier copy's token
        # No token: fine where the person fills a block, and for copies sent before tokens.
        return Step(row.step) not in UNSIGNED_STEPS or row.step_since < self.copy_key.created

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
        supersedes: str | None = None
        if step is Step.NEW and form.order_no:
            other = self.ledger.form_by_order(form.order_no)
            if other is not None and self._closed_as_returned(other):
                supersedes = other.form_no  # a new application for the same order: linked
            elif other is not None:
                owner = (other.form_no, Step(other.step))
        resubmitted = step is Step.FINANCE_RETURNED and _finance_cleared(form, snapshot)
        ctx = Context(
            step=step,
            now=now,
            config=self.config,
            snapshot=snapshot,
            order_owner=owner,
            resubmission=resubmitted,
        )
        problems = validate(form, reading.problems, ctx)
        if problems:
            return self._plan_return(
                name, data, sha, now, reading, problems, step, WAITING_ON[step] or "cs"
            )
        form_no = form.form_no if step is not Step.NEW else None
        approvals = {b: form.blocks[b].approval for b in form.blocks}
        move = next_step(step, approvals, form.amount, self.config, resubmitted=resubmitted)
        if step is Step.NEW:
            form_no = self._new_form_no(now)
        assert form_no is not None
        actor = form.blocks[move.signed_block].by if move.signed_block else None
        detail: str | None = None
        if step is Step.NEW and fill_was_late(form.reported_at, now, self.config):
            detail = f"填单超时:上报后超过 {self.config.limits.fill_minutes} 分钟才提交"
        if move.to_step is Step.FINANCE_RETURNED and move.signed_block:
            detail = f"财务退回:{form.blocks[move.signed_block].opinion or ''}"
        if resubmitted:
            rounds = 1 + sum(
                e.kind == "accepted" and e.stamp == STAMP_FINANCE
                for e in self.ledger.events(form_no)
            )
            detail = f"重新提交财务(第 {rounds} 轮)"
        if move.signed_block and not self.config.has_roster(move.signed_block):
            # Kept in the event, so every later copy's 流转记录 still says so for this step.
            detail = f"{detail}\n{UNCHECKED_SIGNER}" if detail else UNCHECKED_SIGNER
        if supersedes:
            linked = f"同一订单的前一张退款单 {supersedes} 已退回办结,本单为重新申请"
            detail = f"{detail}\n{linked}" if detail else linked
        if step is Step.NEW and form.form_no and form.form_no != form_no:
            # The filer typed a number of their own: say which number the form got instead.
            typed_no = f"填单人填写的编号「{form.form_no}」不是系统编号,本单编号为 {form_no}"
            detail = f"{detail}\n{typed_no}" if detail else typed_no
        if form.typed:
            # The routed copy carries the clean value; 流转记录 keeps what the person typed.
            typed = _typed_note(form)
            detail = f"{detail}\n{typed}" if detail else typed
        from_role = WAITING_ON[step]
        # A tool that re-saved the form dropped the version mark; the routed copy gets it back,
        # and the event keeps the note, so every later copy's 流转记录 still says so.
        restore: dict[str, str] = {}
        if reading.version_mark_missing:
            restore = {VERSION_PROPERTY: f'"{TEMPLATE_VERSION}"'}
            detail = f"{detail}\n{MARK_RESTORED}" if detail else MARK_RESTORED
        history = [
            *(
                _history_row(
                    e.at, e.to_step, e.from_role, e.to_role, e.actor, e.file_name, e.detail
                )
                for e in self.ledger.events(form_no)
                if e.kind == "accepted"
            ),
            _history_row(now, move.to_step, from_role, move.to_role, actor, name, detail),
        ]
        if move.to_step is Step.FINANCE_RETURNED:
            # Where customer service reads it: what it can do with the returned form.
            *row, note = history[-1]
            history[-1] = (*row, f"{note};{FINANCE_RETURNED_CHOICES}")
        # The copy we send now is the form's len(history)-th hand-off: its token proves it.
        token = self.copy_key.token(form_no, len(history))
        header = (*HISTORY_HEADER, f"{COPY_TOKEN_LABEL}{token}")
        cell = form.cells.get("form_no", FIELDS_BY_NAME["form_no"].cell)
        clean = _clean_values(form)
        patched = apply_patch(
            data,
            Patch(
                sheet=form.sheet,
                cell_values={**clean, cell: form_no},
                history_rows=[header, *history],
                missing_names=restore,
            ),
        )
        out_name = f"{form_no}.xlsx"
        earlier = self._earlier_copies(form_no, name, sha, from_role)
        if move.to_role is None:
            dest = self.ws.sheets / "归档" / now.strftime("%Y-%m") / out_name
            message = f"{form_no} 已办结归档"
            outcome = Outcome.CLOSED
        else:
            dest = self._free(self.ws.outbox(move.to_role) / out_name, reusing=earlier)
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
            supersedes=supersedes,
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
            take_away=earlier,
        )

    def _plan_return(
        self,
        name: str,
        data: bytes,
        sha: str,
        now: dt.datetime,
        reading: FormReading,
        problems: list[FieldProblem],
        step: Step,
        to_role: str,
    ) -> _Plan:
        """Send the form back to ``to_role`` with a 退回原因 sheet and the problem cells marked."""
        form = reading.form
        form_no = form.form_no if step is not Step.NEW else None
        rows = [
            (str(i), p.label, p.cell, p.message, _how_to_fix(p)) for i, p in enumerate(problems, 1)
        ]
        patched = apply_patch(
            data,
            Patch(
                sheet=form.sheet,
                return_rows=[RETURN_HEADER, *rows],
                highlight_cells=[p.cell for p in problems if p.cell],
            ),
        )
        earlier = self._earlier_copies(form_no, name, sha, to_role)
        returned = f"{form_no}-退回.xlsx" if form_no else _returned_name(name)
        dest = self._free(self.ws.outbox(to_role) / returned, reusing=earlier)
        reasons = "\n".join(f"{p.label}:{p.message}" for p in problems)
        message = f"退回{ROLE_NAMES[to_role]}:{len(problems)} 个问题"
        return _Plan(
            NewEvent(
                now,
                "returned",
                name,
                sha,
                form_no=form_no,
                from_step=step,
                to_step=step,
                to_role=to_role,
                out_sha=sha256(patched),
                detail=reasons,
            ),
            outputs=[(dest, patched)],
            result=Result(
                Outcome.RETURNED, name, message, form_no, to_role, problems=tuple(problems)
            ),
            take_away=earlier,
        )

    def _closed_as_returned(self, row: FormRow) -> bool:
        """Was the form closed without a refund (technical department or finance said no)?"""
        if row.closed_at is None:
            return False
        outcomes = [
            e.to_step
            for e in self.ledger.events(row.form_no)
            if e.kind == "accepted"
            and e.to_step in (Step.REFUNDED, Step.FINANCE_RETURNED, Step.TECH_REFUSED)
        ]
        return bool(outcomes) and outcomes[-1] != Step.REFUNDED

    def _free(
        self, dest: Path, *companions: str, reusing: list[tuple[Path, str]] | None = None
    ) -> Path:
        """The name a new file gets in a person's folder: free, and not a look-alike of one.

        Names of copies that are ``reusing``-ed (taken away first) count as free.
        """
        freed = {path.name for path, _ in reusing or ()}
        return next(free_names(dest, *companions, freed=freed))

    def _earlier_copies(
        self, form_no: str | None, name: str, sha: str, role: str | None
    ) -> list[tuple[Path, str]]:
        """Copies of this form we gave people that are still in their folders.

        Every earlier copy of a numbered form, and the file just dropped if its sender left
        an identical copy of it in their folder (a returned new form, fixed and copied back).
        """
        outbox = self.ws.root / "outbox"
        copies: list[tuple[Path, str]] = []
        if form_no:
            for dest, delivered in self.ledger.form_copies(form_no):
                path = Path(dest)
                if outbox in path.parents and path.is_file() and not path.is_symlink():
                    copies.append((path, delivered))
        if role:
            left = self.ws.outbox(role) / name
            if (
                name.endswith("退回.xlsx")
                and all(left != path for path, _ in copies)
                and left.is_file()
                and not left.is_symlink()
                and sha256_of(left) == sha
            ):
                copies.append((left, sha))
        return copies

    def _new_form_no(self, now: dt.datetime) -> str:
        prefix = f"{self.config.form_no_prefix}{now:%Y%m%d}-"
        if self._numbers_sent is None:
            self._numbers_sent = form_numbers_sent(self.ws.sheets, self.config.form_no_prefix)
        number = self.ledger.forms_created_on(prefix) + 1
        # Skip numbers already given: in the archive though not in the ledger, or in the
        # ledger above a gap such a skip left.
        while (
            f"{prefix}{number:03d}" in self._numbers_sent
            or self.ledger.form(f"{prefix}{number:03d}") is not None
        ):
            number += 1
        return f"{prefix}{number:03d}"

    def _reject(
        self,
        name: str,
        sha: str,
        now: dt.datetime,
        data: bytes | None,
        what: str,
        hint: str,
        reason: Reason,
        *,
        form_no: str | None = None,
    ) -> _Plan:
        """The file back in outbox/rejected/ with ``<its name>.退回原因.txt`` beside it.

        ``data`` None: the file is over the size limit and is moved there, not copied.
        """
        text = _reply_text(name, now, what, hint)
        # One free name for the pair, so "x (2).xlsx" gets "x (2).xlsx.退回原因.txt".
        dest = self._free(self.ws.rejected / safe_name(name), REPLY_SUFFIX)
        reply = dest.with_name(dest.name + REPLY_SUFFIX)
        return _Plan(
            NewEvent(now, "rejected", name, sha, form_no=form_no, detail=f"{reason}: {what}"),
            outputs=[(dest, data), (reply, text)] if data is not None else [(reply, text)],
            result=Result(Outcome.REJECTED, name, f"退回:{what}", form_no),
            move_to=dest if data is None else None,
        )

    def _too_large(self, name: str, sha: str, now: dt.datetime, size: int) -> _Plan:
        limit_mb = self.config.max_file_mb
        return self._reject(
            name,
            sha,
            now,
            None,
            f"文件太大({size / 1024 / 1024:.1f} MB),退款申请表不会超过 {limit_mb} MB。",
            "请确认放入的是退款申请表;如表中粘贴了大图片,请压缩图片后再保存。",
            Reason.TOO_LARGE,
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
        self,
        plan: _Plan,
        path: Path,
        seen: Identity,
        sha: str,
        received: Path,
        *,
        identity: Identity | None = None,
    ) -> Result:
        """Archive the outputs, commit everything in one transaction, then deliver.

        ``seen`` gives the receipt's size and time; ``identity`` (None when replaying) is what
        the inbox file must still be for it to be taken out.
        """
        deliveries = []
        for dest, payload in plan.outputs:
            out_sha = sha256(payload)
            kept = archive_path(self.ws.sheets, SENT, plan.event.at, out_sha, dest.name)
            if self._deliver:
                # Not fsynced: outputs can be made again from the received archive (rebuild).
                kept = write_exclusive(kept, payload)
            deliveries.append((str(kept.relative_to(self.ws.sheets)), str(dest), out_sha))
        if plan.move_to is not None:
            # The received archive copy itself goes to the person: moved, then linked.
            deliveries.append((str(received.relative_to(self.ws.sheets)), str(plan.move_to), sha))
        receipt_id = self.ledger.record(
            event=plan.event,
            receipt=(
                path.name,
                seen.size,
                seen.mtime_ns,
                str(received.relative_to(self.ws.sheets)),
            ),
            update=plan.update,
            deliveries=deliveries,
            sent_shas=[d[2] for d in deliveries] if plan.sent else [],
        )
        if self._deliver:
            self._take_away(plan.take_away, plan.event.at)
        delivered, failed = self._finish(receipt_id, path, sha, identity, in_inbox=True)
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
            tuple(failed),
        )

    def _finish(
        self,
        receipt_id: int,
        inbox_file: Path,
        sha: str,
        identity: Identity | None,
        *,
        in_inbox: bool,
    ) -> tuple[list[Path], list[str]]:
        """Deliver what is committed, then take the file out of the inbox. Idempotent.

        A delivery that fails is logged and left pending (retried later), and does not keep
        the file in the inbox: its outcome is committed and every byte archived. Returns the
        delivered paths and, for each failed delivery, where and why in Chinese.
        """
        delivered: list[Path] = []
        failed: list[str] = []
        done: list[int] = []
        for delivery in self.ledger.deliveries(receipt_id):
            dest = Path(delivery.dest)
            if not delivery.done and self._deliver:
                try:
                    dest = self._deliver_one(delivery, inbox_file, identity)
                except OSError as exc:
                    failed.append(f"{_shown(dest, self.ws.root)}({os_problem(exc)})")
                    log.warning("could not deliver %s (%s): will retry", dest, exc)
                    continue
            delivered.append(dest)
            done.append(delivery.id)
        if self._deliver and in_inbox:
            remove_if_unchanged(inbox_file, sha, identity)
        # One commit for all marks: a crash before it only repeats idempotent deliveries.
        self.ledger.finish_receipt(receipt_id, done, complete=not failed)
        return delivered, failed

    def _take_away(self, copies: list[tuple[Path, str]], now: dt.datetime) -> None:
        """Remove our earlier copies from people's folders; archive a person's edits first.

        Tidying only: a copy that cannot be taken away stays, and nothing is ever lost (our
        bytes are in the archive, a copy edited in place is archived before it goes).
        """
        for path, delivered in copies:
            hold = take_aside(path)
            if hold is None:
                continue
            try:
                if kind_of(os.lstat(hold)) is not EntryKind.FILE:
                    put_back(hold, path)
                    continue
                current = sha256_of(hold)
                if current != delivered:
                    kept = archive_path(self.ws.sheets, SUPERSEDED, now, current, path.name)
                    write_exclusive(kept, hold.read_bytes())
                hold.unlink()
                log.info("took the earlier copy %s away", _shown(path, self.ws.root))
            except OSError as exc:
                log.warning("could not take the earlier copy %s away: %s", path, exc)
                if hold.exists():
                    put_back(hold, path)

    def _deliver_one(self, delivery: Delivery, inbox_file: Path, identity: Identity | None) -> Path:
        dest = Path(delivery.dest)
        source = self.ws.sheets / delivery.source
        if delivery.source.startswith(f"archive/{RECEIVED}/"):
            return self._deliver_moved(source, dest, inbox_file, identity, delivery.sha)
        return place_exact(dest, source.read_bytes(), durable=False)

    def _deliver_moved(
        self, source: Path, dest: Path, inbox_file: Path, identity: Identity | None, sha: str
    ) -> Path:
        """Move an over-sized file into the archive, then give the person a link to it.

        Nothing is read whole and nothing is copied where a link can be made. A file that is
        not what was hashed any more (saved again meanwhile) goes back to the inbox instead.
        """
        if not source.exists():
            source.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(inbox_file, source)
            except FileNotFoundError:
                log.warning("%s left inbox/ before it could be archived", inbox_file.name)
                return dest
            moved = os.lstat(source)
            unchanged = (
                Identity.of(moved) == identity
                if identity is not None
                else kind_of(moved) is EntryKind.FILE and sha256_of(source) == sha
            )
            if not unchanged:
                put_back(source, inbox_file)
                log.info("%s changed before it was archived: left for the next pass", dest.name)
                return dest
            os.chmod(source, 0o444)  # the archive copy and the person's link share the bytes
        if dest.exists() and os.path.samefile(dest, source):
            return dest
        for n in range(1, 10_000):
            candidate = numbered(dest, n)
            try:
                os.link(source, candidate)
            except FileExistsError:
                continue
            except OSError:  # another file system, or links not allowed: copy instead
                tmp = candidate.with_name(f".{candidate.name}.{os.getpid()}.part")
                shutil.copyfile(source, tmp)
                try:
                    os.link(tmp, candidate)
                finally:
                    tmp.unlink()
            return candidate
        raise FileExistsError(f"no free name for {dest}")


_ENTRY_TEXTS: dict[EntryKind, tuple[str, str, str]] = {
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


def _shown(path: Path, root: Path) -> str:
    """A path as staff see it: relative to the workspace when it is inside."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _clean_values(form: RefundForm) -> dict[str, str | float]:
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


def _typed_note(form: RefundForm) -> str:
    canonical = form.canonical()
    changes = ";".join(
        f"{FIELDS_BY_NAME[name].label}「{typed}」→ {canonical[name]}"
        for name, typed in form.typed.items()
    )
    return f"已规范:{changes}"


def _finance_cleared(form: RefundForm, snapshot: dict[str, str] | None) -> bool:
    """Did customer service empty every finance block of a form finance had filled?"""
    names = [f.name for role in FINANCE_ROLES for f in BLOCK_FIELDS[role]]
    current = form.canonical()
    had = any((snapshot or {}).get(name, "") for name in names)
    return had and not any(current.get(name, "") for name in names)


def _history_row(
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
        iso(at) or "",
        STEP_NAMES[Step(to_step)] if to_step else "",
        ROLE_NAMES.get(from_role or "", ""),
        ROLE_NAMES.get(to_role or "", "归档"),
        actor or "",
        file_name,
        (detail or "").replace("\n", ";"),
    )


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


def _reply_text(
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
