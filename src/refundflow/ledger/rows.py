"""The ledger's rows as typed values, and what one processed file adds to it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class EventKind(StrEnum):
    """What happened to one received file (events.kind)."""

    ACCEPTED = "accepted"  # the form moved on (or closed)
    RETURNED = "returned"  # a form with problems went back to whoever must fix them
    REJECTED = "rejected"  # not a form we can take: outbox/rejected/ with a reason
    DUPLICATE = "duplicate"  # the very same bytes again
    # A filled shift handover sheet (no form number; see handover_intake.py):
    HANDOVER_ACCEPTED = "handover_accepted"  # checked and sent on to the next shift
    HANDOVER_RETURNED = "handover_returned"  # back to customer service with its problems
    # A monthly statistics table signed by its department head, filed and sent to 行政部;
    # form_no holds the table's 编号 (KFTJ-/CWTJ-YYYY-MM), never a refund form's number.
    TABLE_SIGNED = "table_signed"


def iso(moment: dt.datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def parse_iso(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class FormRow:
    form_no: str
    order_no: str
    step: str
    waiting_on: str | None
    step_since: dt.datetime
    reported_at: dt.datetime | None
    amount: str | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    transitions: int
    last_sent_sha: str | None
    snapshot: dict[str, str]
    supersedes: str | None = None  # the order's earlier form, closed as returned


@dataclass(frozen=True)
class EventRow:
    id: int
    at: dt.datetime
    form_no: str | None
    kind: str
    from_step: str | None
    to_step: str | None
    from_role: str | None
    to_role: str | None
    actor: str | None
    stamp: str | None
    file_name: str
    file_sha: str
    out_sha: str | None
    detail: str | None


@dataclass(frozen=True)
class Receipt:
    id: int
    sha: str
    name: str
    size: int
    mtime_ns: int
    received_at: dt.datetime
    archive: str
    event_id: int
    state: str


@dataclass(frozen=True)
class Delivery:
    id: int
    receipt_id: int
    source: str
    dest: str
    sha: str
    done: bool


@dataclass(frozen=True)
class NewEvent:
    """What one processed file adds to the ledger (see :meth:`Ledger.record`)."""

    at: dt.datetime
    kind: str
    file_name: str
    file_sha: str
    form_no: str | None = None
    from_step: str | None = None
    to_step: str | None = None
    from_role: str | None = None
    to_role: str | None = None
    actor: str | None = None
    stamp: str | None = None
    out_sha: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class FormUpdate:
    """The form's new state after an accepted hand-off."""

    form_no: str
    order_no: str
    step: str
    waiting_on: str | None
    reported_at: dt.datetime | None
    amount: str | None
    snapshot: dict[str, str]
    closed: bool
    supersedes: str | None = None  # the order's earlier form, closed as returned


class NewReceipt(NamedTuple):
    """The received file one :meth:`Ledger.record` call is about."""

    name: str  # as it was dropped in inbox/
    size: int
    mtime_ns: int
    archive: str  # its archived copy, relative to refundsheets/


class PlannedDelivery(NamedTuple):
    """One copy to give a person once the commit is done (retried until it is)."""

    source: str  # the archived copy, relative to refundsheets/
    dest: str  # where the person finds it
    sha: str


class GivenCopy(NamedTuple):
    """A copy of a form given to a person (:meth:`Ledger.form_copies`)."""

    dest: str
    sha: str


class SentCopy(NamedTuple):
    """Which form a copy the watcher sent out belongs to, and at which step it was sent."""

    form_no: str
    step: str


@dataclass(frozen=True)
class ReturnedNew:
    """A new form returned to its filler before it got a number, and where its copy went."""

    at: dt.datetime
    file_name: str  # the name it was dropped under
    dest: str  # the returned copy, with its 退回原因 sheet
    detail: str | None


@dataclass(frozen=True)
class AnsweredFile:
    """A received file of some kind of event, and where its answer went first."""

    at: dt.datetime
    kind: str
    file_name: str
    dest: str | None
    detail: str | None


def form_row(r: sqlite3.Row) -> FormRow:
    return FormRow(
        form_no=r["form_no"],
        order_no=r["order_no"],
        step=r["step"],
        waiting_on=r["waiting_on"],
        step_since=dt.datetime.fromisoformat(r["step_since"]),
        reported_at=parse_iso(r["reported_at"]),
        amount=r["amount"],
        created_at=dt.datetime.fromisoformat(r["created_at"]),
        closed_at=parse_iso(r["closed_at"]),
        transitions=r["transitions"],
        last_sent_sha=r["last_sent_sha"],
        snapshot=json.loads(r["snapshot"]),
        supersedes=r["supersedes"],
    )


def event_row(r: sqlite3.Row) -> EventRow:
    return EventRow(
        id=r["id"],
        at=dt.datetime.fromisoformat(r["at"]),
        form_no=r["form_no"],
        kind=r["kind"],
        from_step=r["from_step"],
        to_step=r["to_step"],
        from_role=r["from_role"],
        to_role=r["to_role"],
        actor=r["actor"],
        stamp=r["stamp"],
        file_name=r["file_name"],
        file_sha=r["file_sha"],
        out_sha=r["out_sha"],
        detail=r["detail"],
    )


def receipt_row(r: sqlite3.Row) -> Receipt:
    return Receipt(
        id=r["id"],
        sha=r["sha"],
        name=r["name"],
        size=r["size"],
        mtime_ns=r["mtime_ns"],
        received_at=dt.datetime.fromisoformat(r["received_at"]),
        archive=r["archive"],
        event_id=r["event_id"],
        state=r["state"],
    )


def delivery_row(r: sqlite3.Row) -> Delivery:
    return Delivery(r["id"], r["receipt_id"], r["source"], r["dest"], r["sha"], bool(r["done"]))
