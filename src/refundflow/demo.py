"""``refundflow demo``: a month of refunds played through the real pipeline, in a new workspace.

Nothing is simulated below the staff: each form is typed into the template (:mod:`fillin`),
dropped in ``inbox/`` and answered by :class:`Processor` with the demo's clock; the next person
takes the routed copy out of their ``outbox/`` folder, fills their block and drops it back.
The shift handover sheets, the status board, the breaches and the month's statistics are
written by the same library calls the watcher and ``refundflow report`` use.

The playback is a set of stories (one per refund, one for the shift ends) that each say when
they act next; the earliest acts first, so forms interleave as they would in an office. A
story whose next act falls after the month is over stops there: its form stays open.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .breaches import BREACH_NAMES, BreachKind
from .calendar import Month, WorkCalendar
from .config import CONFIG_FILE, Config, load_config
from .demoplan import ROSTER, Fate, Plan, Refund, plan_month
from .errors import Reason, RefundflowError
from .fillin import Value, fill_in
from .handover import HandoverWriter, shift_window
from .layout import REFUND_TEMPLATE_FILE
from .monthend import ReportFiles, produce
from .processor import Outcome, Processor, Result
from .routing import STEP_NAMES, Step
from .sandbox import ParserPool
from .upkeep import Upkeep
from .workspace import (
    INBOX,
    OUTBOX,
    SHEETS,
    TEMPLATES,
    Workspace,
    WorkspaceLock,
    init_templates,
    init_workspace,
)

log = logging.getLogger(__name__)

MARKER = ".refundflow-demo"
MARKER_TEXT = (
    "这个文件夹是 refundflow demo 生成的演示工作区。\n"
    "再次运行 refundflow demo 会清空其中的 inbox/ outbox/ refundsheets/ templates/ 和 "
    "refundflow.toml 并重新生成;其他文件不动。\n"
)
_DEMO_ENTRIES = (INBOX, OUTBOX, SHEETS, TEMPLATES, CONFIG_FILE)
OFFICE_TIMEOUT = 240  # seconds for LibreOffice to open and save one form, cold start included
TECH_REFUSAL = "经核查扣款未成功,系银行预授权,将自动解冻"
FINANCE_RETURN = "银行流水未查到该笔扣款"


# How `process` and `watch` mark each file's answer (cli/run.py), in the summary's order.
_ANSWERS = (
    (Outcome.ROUTED, "已流转"),
    (Outcome.CLOSED, "已归档"),
    (Outcome.RETURNED, "已退回"),
    (Outcome.REJECTED, "已拒收"),
    (Outcome.DUPLICATE, "重复件"),
)


class _Surprise(Exception):
    """The pipeline answered a step differently from the script: the story stops there."""


@dataclass
class DemoReport:
    """What happened, for the summary."""

    root: Path
    month: Month
    files: int = 0  # files dropped in inbox/ and answered
    outcomes: Counter[Outcome] = field(default_factory=Counter)  # their answers
    endings: Counter[str] = field(default_factory=Counter)  # closed forms by how they ended
    still_open: Counter[str] = field(default_factory=Counter)  # open forms by step name
    breaches: Counter[str] = field(default_factory=Counter)
    mobile_fixed: int = 0
    duplicate_returned: int = 0
    office_saved: int = 0
    surprises: list[str] = field(default_factory=list)
    first_files: list[tuple[Path, str]] = field(default_factory=list)  # (path, what it is)

    def summary(self) -> list[str]:
        """The closing lines the command prints, in Chinese; paths relative to the root."""
        closed = sum(self.endings.values())
        ended = "、".join(f"{name} {n}" for name, n in self.endings.items() if n)
        waiting = "、".join(f"{name} {n}" for name, n in self.still_open.most_common())
        lines = [
            f"演示完成:{self.month.label} 共 {closed + sum(self.still_open.values())} 张退款单,"
            f"真实流程处理了 {self.files} 个放入 inbox/ 的文件",
            "逐个文件的处理结果:"
            + "、".join(f"{name} {self.outcomes[o]}" for o, name in _ANSWERS if self.outcomes[o]),
            f"已办结 {closed} 张({ended})",
            f"月底仍在流转 {sum(self.still_open.values())} 张"
            + (f"({waiting})" if waiting else ""),
            f"退回修改:手机号填错退回后改正 {self.mobile_fixed} 张,"
            f"重复订单号退回 {self.duplicate_returned} 份(客服已删除)",
            f"超时 {sum(self.breaches.values())} 次"
            + (
                ":" + "、".join(f"{k} {n}" for k, n in self.breaches.items())
                if self.breaches
                else ""
            ),
        ]
        if self.office_saved:
            lines.append(f"用 LibreOffice 保存后放入的退款单 {self.office_saved} 张,照常流转")
        lines += [f"意外:{s}" for s in self.surprises]
        lines.append("先打开这些文件(在演示工作区中):")
        lines += [f"  {path.relative_to(self.root)}:{what}" for path, what in self.first_files]
        return lines


def check_folder(root: Path) -> None:
    """Refuse a folder that holds anything but a previous demo."""
    if root.exists() and not root.is_dir():
        raise RefundflowError(
            f"{root} 是一个文件,不是文件夹",
            reason=Reason.DEMO_FOLDER_TAKEN,
            hint="请用 --root 指定一个新的文件夹,演示会在其中生成工作区",
        )
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise RefundflowError(
            f"{root} 不是空文件夹,也不是以前生成的演示工作区,演示不会改动其中的文件",
            reason=Reason.DEMO_FOLDER_TAKEN,
            hint="请用 --root 指定一个新的或空的文件夹,例如 refundflow demo --root demo2",
        )
    # Someone tried the demo workspace for real: what they dropped is never thrown away.
    dropped = sorted(p.name for p in (root / INBOX).iterdir()) if (root / INBOX).is_dir() else []
    if (root / MARKER).is_file() and dropped:
        raise RefundflowError(
            f"以前的演示工作区 {root} 的 inbox/ 中还有放入的文件:{'、'.join(dropped)},"
            "重新演示会清空工作区",
            reason=Reason.DEMO_FOLDER_TAKEN,
            hint="请先把这些文件移走(或用 refundflow process 处理掉),或用 --root 指定另一个文件夹",
        )


def _clear_previous(root: Path) -> None:
    """A previous demo's workspace goes (the marker vouches for it); other files stay."""
    for name in _DEMO_ENTRIES:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _with_roster(text: str) -> str:
    """The default refundflow.toml with the sample roster, checked strictly as in production."""
    text = text.replace("# require_roster = false", "require_roster = true", 1)
    # The commented examples of [roster] make way for the real lists (a TOML array of strings
    # is written like a JSON one).
    text = re.sub(rf"^# ({'|'.join(ROSTER)}) = \[.*\]\n", "", text, flags=re.MULTILINE)
    table = "".join(
        f"{role} = {json.dumps(list(people), ensure_ascii=False)}\n"
        for role, people in ROSTER.items()
    )
    return text.replace("\n[roster]\n", f"\n[roster]\n{table}", 1)


