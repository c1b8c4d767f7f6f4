"""``process_file()``: one dropped file in, exactly one answer out, nothing lost.

The order of work is what makes a kill -9 at any instant safe:

1. archive the received bytes (write-once, fsynced) — before anything else;
2. decide (sniff and read in the sandbox, validate, route) and build every output in memory;
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
import sqlite3
from collections.abc import Callable
from pathlib import Path

from . import copies, handover_intake, replies
from .archive import (
    RECEIVED,
    SENT,
    archive_path,
    form_numbers_sent,
    place_new,
    safe_name,
    sha256,
    write_exclusive,
)
from .calendar import WorkCalendar
from .copytoken import CopyKey
from .delivery import Deliverer, shown
from .errors import FileRejected, Reason, StorageError, storage_error
from .examine import Examined, examine
from .forms import FieldProblem, FormReading
from .inboxfile import (
    ChangedWhileReading,
    EntryKind,
    Identity,
    read_dropped,
    sha256_of,
)
from .layout import (
    FIELDS_BY_NAME,
)
from .ledger import (
    Delivery,
    EventKind,
    FormRow,
    Ledger,
    NewEvent,
    NewReceipt,
    PlannedDelivery,
    Receipt,
)
from .ledgercheck import open_ledger
from .plans import Intake, Outcome, Plan, Result
from .recovery import release_held_files, remove_partial_writes_of, set_aside_orphans
from .replies import (
    REPLY_SUFFIX,
    reply_text,
)
from .routing import (
    UNSIGNED_STEPS,
    WAITING_ON,
    Step,
)
from .sandbox import ParserPool
from .stats_intake import plan_signed_table
from .validation import Context, validate
from .workspace import Workspace
from .xlsxpatch import PatchError
from .zipread import ZipLimits

__all__ = ["Outcome", "Processor", "Result"]  # Outcome and Result: said by every caller

log = logging.getLogger(__name__)


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
        self.deliverer = Deliverer(workspace, self.ledger, enabled=deliver)
        self.zip_limits = ZipLimits.for_max_file_mb(self.config.max_file_mb)
        # Rebuild's look-up of the copies archived when a received file was first processed:
        # (received archive copy, time, name sent as) -> those very bytes, or None.
        self.sent_copies: Callable[[Path, dt.datetime, str], bytes | None] | None = None
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
        set_aside_orphans(self.ws, self.ledger)
        remove_partial_writes_of(self.ws)
        release_held_files(self.ws, self.ledger)
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
        delivered, failed = self.deliverer.finish(
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
            log.info("%s 在读取时发生变动:留待下一轮处理", path.name)
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
                return self._answer_entry(path)
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

    def replay(
        self, archived: Path, at: dt.datetime, name: str, examined: Examined | None = None
    ) -> Result:
        """Process an archived received file again, as of ``at`` (for ``rebuild``).

        Nothing is archived or delivered: that happened when the file first arrived.
        ``examined``: the worker's answer for the file, asked ahead of its turn
        (:func:`examine_archived`).
        """
        st = archived.stat()
        # The receipt records the size; the time a file arrived is in its archive name.
        seen = Identity(st.st_dev, st.st_ino, st.st_size, 0)
        if st.st_size > self.config.max_file_mb * 1024 * 1024:
            sha = sha256_of(archived)
            plan = self._too_large(name, sha, at, st.st_size)
            return self._commit_and_deliver(plan, self.ws.inbox / name, seen, sha, archived)
        data = archived.read_bytes()
        sha = sha256(data)
        previous = self.ledger.receipts_for(sha)
        if previous:
            plan = self._duplicate(name, sha, at, previous[0].received_at, data)
        else:
            plan = self._decide(name, data, sha, at, examined=examined, archived=archived)
        return self._commit_and_deliver(plan, self.ws.inbox / name, seen, sha, archived)

    def _answer_entry(self, path: Path) -> Result:
        """A link, hard link, folder or special file: answered without reading through it."""
        answer = self.deliverer.answer_entry(path, self.clock())
        if answer is None:  # replaced by a plain file meanwhile: read it next pass
            return Result(Outcome.WAITING, path.name, "文件刚被替换,稍后再处理")
        what, reply = answer
        return Result(Outcome.REJECTED, path.name, f"退回:{what}", delivered=(reply,))

    def _decide(
        self,
        name: str,
        data: bytes,
        sha: str,
        now: dt.datetime,
        *,
        while_reading: Callable[[], object] | None = None,
        examined: Examined | None = None,
        archived: Path | None = None,
    ) -> Plan:
        """The gates a file passes, in order: the first that answers decides.

        The size limit was checked before the file was read (see :meth:`_too_large`).
        """
        intake = Intake(
            name, data, sha, now, while_parsing=while_reading, examined=examined, archived=archived
        )
        try:
            return (
                self.check_kind(intake)
                or self.check_other_document(intake)
                or self.read(intake)
                or self.check_closed(intake)
                or self.check_foreign_number(intake)
                or self.check_stale(intake)
                or self.check_fields(intake)
                or self.plan_hand_off(intake)
            )
        except PatchError as exc:
            # Readable, but our sheets cannot be written into it (e.g. 编号 holds a formula).
            return self.reject(intake, exc.message, exc.hint, exc.reason)

    def check_kind(self, intake: Intake) -> Plan | None:
        """Only an xlsx workbook goes on; anything else is answered by what it is.

        The sandboxed worker decides, and reads a workbook as a form in the same call
        (:func:`examine`): this process opens no untrusted zip to tell what a file is.
        ``rebuild`` may have asked the worker ahead of the file's turn.
        """
        if intake.examined is None:
            try:
                intake.examined = self.pool.run(
                    examine,
                    intake.content,
                    intake.name,
                    self.zip_limits,
                    while_waiting=intake.while_parsing,
                )
            except FileRejected as exc:  # the parser crashed or timed out
                return self.reject(intake, exc.message, exc.hint, exc.reason)
        sniffed = intake.examined.sniffed
        if sniffed.accepted:
            return None
        return self.reject(intake, sniffed.description, sniffed.hint, sniffed.reason)

    def check_other_document(self, intake: Intake) -> Plan | None:
        """Our other documents take their own path: a filled handover sheet is checked and
        handed to the next shift (handover_intake.py), a statistics table signed by its
        department head is filed for 行政部 (stats_intake.py). The worker told them apart
        only after the form reader called the workbook foreign, so a refund form pays nothing
        here. Anything else goes on to ``read``."""
        assert intake.examined is not None, "the kind gate runs first"
        if intake.examined.handover is not None:
            return handover_intake.plan(self, intake, intake.examined.handover)
        if intake.examined.table is not None:
            return plan_signed_table(self, intake, intake.examined.table)
        return None

    def read(self, intake: Intake) -> Plan | None:
        """The form as the worker read it; find what the ledger knows of its number."""
        assert intake.examined is not None, "the kind gate runs first"
        refused = intake.examined.refused
        if refused is not None:
            return self.reject(intake, refused.message, refused.hint, refused.reason)
        intake.reading = intake.examined.reading
        assert intake.reading is not None  # an accepted workbook is read or refused
        form_no = intake.reading.form.form_no
        intake.row = self.ledger.form(form_no) if form_no else None
        intake.step = Step(intake.row.step) if intake.row else Step.NEW
        return None

    def check_closed(self, intake: Intake) -> Plan | None:
        """A closed form takes nothing more."""
        row = intake.row
        if row is None or intake.step is not Step.CLOSED:
            return None
        what, hint = replies.closed_form(row.form_no, row.closed_at)
        return self.reject(intake, what, hint, Reason.FORM_CLOSED)

    def check_foreign_number(self, intake: Intake) -> Plan | None:
        """Another form's number in a new form goes back to its filer; that form is left alone."""
        row, form = intake.row, intake.form
        if (
            row is None
            or not (form.order_no and row.order_no and form.order_no != row.order_no)
            or self.ledger.sent_copy(intake.sha) is not None
        ):
            return None
        foreign = FieldProblem(
            "form_no",
            "编号",
            form.cells.get("form_no", FIELDS_BY_NAME["form_no"].cell),
            Reason.FOREIGN_FORM_NO,
            replies.foreign_form_no(row.form_no, row.order_no, form.order_no or ""),
        )
        intake.step = Step.NEW
        return copies.plan_return(self, intake, [foreign], "cs")

    def check_stale(self, intake: Intake) -> Plan | None:
        """An earlier copy, or one that cannot prove it is the copy we delivered last."""
        row, reading = intake.row, intake.reading
        if row is None or reading is None:
            return None
        sent = self.ledger.sent_copy(intake.sha)
        old = (sent is not None and intake.sha != row.last_sent_sha) or (
            reading.history_rows is not None and reading.history_rows < row.transitions
        )
        if not old and self._is_current_copy(row, reading):
            return None
        copies = self.ledger.form_copies(row.form_no)
        current = shown(Path(copies[0].dest), self.ws.root) if copies else row.form_no
        what, hint = replies.stale_copy(
            row.form_no, intake.step, current, token=reading.copy_token, old=old
        )
        return self.reject(intake, what, hint, Reason.STALE_COPY, form_no=row.form_no)

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

    def check_fields(self, intake: Intake) -> Plan | None:
        """Validate the fields due at this step; problems go back to whoever must fix them."""
        form, step = intake.form, intake.step
        snapshot = intake.row.snapshot if intake.row else None
        owner = None
        if step is Step.NEW and form.order_no:
            other = self.ledger.form_by_order(form.order_no)
            if other is not None and self._closed_as_returned(other):
                intake.supersedes = other.form_no  # a new application for the order: linked
            elif other is not None:
                owner = (other.form_no, Step(other.step))
        intake.resubmitted = step is Step.FINANCE_RETURNED and copies.finance_cleared(
            form, snapshot
        )
        ctx = Context(
            step=step,
            now=intake.now,
            config=self.config,
            snapshot=snapshot,
            order_owner=owner,
            resubmission=intake.resubmitted,
        )
        problems = validate(form, intake.reading.problems if intake.reading else (), ctx)
        if not problems:
            return None
        return copies.plan_return(self, intake, problems, WAITING_ON[step] or "cs")

    def plan_hand_off(self, intake: Intake) -> Plan:
        """The form moves on: number it, note what happened, and make the routed copy
        (:func:`copies.plan_hand_off`)."""
        return copies.plan_hand_off(self, intake)

    def _closed_as_returned(self, row: FormRow) -> bool:
        """Was the form closed without a refund (technical department or finance said no)?"""
        if row.closed_at is None:
            return False
        outcomes = [
            e.to_step
            for e in self.ledger.events(row.form_no)
            if e.kind == EventKind.ACCEPTED
            and e.to_step in (Step.REFUNDED, Step.FINANCE_RETURNED, Step.TECH_REFUSED)
        ]
        return bool(outcomes) and outcomes[-1] != Step.REFUNDED

    def new_form_no(self, now: dt.datetime) -> str:
        """The next free form number of the day (never one the archive already gave)."""
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

    def reject(
        self,
        intake: Intake,
        what: str,
        hint: str,
        reason: Reason,
        *,
        form_no: str | None = None,
    ) -> Plan:
        """The file back in outbox/rejected/ with ``<its name>.退回原因.txt`` beside it.

        No data (a file over the size limit): the file is moved there, not copied.
        """
        name, now, data = intake.name, intake.now, intake.data
        text = reply_text(name, now, what, hint)
        # One free name for the pair, so "x (2).xlsx" gets "x (2).xlsx.退回原因.txt".
        dest = self.deliverer.free_name(self.ws.rejected / safe_name(name), REPLY_SUFFIX)
        reply = dest.with_name(dest.name + REPLY_SUFFIX)
        return Plan(
            NewEvent(
                now,
                EventKind.REJECTED,
                name,
                intake.sha,
                form_no=form_no,
                detail=f"{reason}: {what}",
            ),
            outputs=[(dest, data), (reply, text)] if data is not None else [(reply, text)],
            result=Result(Outcome.REJECTED, name, f"退回:{what}", form_no),
            move_to=dest if data is None else None,
        )

    def _too_large(self, name: str, sha: str, now: dt.datetime, size: int) -> Plan:
        """A file over ``[parse] max_file_mb``: never read, moved to outbox/rejected/."""
        what, hint = replies.too_large(size, self.config.max_file_mb)
        return self.reject(Intake(name, None, sha, now), what, hint, Reason.TOO_LARGE)

    def _duplicate(
        self, name: str, sha: str, now: dt.datetime, first: dt.datetime, data: bytes
    ) -> Plan:
        """The very same bytes again: answered, not processed twice."""
        what, hint = replies.already_received(first)
        plan = self.reject(Intake(name, data, sha, now), what, hint, Reason.ALREADY_RECEIVED)
        plan.event = NewEvent(now, EventKind.DUPLICATE, name, sha, detail=what)
        plan.result = Result(Outcome.DUPLICATE, name, f"已于 {first:%Y-%m-%d %H:%M} 收到")
        return plan

    # ---- committing and delivering ---------------------------------------------------------
    def _commit_and_deliver(
        self,
        plan: Plan,
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
        deliveries: list[PlannedDelivery] = []
        for dest, payload in plan.outputs:
            out_sha = sha256(payload)
            kept = archive_path(self.ws.sheets, SENT, plan.event.at, out_sha, dest.name)
            if self.deliverer.enabled:
                # Not fsynced: outputs can be made again from the received archive (rebuild).
                kept = write_exclusive(kept, payload)
            deliveries.append(
                PlannedDelivery(str(kept.relative_to(self.ws.sheets)), str(dest), out_sha)
            )
        if plan.move_to is not None:
            # The received archive copy itself goes to the person: moved, then linked.
            source = str(received.relative_to(self.ws.sheets))
            deliveries.append(PlannedDelivery(source, str(plan.move_to), sha))
        receipt_id = self.ledger.record(
            event=plan.event,
            receipt=NewReceipt(
                path.name, seen.size, seen.mtime_ns, str(received.relative_to(self.ws.sheets))
            ),
            update=plan.update,
            deliveries=deliveries,
            sent_shas=[d.sha for d in deliveries] if plan.sent else [],
        )
        if self.deliverer.enabled:
            self.deliverer.take_away(plan.take_away, plan.event.at)
        delivered, failed = self.deliverer.finish(receipt_id, path, sha, identity, in_inbox=True)
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
