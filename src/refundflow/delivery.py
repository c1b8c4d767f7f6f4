"""Putting what is committed where people find it, and taking away what they no longer need.

Deliveries are idempotent (a crash repeats them safely) and never replace someone else's
file. A folder that cannot be written leaves its delivery pending for a retry; it holds
nothing else up. A file over the size limit is moved into the archive and linked, never
copied. Earlier copies of a form leave people's folders when it moves on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from pathlib import Path

from .archive import (
    RECEIVED,
    SUPERSEDED,
    archive_path,
    folder_names,
    free_names,
    numbered,
    place_exact,
    place_new,
    safe_name,
    write_exclusive,
)
from .errors import os_problem
from .inboxfile import (
    EntryKind,
    Identity,
    kind_of,
    put_back,
    remove_entry,
    remove_if_unchanged,
    sha256_of,
    take_aside,
)
from .ledger import Delivery, Ledger
from .replies import ENTRY_TEXTS, REPLY_SUFFIX, reply_text
from .watcher import owner_file_present
from .workspace import Workspace

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, workspace: Workspace, ledger: Ledger, *, enabled: bool) -> None:
        self.ws = workspace
        self.ledger = ledger
        self.enabled = enabled  # False while rebuilding: the copies were delivered long ago
        # While rebuilding nothing is delivered, so a folder's listing stays true: each is
        # listed once, not once a form (a folder of 10,000 copies made that quadratic).
        self._listings: dict[Path, list[str]] = {}

    def finish(
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
            if not delivery.done and self.enabled:
                try:
                    dest = self._deliver_one(delivery, inbox_file, identity)
                except OSError as exc:
                    failed.append(f"{shown(dest, self.ws.root)}({os_problem(exc)})")
                    log.warning("无法投递 %s(%s):稍后重试", dest, exc)
                    continue
            delivered.append(dest)
            done.append(delivery.id)
        if self.enabled and in_inbox:
            remove_if_unchanged(inbox_file, sha, identity)
        # One commit for all marks: a crash before it only repeats idempotent deliveries.
        self.ledger.finish_receipt(receipt_id, done, complete=not failed)
        return delivered, failed

    def take_away(self, copies: list[tuple[Path, str]], now: dt.datetime) -> None:
        """Remove our earlier copies from people's folders; archive a person's edits first.

        Tidying only: a copy that cannot be taken away stays, and nothing is ever lost (our
        bytes are in the archive, a copy edited in place is archived before it goes).
        """
        for path, delivered in copies:
            if owner_file_present(path):
                # Someone has it open in Excel/WPS/LibreOffice: not pulled from under them.
                # It goes with the form's next move; nothing is lost meanwhile.
                log.info("保留 %s:它正在办公软件中打开", path.name)
                continue
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
                log.info("已取走较早的副本 %s", shown(path, self.ws.root))
            except OSError as exc:
                log.warning("无法取走较早的副本 %s:%s", path, exc)
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
                log.warning("%s 在存档前已离开 inbox/", inbox_file.name)
                return dest
            moved = os.lstat(source)
            unchanged = (
                Identity.of(moved) == identity
                if identity is not None
                else kind_of(moved) is EntryKind.FILE and sha256_of(source) == sha
            )
            if not unchanged:
                put_back(source, inbox_file)
                log.info("%s 在存档前发生变动:留待下一轮处理", dest.name)
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

    def free_name(
        self, dest: Path, *companions: str, reusing: list[tuple[Path, str]] | None = None
    ) -> Path:
        """The name a new file gets in a person's folder: free, and not a look-alike of one.

        Names of copies that are ``reusing``-ed (taken away first) count as free.
        """
        freed = {path.name for path, _ in reusing or ()}
        listing = None
        if not self.enabled:
            listing = self._listings.get(dest.parent)
            if listing is None:
                listing = self._listings[dest.parent] = folder_names(dest.parent)
        return next(free_names(dest, *companions, freed=freed, listing=listing))

    def earlier_copies(
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

    def answer_entry(self, path: Path, now: dt.datetime) -> tuple[str, Path] | None:
        """Answer a link, hard link, folder or special file without reading through it.

        Returns what it is (in Chinese) and the reply file, or None when the entry turned out
        to be a plain file after all (put back, to be read on the next pass).
        """
        hold = take_aside(path)
        if hold is None:
            raise FileNotFoundError(path)
        kind = kind_of(os.lstat(hold))  # what we hold now, not what the listing said
        if kind is EntryKind.FILE:  # replaced by a plain file meanwhile: read it next pass
            put_back(hold, path)
            return None
        what, hint, done = ENTRY_TEXTS[kind]
        base = next(free_names(self.ws.rejected / safe_name(path.name), REPLY_SUFFIX))
        reply = base.with_name(base.name + REPLY_SUFFIX)
        place_new(reply, reply_text(path.name, now, what, hint, kept=done), durable=False)
        if kind is EntryKind.DIRECTORY:
            put_back(hold, base)  # the folder, whole, next to its reply
        else:
            remove_entry(hold)  # the link or special file itself; never what it points to
        log.warning("已答复 inbox/ 中的 %s(%s),答复在 %s", path.name, kind, reply.parent)
        return what, reply


def shown(path: Path, root: Path) -> str:
    """A path as staff see it: relative to the workspace when it is inside."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