class OfficeSave:
    """One form opened and saved by LibreOffice in the background while the month plays
    (a cold LibreOffice start takes seconds; the playback need not wait for it)."""

    def __init__(self, soffice: str, data: bytes) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="refundflow-demo-office-")
        work = Path(self._scratch.name)
        self._out = work / "out" / "form.xlsx"
        (work / "form.xlsx").write_bytes(data)
        self._process = subprocess.Popen(
            [
                soffice,
                "--headless",
                f"-env:UserInstallation={(work / 'profile').as_uri()}",
                "--convert-to",
                "xlsx",
                "--outdir",
                str(self._out.parent),
                str(work / "form.xlsx"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # soffice starts soffice.bin under it: a group of its own to stop them together.
            start_new_session=True,
        )

    def result(self) -> bytes | None:
        """The saved form, or None when LibreOffice failed (the form goes as typed)."""
        try:
            code = self._process.wait(timeout=OFFICE_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("LibreOffice 未在 %d 秒内保存演示表单", OFFICE_TIMEOUT)
            self._stop()
            return None
        if code != 0 or not self._out.is_file() or self._out.stat().st_size == 0:
            log.warning("LibreOffice 无法保存演示表单(退出码 %s)", code)
            return None
        return self._out.read_bytes()

    def _stop(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def close(self) -> None:
        """Nothing of LibreOffice's outlives the demo, even when it stops early."""
        self._stop()
        self._scratch.cleanup()


Story = Iterator[dt.datetime]  # yields when it acts next; acts when resumed


@dataclass
class _Clock:
    """The demo's --now: set to each act's moment before the act."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


class _Player:
    """Plays the stories against one processor, on the demo's clock."""

    def __init__(
        self, workspace: Workspace, processor: Processor, plan: Plan, clock: _Clock
    ) -> None:
        self.ws = workspace
        self.processor = processor
        self.plan = plan
        self.clock = clock
        self.calendar = WorkCalendar(workspace.config)
        self.template = (workspace.templates / REFUND_TEMPLATE_FILE).read_bytes()
        self.report = DemoReport(workspace.root, plan.month)
        self.office: OfficeSave | None = None
        self.handovers: list[Path] = []
        self.upkeep = Upkeep(workspace, processor.ledger)
        self.forms: dict[int, str] = {}  # refund index -> form number

    @property
    def now(self) -> dt.datetime:
        return self.clock.now

    @now.setter
    def now(self, moment: dt.datetime) -> None:
        self.clock.now = moment

    # ---- what people do ------------------------------------------------------------------
    def drop(self, name: str, data: bytes, *expected: Outcome) -> Result:
        """Drop a file in inbox/ and let the pipeline answer it, as of now."""
        path = self.ws.inbox / name
        path.write_bytes(data)
        result = self.processor.process_file(path)
        self.report.files += 1
        self.report.outcomes[result.outcome] += 1
        if result.outcome not in expected:
            raise _Surprise(f"{self.now:%m-%d %H:%M} {name}:{result.message}")
        return result

    def outbox_copy(self, result: Result) -> Path:
        root = self.ws.root / OUTBOX
        return next(p for p in result.delivered if p.is_relative_to(root))

    def sign(self, copy: Path, values: dict[str, Value], *expected: Outcome) -> Result:
        """Take the copy out of one's folder, type into it, save, drop it back."""
        data = copy.read_bytes()
        copy.unlink()
        return self.drop(copy.name, fill_in(data, values) if values else data, *expected)

    def block(
        self, role: str, person: str, *, approve: bool = True, note: str = ""
    ) -> dict[str, Value]:
        opinion = "admin_followup" if role == "admin" else f"{role}_opinion"
        return {
            opinion: note or "核实无误,同意退款",
            f"{role}_by": person,
            f"{role}_date": self.now - dt.timedelta(minutes=1),
            f"{role}_approval": "同意" if approve else "不同意",
        }

    def new_form(self, refund: Refund, *, mobile: str) -> bytes:
        filed = self.now - dt.timedelta(minutes=1)
        return fill_in(
            self.template,
            {
                "reported_at": refund.reported,
                "fault": refund.fault,
                "mobile": mobile,
                "purchase_time": refund.reported - dt.timedelta(hours=3 + refund.index % 40),
                "bank": refund.bank,
                "order_no": refund.order_no,
                "amount": refund.amount,
                "customer_request": "要求全额退款",
                "submitter": refund.submitter,
                "submitted_at": filed,
                "handling_dept": "技术部",
                "cs_opinion": "客户反映扣款成功但未出票,申请退款",
                "cs_by": refund.lead,
                "cs_date": filed,
                "cs_approval": "同意",
            },
        )

    def next_workday_morning(self, rng: random.Random) -> dt.datetime:
        day = self.calendar.add_working_days(self.now, 1).date()
        return dt.datetime.combine(day, dt.time(9, 30)) + dt.timedelta(minutes=rng.randrange(90))

    # ---- the stories -----------------------------------------------------------------------
    def refund_story(self, refund: Refund) -> Story:
        rng = random.Random(f"{self.plan.month.label}-{refund.index}")

        def minutes(least: int, most: int) -> dt.timedelta:
            return dt.timedelta(minutes=rng.randint(least, most))

        yield refund.filed
        name = f"新单-{refund.order_no}.xlsx"
        if refund.bad_mobile:
            typo = self.new_form(refund, mobile=refund.mobile[:10])
            copy = self.outbox_copy(self.drop(name, typo, Outcome.RETURNED))
            yield self.now + minutes(2, 4)
            result = self.sign(copy, {"mobile": refund.mobile}, Outcome.ROUTED)
            self.report.mobile_fixed += 1
        else:
            data = self.new_form(refund, mobile=refund.mobile)
            if refund.via_office and self.office is not None:
                saved = self.office.result()
                if saved is not None:
                    data = saved
                    self.report.office_saved += 1
            result = self.drop(name, data, Outcome.ROUTED)
        if result.form_no is None:
            raise _Surprise(f"{name} 流转后没有编号")
        self.forms[refund.index] = result.form_no
        copy = self.outbox_copy(result)
        people = refund.signers

        yield self.now + minutes(15, 70)  # 技术部 checks the payment
        refused = refund.fate is Fate.TECH_REFUSED
        tech = self.block(
            "tech", people["tech"], approve=not refused, note=TECH_REFUSAL if refused else ""
        )
        copy = self.outbox_copy(self.sign(copy, tech, Outcome.ROUTED))
        if not refused:
            late = dt.timedelta(minutes=95)
            yield self.now + (late if refund.late_forward else minutes(5, 40))  # duty lead
            copy = self.outbox_copy(self.sign(copy, {}, Outcome.ROUTED))
            roles = ["cashier", "accountant", "director"]
            if refund.amount >= float(self.ws.config.president_threshold):
                roles.append("president")
            for role in roles:
                if role == "accountant" and refund.slow_finance:
                    yield self.next_workday_morning(rng) - dt.timedelta(minutes=20)
                else:
                    yield self.now + minutes(15, 80)
                returned = refund.fate is Fate.FINANCE_RETURNED and role == refund.returned_by
                values = self.block(
                    role,
                    people[role],
                    approve=not returned,
                    note=FINANCE_RETURN if returned else "",
                )
                copy = self.outbox_copy(self.sign(copy, values, Outcome.ROUTED))
                if returned:
                    break
        yield self.now + minutes(10, 45)  # customer service tells the customer
        copy = self.outbox_copy(self.sign(copy, {}, Outcome.ROUTED))
        yield self.next_workday_morning(rng)  # 行政部 follows up and files it
        note = (
            "已电话回访客户,处理结果已告知"
            if refund.fate is not Fate.REFUNDED
            else "已回访,客户确认退款到账"
        )
        self.sign(copy, self.block("admin", people["admin"], note=note), Outcome.CLOSED)

    def duplicate_story(self, original: Refund) -> Story:
        """Another colleague files the same order again: it comes back, and is thrown away."""
        yield original.reported + dt.timedelta(minutes=30)
        colleague = next(p for p in ROSTER["cs"] if p not in (original.submitter, original.lead))
        again = replace(original, submitter=colleague)
        result = self.drop(
            f"补单-{original.order_no}.xlsx",
            self.new_form(again, mobile=again.mobile),
            Outcome.RETURNED,
        )
        self.report.duplicate_returned += 1
        yield self.now + dt.timedelta(minutes=10)
        self.outbox_copy(result).unlink()

    def shift_ends(self) -> Story:
        """Before each shift ends: its handover sheet; at the day's end, breaches and board."""
        writer = HandoverWriter(self.ws)
        lead = dt.timedelta(minutes=self.ws.config.handover_before_end_minutes)
        for day in self.plan.workdays:
            for shift in self.ws.config.shifts:
                window = shift_window(shift, day)
                yield window.end - lead
                self.handovers.append(writer.write(self.processor.ledger, window, now=self.now))
            self.upkeep.after_change(self.now)

    # ---- the month -------------------------------------------------------------------------
    def play(self, end: dt.datetime, progress: Callable[[int], None]) -> None:
        """Every story's acts in time order, up to ``end``."""
        stories: list[Story] = [self.refund_story(r) for r in self.plan.refunds]
        stories.append(self.duplicate_story(self.plan.refunds[self.plan.duplicate_of]))
        stories.append(self.shift_ends())
        queue: list[tuple[dt.datetime, int, Story]] = []
        for order, story in enumerate(stories):
            heapq.heappush(queue, (next(story), order, story))
        while queue:
            at, order, story = heapq.heappop(queue)
            if at > end:  # the month is over before this person acts: the form stays open
                progress(1)
                continue
            self.now = at
            try:
                heapq.heappush(queue, (next(story), order, story))
            except StopIteration:
                progress(1)
            except _Surprise as surprise:
                log.warning("演示中的一个流程中止:%s", surprise)
                self.report.surprises.append(str(surprise))
                progress(1)

    def tally(self) -> None:
        """Outcomes from the ledger: how closed forms ended, where open ones wait, breaches."""
        ledger = self.processor.ledger
        steps: dict[str, set[str]] = {}
        for event in ledger.events():
            if event.to_step and event.form_no:
                steps.setdefault(event.form_no, set()).add(event.to_step)
        report = self.report
        report.endings.update({"已退款": 0, "技术部不同意": 0, "财务退回": 0})
        for row in ledger.all_forms():
            if row.closed_at is None:
                report.still_open[STEP_NAMES[Step(row.step)]] += 1
            elif Step.TECH_REFUSED in steps.get(row.form_no, set()):
                report.endings["技术部不同意"] += 1
            elif Step.FINANCE_RETURNED in steps.get(row.form_no, set()):
                report.endings["财务退回"] += 1
            else:
                report.endings["已退款"] += 1
        kinds = Counter(BreachKind(b.kind) for b in ledger.breaches.recorded())
        report.breaches.update({BREACH_NAMES[k]: kinds[k] for k in BreachKind if kinds[k]})


def demo_size(forms: int) -> int:
    """How many progress steps :func:`play_demo` reports: one a story, one for the tables."""
    return forms + 3  # the refunds, the duplicate, the shift ends, the statistics


def play_demo(
    root: Path,
    *,
    month: Month,
    forms: int,
    soffice: str | None,
    progress: Callable[[int], None] = lambda _: None,
) -> DemoReport:
    """Build the demo workspace in ``root`` and play ``forms`` refunds over ``month``.

    ``soffice``: LibreOffice's program, to save one form with it; None skips that.
    Raises :class:`RefundflowError` for a folder that is not empty and not a previous demo.
    """
    check_folder(root)
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root.resolve(), Config())
    with WorkspaceLock(workspace, command="demo"):
        _clear_previous(root)
        (root / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        init_workspace(workspace)
        init_templates(workspace)
        config_file = workspace.root / CONFIG_FILE
        config_file.write_text(
            _with_roster(config_file.read_text(encoding="utf-8")), encoding="utf-8"
        )
        workspace = Workspace(workspace.root, load_config(workspace.root))
        config = workspace.config
        plan = plan_month(month, forms, config, office=soffice is not None)
        end = dt.datetime.combine(month.next_first, dt.time(9, 0))
        with ParserPool(
            memory_mb=config.parse_memory_mb, timeout=config.parse_timeout_seconds
        ) as pool:
            clock = _Clock(dt.datetime.combine(month.first, dt.time(0, 0)))
            processor = Processor(workspace, clock=clock, pool=pool)
            player = _Player(workspace, processor, plan, clock)
            try:
                office = next((r for r in plan.refunds if r.via_office), None)
                if office is not None and soffice is not None:
                    player.now = office.filed
                    player.office = OfficeSave(
                        soffice, player.new_form(office, mobile=office.mobile)
                    )
                player.play(end, progress)
                player.now = end
                player.upkeep.after_change(end)
                player.tally()
            finally:
                if player.office is not None:
                    player.office.close()
                processor.close()
        tables = produce(workspace, month, now=end)
        progress(1)
    _first_files(player, tables)
    return player.report


def _first_files(player: _Player, tables: ReportFiles) -> None:
    cs_table, finance_table, book = tables.delivered
    files = [
        (player.upkeep.board.path, "状态看板:月底每张未办结的单在哪个环节、等谁、期限"),
        (book, "行政部月度退款报表:汇总、核对、超时、明细、人员"),
        (cs_table, "客服退单统计表"),
        (finance_table, "财务退单统计表"),
    ]
    if player.handovers:
        files.append((player.handovers[-1], "最后一班的值班交接单"))
    archive = player.ws.sheets / "归档" / player.plan.month.label
    first = player.forms.get(0)
    if first and (archive / f"{first}.xlsx").is_file():
        files.append((archive / f"{first}.xlsx", "一张办结归档的退款单,看它的“流转记录”"))
    player.report.first_files = files
