"""The exception tree: a stable reason code apart from the human (Chinese) text.

Callers branch on ``reason`` (a :class:`Reason`), never on the message. Messages are
written for the office staff who read them: what is wrong, where, how to fix it.
"""

from __future__ import annotations

import errno
from enum import StrEnum


class Reason(StrEnum):
    # configuration and workspace
    CONFIG_INVALID = "config_invalid"
    WORKSPACE_MISSING = "workspace_missing"
    WORKSPACE_LOCKED = "workspace_locked"
    DEMO_FOLDER_TAKEN = "demo_folder_taken"  # `refundflow demo` will not write into it
    # the ledger cannot be trusted as the record of the archive
    LEDGER_MISSING = "ledger_missing"
    LEDGER_EMPTY = "ledger_empty"
    LEDGER_BEHIND = "ledger_behind"
    LEDGER_CORRUPT = "ledger_corrupt"
    LEDGER_UNREADABLE = "ledger_unreadable"
    LEDGER_BUSY = "ledger_busy"
    # what a file is
    NOT_A_WORKBOOK = "not_a_workbook"
    UNSUPPORTED_FORMAT = "unsupported_format"
    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"
    PARSER_CRASHED = "parser_crashed"
    PARSER_TIMEOUT = "parser_timeout"
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    FOREIGN_WORKBOOK = "foreign_workbook"
    OLD_TEMPLATE = "old_template"
    MACROS = "macros"  # VBA, Excel 4.0 macro sheets or ActiveX, under any part name
    EXTERNAL_LINKS = "external_links"  # links to other workbooks, DDE/OLE links, data connections
    # a field's value
    REQUIRED = "required"
    BAD_DATETIME = "bad_datetime"
    AMBIGUOUS_DATETIME = "ambiguous_datetime"
    BAD_AMOUNT = "bad_amount"
    AMBIGUOUS_AMOUNT = "ambiguous_amount"
    BAD_MOBILE = "bad_mobile"
    BAD_ORDER_NO = "bad_order_no"
    BAD_CHOICE = "bad_choice"
    FUTURE_TIME = "future_time"
    TIME_ORDER = "time_order"
    NOT_IN_ROSTER = "not_in_roster"
    NO_ROSTER = "no_roster"  # the role has no list and refundflow.toml requires one
    SAME_PERSON = "same_person"
    FORMULA = "formula"  # an input cell holds a formula: its cached value is not what people see
    # the form against the ledger
    DUPLICATE_ORDER = "duplicate_order"
    EARLIER_STEP_CHANGED = "earlier_step_changed"
    STALE_COPY = "stale_copy"
    UNKNOWN_FORM = "unknown_form"
    FORM_CLOSED = "form_closed"
    NOT_APPROVED = "not_approved"
    FILLED_TOO_EARLY = "filled_too_early"
    ALREADY_RECEIVED = "already_received"
    FOREIGN_FORM_NO = "foreign_form_no"
    # a statistics table a department head signed and dropped in inbox/
    TABLE_UNSIGNED = "table_unsigned"  # 审批人 is empty
    TABLE_MONTH = "table_month"  # 编号 names no finished month the ledger has refunds of
    TABLE_SHAPE = "table_shape"  # labels, column headings or 合计 not as generated
    # what sits in inbox/, and where we write
    NOT_A_FILE = "not_a_file"
    UNREADABLE = "unreadable"
    STORAGE_FULL = "storage_full"
    STORAGE_DENIED = "storage_denied"
    STORAGE_FAILED = "storage_failed"


class RefundflowError(Exception):
    """Base of every error the library raises on purpose."""

    reason: Reason = Reason.CORRUPT

    def __init__(self, message: str, *, reason: Reason | None = None, hint: str = "") -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}({self.hint})" if self.hint else self.message


class ConfigError(RefundflowError):
    """refundflow.toml is missing a key, has a wrong type or an impossible value."""

    reason = Reason.CONFIG_INVALID


class WorkspaceError(RefundflowError):
    """The workspace folders are missing or another process holds the workspace."""

    reason = Reason.WORKSPACE_MISSING


class LedgerError(RefundflowError):
    """The ledger is missing, damaged, locked, or older than the archive it indexes."""

    reason = Reason.LEDGER_CORRUPT


class FileRejected(RefundflowError):
    """A dropped file is not one of our workbooks (wrong format, damaged, hostile, foreign)."""

    reason = Reason.NOT_A_WORKBOOK


class FormReadError(FileRejected):
    """A workbook that looks like ours but cannot be read as a form."""

    reason = Reason.FOREIGN_WORKBOOK


class StorageError(RefundflowError):
    """The workspace cannot be written (disk full, no permission): the file stays in inbox/."""

    reason = Reason.STORAGE_FAILED


def os_problem(exc: OSError) -> str:
    """What went wrong with a file, in a few Chinese words (no path)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "磁盘已满"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "没有写入权限"
    return f"出错({exc.strerror or exc})"


def storage_error(exc: OSError, *, doing: str) -> StorageError:
    """A Chinese message for an OSError met while ``doing`` something with a file."""
    where = f"({_shown_path(exc.filename)})" if exc.filename else ""
    kept = "文件没有丢失,仍留在 inbox 中(或已存档),问题解决后会自动再处理"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason, hint = Reason.STORAGE_FULL, f"请清理服务器磁盘空间;{kept}"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason, hint = Reason.STORAGE_DENIED, f"请让运行 refundflow 的账户可以写入该文件夹;{kept}"
    else:
        reason, hint = Reason.STORAGE_FAILED, f"请检查该文件夹和磁盘;{kept}"
    return StorageError(f"{doing}时{os_problem(exc)}{where}", reason=reason, hint=hint)


def _shown_path(filename: object) -> str:
    """Where it happened, as a person can look for it: our hidden temporaries by their folder."""
    text = str(filename)
    folder, _, name = text.rpartition("/")
    return folder if folder and name.startswith(".") and name.endswith(".part") else text
