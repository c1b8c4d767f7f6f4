"""Run spreadsheet parsers in a worker process, so a crashing parser cannot take the watcher down.

Why a process and not ``try/except``: python-calamine aborts the whole process on some files
(an 8 GiB allocation fails -> SIGABRT), raises ``pyo3_runtime.PanicException`` (a
``BaseException``), and a hostile file can spin or balloon. The worker is persistent, so the
cost per file is one pipe round trip, not a process start; it is replaced only after it died,
timed out, or hit an error that may have left it in a bad state.

The worker is started with the ``forkserver`` context, never plain ``fork``: the watcher runs
watchdog threads, and forking a threaded process can copy a held lock into the child.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import multiprocessing
import pickle
import resource
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, TypeVar, cast

from .errors import FileRejected, Reason, RefundflowError

log = logging.getLogger(__name__)

T = TypeVar("T")

CRASH_MESSAGE = "文件无法解析,可能已损坏"
CRASH_HINT = (
    "请用 Excel 打开确认无误后另存为 .xlsx 重新放入 inbox 文件夹;如无法打开,请用最新模板重新填写"
)
TIMEOUT_HINT = "请删除多余的工作表、图片和格式后另存为 .xlsx,再重新放入 inbox 文件夹"
_STARTUP_SECONDS = 60.0  # a cold forkserver plus imports can be slow on a loaded machine
_STOP_SECONDS = 2.0
_CPU_GRACE_SECONDS = 2


class SandboxUnavailable(RefundflowError):
    """The worker process could not be started: a failure of the tool, not of a file."""

    reason = Reason.SANDBOX_UNAVAILABLE


class ParserFailed(FileRejected):
    """A parser crashed, died or timed out on a file; ``detail`` says how, in English."""

    reason = Reason.PARSER_CRASHED

    def __init__(
        self, message: str, *, reason: Reason | None = None, hint: str = "", detail: str = ""
    ) -> None:
        super().__init__(message, reason=reason, hint=hint)
        self.detail = detail


def _crashed(detail: str) -> ParserFailed:
    return ParserFailed(CRASH_MESSAGE, reason=Reason.PARSER_CRASHED, hint=CRASH_HINT, detail=detail)


# --- the worker side ----------------------------------------------------------------------------

_OK, _ERROR, _READY = "ok", "error", "ready"


def _limit_cpu(budget: int) -> None:
    """Move the soft RLIMIT_CPU to ``budget`` seconds beyond the CPU used so far.

    RLIMIT_CPU counts the whole life of the process, so a persistent worker must push it
    forward before each call. Only the soft limit moves (SIGXCPU kills the worker); an
    unprivileged process can never raise its hard limit again once lowered.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + budget
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _worker_main(conn: Connection, memory_mb: int, cpu_budget: int) -> None:
    """Loop: receive (func, args), run it, send back ("ok", result) or ("error", exc, recycle)."""
    # Ctrl-C reaches the whole process group; let the parent decide and close us cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    # An address-space cap turns calamine's 8 GiB allocation into an early abort of this worker
    # rather than gigabytes of RSS on the watcher's machine.
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    # An aborting parser would otherwise dump a core of up to memory_mb into the watcher's cwd.
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    _limit_cpu(cpu_budget)
    conn.send_bytes(pickle.dumps((_READY, None)))
    while True:
        try:
            raw = conn.recv_bytes()
        except EOFError:  # the parent went away
            return
        request = pickle.loads(raw)
        if request is None:  # close()
            return
        func, args = request
        _limit_cpu(cpu_budget)
        recycle = False
        try:
            reply: tuple[Any, ...] = (_OK, func(*args))
        except (KeyboardInterrupt, SystemExit):
            raise  # ends the worker; the parent reports a crash and starts a new one
        except RefundflowError as exc:
            reply = (_ERROR, exc, False)
        except BaseException as exc:  # PanicException derives from BaseException
            # A Rust panic or a MemoryError can leave the worker half-broken: replace it.
            recycle = isinstance(exc, MemoryError) or not isinstance(exc, Exception)
            reply = (_ERROR, _crashed(f"{type(exc).__name__}: {exc}"[:500]), recycle)
        try:
            payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result or exception
            what = type(reply[1]).__name__
            payload = pickle.dumps(
                (_ERROR, _crashed(f"cannot send {what} back: {type(exc).__name__}: {exc}"), False)
            )
        conn.send_bytes(payload)
        if recycle:
            return


# --- the parent side ----------------------------------------------------------------------------


