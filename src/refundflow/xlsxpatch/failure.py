"""The error every refusal of :func:`~refundflow.xlsxpatch.apply_patch` raises."""

from __future__ import annotations

from ..errors import FormReadError, Reason


class PatchError(FormReadError):
    """The workbook cannot be patched (damaged, not a form workbook, or an impossible patch)."""


def fail(message: str, reason: Reason = Reason.CORRUPT) -> PatchError:
    return PatchError(message, reason=reason)
