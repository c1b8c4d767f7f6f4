"""What the processor's gates pass along and hand back: one file's intake, the plan of what
its processing commits and delivers, and the outcome said to the operator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .examine import Examined
from .forms import FieldProblem, FormReading, RefundForm
from .ledger import FormRow, FormUpdate, NewEvent
from .routing import Step


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
class Plan:
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


@dataclass
class Intake:
    """One readable file on its way through the gates, and what each gate learned of it."""

    name: str
    data: bytes | None  # None: over the size limit, never read
    sha: str
    now: dt.datetime
    # Parent-side work overlapped with the sandboxed parse (archiving the received bytes).
    while_parsing: Callable[[], object] | None = None
    # The worker's answer: set by the kind gate, or read ahead by rebuild (examine_archived).
    examined: Examined | None = None
    reading: FormReading | None = None  # set by the read gate
    row: FormRow | None = None  # what the ledger knows of the form's number, if anything
    step: Step = Step.NEW  # the step the form is at, by the ledger
    supersedes: str | None = None  # the order's earlier form, closed as returned
    resubmitted: bool = False  # finance returned it; customer service sends it again
    archived: Path | None = None  # replaying: the received file's archive copy

    @property
    def content(self) -> bytes:
        assert self.data is not None, "a file over the size limit never reaches the gates"
        return self.data

    @property
    def form(self) -> RefundForm:
        assert self.reading is not None, "the read gate runs first"
        return self.reading.form