class ParserPool:
    """One persistent, memory- and time-limited worker process; :meth:`run` is thread-safe."""

    def __init__(self, *, memory_mb: int, timeout: float) -> None:
        if memory_mb < 64 or timeout <= 0:
            raise ValueError("memory_mb must be >= 64 and timeout > 0")
        self.memory_mb = memory_mb
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("forkserver")
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._starts = 0

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def restarts(self) -> int:
        """Workers started after the first one (after crashes, timeouts and recycling)."""
        return max(0, self._starts - 1)

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def run(
        self,
        func: Callable[..., T],
        *args: Any,
        while_waiting: Callable[[], object] | None = None,
    ) -> T:
        """Call ``func(*args)`` in the worker and return its result.

        ``func`` must be a picklable top-level function. A :class:`RefundflowError` raised
        inside comes back as itself; any other failure, a dead worker or a timeout becomes a
        :class:`ParserFailed` (``reason`` PARSER_CRASHED or PARSER_TIMEOUT).
        ``while_waiting`` is parent-side work done while the worker parses (overlapping an
        fsync with the parse saves a millisecond or two a file).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("ParserPool is closed")
            try:
                payload = pickle.dumps((func, args), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise TypeError(f"cannot send {func!r} to the worker: {exc}") from exc
            conn = self._ensure_worker()
            try:
                conn.send_bytes(payload)
            except OSError:
                # The worker died between calls (killed from outside, OOM killer): this file
                # has not been looked at yet, so start a fresh worker and send it once more.
                log.warning("解析进程已退出(%s),正在重启", self._exit_text())
                self._kill()
                conn = self._ensure_worker()
                conn.send_bytes(payload)
            if while_waiting is not None:
                try:
                    while_waiting()
                except BaseException:
                    self._kill()  # its reply would be read by the next call otherwise
                    raise
            if not conn.poll(self.timeout):
                self._kill()
                log.warning("解析超时(%.1f 秒),已终止解析进程", self.timeout)
                raise ParserFailed(
                    f"文件解析超时(超过 {self.timeout:g} 秒),文件可能已损坏或过于复杂",
                    reason=Reason.PARSER_TIMEOUT,
                    hint=TIMEOUT_HINT,
                    detail=f"parser exceeded {self.timeout:g} s",
                )
            try:
                reply = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                raise self._reap(f"worker died ({self._exit_text()})") from None
            except Exception as exc:  # the reply could not be unpickled in this process
                raise _crashed(f"unreadable reply: {type(exc).__name__}: {exc}") from None
            if reply[0] == _OK:
                return cast(T, reply[1])
            _tag, error, recycle = reply
            if recycle:
                self._retire()
            if isinstance(error, ParserFailed):
                # an ordinary parser exception is routine for a bad file; a recycle is not
                log.log(logging.WARNING if recycle else logging.INFO, "解析失败:%s",
                        error.detail)  # fmt: skip
            raise error

    def start(self) -> None:
        """Start the worker now rather than on the first file (a watcher's first drop then
        moves in milliseconds, not the half second a cold forkserver and imports take)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("ParserPool is closed")
            self._ensure_worker()

    def close(self) -> None:
        """Stop the worker (politely, then by force) and refuse further calls."""
        with self._lock:
            self._closed = True
            if self._conn is not None and self._proc is not None and self._proc.is_alive():
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(pickle.dumps(None))
            self._retire()

    # -- worker lifecycle --

    def _ensure_worker(self) -> Connection:
        if self._proc is not None and self._conn is not None and self._proc.is_alive():
            return self._conn
        if self._proc is not None:
            self._retire()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        cpu_budget = math.ceil(self.timeout) + _CPU_GRACE_SECONDS
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self.memory_mb, cpu_budget),
            name="refundflow-parser",
            daemon=True,
        )
        started = time.monotonic()
        proc.start()
        # Our copy of the child's end must go, or a dead worker would never show up as EOF.
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        try:
            if not parent_conn.poll(_STARTUP_SECONDS):
                raise TimeoutError("no ready message")
            tag, _ = pickle.loads(parent_conn.recv_bytes())
            if tag != _READY:
                raise RuntimeError(f"unexpected first message {tag!r}")
        except (EOFError, OSError, TimeoutError, RuntimeError) as exc:
            text = self._exit_text()
            self._kill()
            # Not the file's fault: the tool itself cannot parse anything right now.
            raise SandboxUnavailable(
                f"无法启动文件解析进程({exc};{text}),文件未处理,仍留在 inbox 中",
                hint="这是 refundflow 运行环境的问题:请检查 [parse] memory_mb 设置和系统内存,"
                "或联系维护人员",
            ) from None
        self._starts += 1
        log.debug("解析进程 %s 已就绪,用时 %.0f 毫秒", proc.pid, (time.monotonic() - started) * 1e3)
        return parent_conn

    def _exit_text(self) -> str:
        proc = self._proc
        if proc is None:
            return "no worker"
        proc.join(0.5)  # a dying worker needs a moment before its exit code is known
        code = proc.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def _reap(self, detail: str) -> ParserFailed:
        log.warning("解析进程崩溃:%s", detail)
        self._kill()
        return _crashed(detail)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        self._retire()

    def _retire(self) -> None:
        """Join and forget the worker; by force if it does not leave within a moment."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None:
            proc.join(_STOP_SECONDS)
            if proc.is_alive():
                proc.kill()
                proc.join(_STOP_SECONDS)
            with contextlib.suppress(ValueError):  # still alive after SIGKILL: nothing more to do
                proc.close()  # releases the sentinel fd; the forkserver has reaped the child
        if conn is not None:
            conn.close()


# --- probes -------------------------------------------------------------------------------------


def probe_workbook(data: bytes) -> int:
    """Open ``data`` with python-calamine, read every row of every sheet, return the sheet count.

    Meant to run inside a :class:`ParserPool`: this is exactly the kind of call that can panic
    or abort the process.
    """
    import python_calamine

    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    names = list(workbook.sheet_names)
    for name in names:
        for _row in workbook.get_sheet_by_name(name).iter_rows():
            pass
    return len(names)


def stop_helper_processes() -> None:
    """Stop multiprocessing's forkserver and resource tracker, for a command about to exit.

    They would go by themselves a moment after this process ends, but a scheduled task or a
    service manager sees them outlive the command. The next ParserPool starts them again.
    """
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)  # private: absent, the helpers simply linger
        if stop is not None:
            with contextlib.suppress(Exception):
                stop()
