"""What the sandboxed parser worker answers for one dropped file: what it is, and its content.

One call into the worker per file (see :meth:`Processor.check_kind`): the sniff and the form
reader run there together, on one parse of the zip's central directory, so the watcher's own
process opens no untrusted zip to decide what a file is. The answer is picklable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import FileRejected, Reason
from .forms import FormReading, read_form
from .handoverread import HandoverReading, probe
from .sniff import Sniffed, sniff_package
from .statsread import TableSheet
from .statsread import examine as examine_table
from .zipread import ZipLimits


@dataclass(frozen=True)
class Examined:
    """The sniff's verdict and, for a workbook it accepted, the reader's answer."""

    sniffed: Sniffed
    reading: FormReading | None = None
    # Why the reader could not read the form (damaged, not our form): the read gate says it,
    # so gates between the kind and the read still see every workbook.
    refused: FileRejected | None = None
    # Not a refund form but our handover sheet, read (see handover_intake).
    handover: HandoverReading | None = None
    # Or a monthly statistics table, read (see stats_intake).
    table: TableSheet | None = None


def examine(data: bytes, name: str, limits: ZipLimits) -> Examined:
    """Sniff ``data`` and, if it is a workbook, read it as a form, or else as another of our
    documents. Runs in the worker."""
    sniffed, package = sniff_package(data, name=name, limits=limits)
    if not sniffed.accepted:
        return Examined(sniffed)
    try:
        return Examined(sniffed, read_form(data, limits=limits, package=package))
    except FileRejected as exc:
        if exc.reason is not Reason.FOREIGN_WORKBOOK:
            return Examined(sniffed, refused=exc)
        refused = exc
    # Not a refund form: one of our other documents? (A refund form never pays for this.)
    handover = probe(data, limits=limits, package=package)
    if handover is not None:
        return Examined(sniffed, handover=handover)
    try:
        table = examine_table(data, limits=limits, package=package)
    except FileRejected as exc:  # a statistics table that cannot be read: said as such
        return Examined(sniffed, refused=exc)
    if table is not None:
        return Examined(sniffed, table=table)
    return Examined(sniffed, refused=refused)


def examine_archived(path: Path, name: str, limits: ZipLimits, max_bytes: int) -> Examined | None:
    """:func:`examine` of an archived received file, for ``rebuild`` to ask ahead of its turn.

    None for a file over the size limit (replay never reads it). A parser crash or timeout is
    not caught here: the pool reports it, and the caller replays that file the ordinary way,
    so its answer is the one the watcher gave. Only what depends on the bytes alone is
    answered: every decision that needs the ledger is still taken in arrival order.
    """
    if path.stat().st_size > max_bytes:
        return None
    return examine(path.read_bytes(), name, limits)
