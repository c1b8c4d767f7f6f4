"""The token a routed copy carries, so a step that changes no field can prove its source.

Forwarding to finance and the feedback to the customer change no field of the form, so the
only thing that tells the copy we last delivered from another department's older copy is
something only the delivered copy carries. Each routed copy's 流转记录 header ends with
``副本凭证:<token>``; the token is a keyed hash of the form number and the number of hand-offs
so far, so

* it changes with every hand-off (an earlier copy's token is refused),
* replaying the archive (``rebuild``) gives every copy the same token again, and
* nobody can make one up without the workspace's key (``refundsheets/.copy-key``).

The key is created once and kept by ``rebuild``. It records when it was created: copies
delivered before that (by a version without tokens) are still accepted without one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

KEY_FILE = ".copy-key"
TOKEN_HEX_CHARS = 16


class CopyKey:
    def __init__(self, key: bytes, created: dt.datetime) -> None:
        self._key = key
        self.created = created  # copies sent before this carry no token

    @classmethod
    def load_or_create(cls, sheets: Path, *, now: dt.datetime) -> CopyKey:
        """The workspace's key, created on first use (readable by the watcher's account only)."""
        path = sheets / KEY_FILE
        with contextlib.suppress(FileNotFoundError):
            return cls._parse(path)
        sheets.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # created by another process meanwhile: use that one
            return cls._parse(path)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{key.hex()}\n{now:%Y-%m-%d %H:%M:%S}\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("已生成副本凭证密钥 %s", path)
        return cls(key, now)

    @classmethod
    def _parse(cls, path: Path) -> CopyKey:
        key, _, created = path.read_text(encoding="ascii").strip().partition("\n")
        return cls(bytes.fromhex(key.strip()), dt.datetime.fromisoformat(created.strip()))

    def token(self, form_no: str, hand_offs: int) -> str:
        """The token of the copy sent after the form's ``hand_offs``-th accepted hand-off."""
        message = f"{form_no}\n{hand_offs}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()[:TOKEN_HEX_CHARS]

    def matches(self, presented: str | None, form_no: str, hand_offs: int) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.strip().lower(), self.token(form_no, hand_offs))
